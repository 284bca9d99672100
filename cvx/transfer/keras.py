"""Keras applications (Keras 3) → cvx variables (``from_keras``).

Sources: a ``keras.Model`` built by ``keras.applications``, a ``.keras`` file
(``model.save``), a whole-model ``.h5``, or a weights-only ``.h5`` /
``.weights.h5`` (e.g. the published ``*_tf_kernels.h5``), loaded into the
matching application (MobileNet needs ``alpha``). Layers are matched by their
Keras names (Xception's unnamed shortcut convs by order); layouts are already
NHWC/HWIO except depthwise kernels (k×k×C×m → k×k×1×C·m) and MobileNet's 1×1
conv head (→ dense). Every cvx leaf must find its array with the right shape
and every array must be used, else ``ValueError``.

cvx options per model: ResNets are v1 with ``conv_bias`` and BN ε 1.001e-5,
DenseNet ε 1.001e-5, EfficientNet ε 1e-3 with Keras' asymmetric padding, VGG's
pool size and width follow the Keras ``fc1`` (its input size). Keras is
imported on first use, with ``KERAS_BACKEND`` defaulting to 'jax'.
"""
import os
import re
from typing import Any, Callable, NamedTuple

import numpy as np

from cvx import models
from cvx.transfer import preprocessing
from cvx.transfer.assign import assign, require_file, target_shapes
from cvx.transfer.checkpoint import Converted

_EXAMPLE = ("https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
            "resnet50_weights_tf_dim_ordering_tf_kernels.h5")
_BN = {"gamma": "scale", "beta": "bias", "moving_mean": "mean", "moving_variance": "var"}
_SEPARABLE = {"depthwise_kernel": "depthwise/kernel", "pointwise_kernel": "pointwise/kernel",
              "bias": "pointwise/bias"}


def _vgg(path):
  conv = re.fullmatch(r"conv(\d)_(\d)", path[0])
  if conv:
    return f"block{conv[1]}_conv{conv[2]}"
  return {"head": "predictions"}.get(path[0], path[0])


def _resnet(path):
  if path[0] in ("head", "conv1"):
    return "predictions" if path[0] == "head" else f"conv1_{path[1]}"
  stage, block = re.fullmatch(r"stage(\d+)_block(\d+)", path[0]).groups()
  layer = "0" if path[1] == "downsample" else path[1][-1]
  return f"conv{int(stage) + 1}_block{block}_{layer}_{path[2]}"


def _mobilenet(path):
  if path[0] == "head":
    return "conv_preds"
  return path[0] if path[1] == "conv" else f"{path[0]}_bn"


_DENSE_LAYER = {("conv1", "bn"): "0_bn", ("conv1", "conv"): "1_conv", ("conv2", "bn"): "1_bn",
                ("conv2", "conv"): "2_conv"}


def _densenet(path):
  if path[0] in ("head", "norm5", "conv0"):
    return {"head": "predictions", "norm5": "bn"}.get(path[0]) or f"conv1_{path[1]}"
  index = int(path[0][-1]) + 1
  if path[0].startswith("transition"):
    return f"pool{index}_{path[2]}"
  layer, conv = re.fullmatch(r"layer(\d+)_(conv\d)", path[1]).groups()
  return f"conv{index}_block{int(layer) + 1}_{_DENSE_LAYER[conv, path[2]]}"


def _xception(path):
  if path[0] == "head":
    return "predictions"
  if path[0] == "entry" and path[1].startswith("conv"):
    return f"block1_{path[1]}"
  if path[0] == "exit" and path[1].startswith("sep"):
    block, rest = 14, path[1:]
  else:
    number = int(path[1][len("block"):])
    block = {"entry": number + 1, "middle": number + 4, "exit": 13}[path[0]]
    rest = path[2:]
    if rest[0].startswith("shortcut"):  # unnamed in Keras; aliased by order
      return f"residual{block - 1 if block < 13 else 4}{rest[0][len('shortcut'):]}"
  sep = re.fullmatch(r"sep(\d)(_bn)?", rest[0])
  name = f"block{block}_sepconv{sep[1]}{sep[2] or ''}"
  if len(rest) > 1:
    name += "/depthwise" if rest[1] == "dw" else "/pointwise"
  return name


_EFFICIENTNET = {("expand", "conv"): "expand_conv", ("expand", "bn"): "expand_bn",
                 ("depthwise", "conv"): "dwconv", ("depthwise", "bn"): "bn",
                 ("se", "reduce"): "se_reduce", ("se", "expand"): "se_expand",
                 ("project", "conv"): "project_conv", ("project", "bn"): "project_bn"}


def _efficientnet(path):
  if path[0] in ("head", "stem_conv", "top_conv"):
    return "predictions" if path[0] == "head" else f"{path[0][:-5]}_{path[1]}"
  stage, block = re.fullmatch(r"stage(\d+)_block(\d+)", path[0]).groups()
  return f"block{stage}{chr(96 + int(block))}_{_EFFICIENTNET[path[1], path[2]]}"


def _inferred_kwargs(name: str, arrays: dict) -> dict:
  """cvx options read off the weights: VGG's head input and width, MobileNet's α."""
  if name.startswith("vgg") and "fc1/kernel" in arrays:
    rows, hidden = arrays["fc1/kernel"].shape
    side = round((rows / 512) ** 0.5)
    if side * side * 512 != rows:
      raise ValueError(f"Keras VGG fc1 has {rows} inputs: not a square 512-channel map")
    return {"pool_size": (side, side), "hidden": int(hidden)}
  if name == "mobilenet_v1" and "conv1/kernel" in arrays:
    return {"alpha": arrays["conv1/kernel"].shape[-1] / 32}
  return {}


class _Spec(NamedTuple):
  application: str  # keras.applications constructor
  rename: Callable[[tuple], str]
  head: str
  bn_epsilon: float | None
  preprocessing: str | None  # None: read from the model's Rescaling/Normalization layers
  kwargs: dict = {}


_RESNET_KWARGS = {"version": "v1", "conv_bias": True, "bn_epsilon": 1.001e-5}
_SPECS = {
    "vgg16": _Spec("VGG16", _vgg, "predictions", None, "caffe"),
    "vgg19": _Spec("VGG19", _vgg, "predictions", None, "caffe"),
    **{f"resnet{d}": _Spec(f"ResNet{d}", _resnet, "predictions", 1.001e-5, "caffe",
                           _RESNET_KWARGS) for d in (50, 101, 152)},
    "mobilenet_v1": _Spec("MobileNet", _mobilenet, "conv_preds", 1e-3, "tf"),
    "densenet121": _Spec("DenseNet121", _densenet, "predictions", 1.001e-5, "torch",
                         {"bn_epsilon": 1.001e-5}),
    "xception": _Spec("Xception", _xception, "predictions", 1e-3, "tf"),
    "efficientnet_b0": _Spec("EfficientNetB0", _efficientnet, "predictions", 1e-3, None,
                             {"padding_style": "keras", "bn_epsilon": 1e-3}),
}
MODELS = tuple(_SPECS)


def _keras():
  os.environ.setdefault("KERAS_BACKEND", "jax")
  import keras  # pylint: disable=import-outside-toplevel  (heavy, optional)
  return keras


def _is_whole_model_h5(path: str) -> bool:
  import h5py  # pylint: disable=import-outside-toplevel
  with h5py.File(path, "r") as f:
    return "model_config" in f.attrs


def load_model(name: str, weights: Any, alpha: float = 1.0):
  """A ``keras.Model`` from a model, a ``.keras``/``.h5`` file, or weights for
  ``keras.applications`` ``name`` (``alpha``: MobileNet's width)."""
  keras = _keras()
  if isinstance(weights, keras.Model):
    return weights
  path = require_file(weights, "Keras", _EXAMPLE)
  application = _SPECS[name].application
  try:
    if path.endswith(".keras") or path.endswith(".h5") and _is_whole_model_h5(path):
      return keras.models.load_model(path, compile=False)
    if not path.endswith(".h5"):
      raise ValueError("expected a .keras, .h5 or .weights.h5 file")
    options = {"alpha": alpha} if name == "mobilenet_v1" else {}
    model = getattr(keras.applications, application)(weights=None, **options)
    model.load_weights(path)
    return model
  except Exception as e:  # Keras' loaders raise many types; report them uniformly
    reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
    raise ValueError(f"cannot load Keras weights {path!r} as {application}: {reason}") from None


def _layer_arrays(layer, layer_name: str) -> dict[str, np.ndarray]:
  """``'layer_name/var'`` → array in cvx layout (depthwise reshaped, BN renamed)."""
  kind = type(layer).__name__
  arrays = {}
  for variable, value in zip(layer.weights, layer.get_weights()):
    var = variable.name
    if kind == "BatchNormalization":
      var = _BN.get(var, var)
    elif kind in ("DepthwiseConv2D", "SeparableConv2D"):
      if var in ("kernel", "depthwise_kernel"):
        value = value.reshape(*value.shape[:2], 1, -1)
      if kind == "SeparableConv2D":
        var = _SEPARABLE.get(var, var)
    arrays[f"{layer_name}/{var}"] = value
  return arrays


def _aliases(model) -> dict[str, str]:
  """Xception's unnamed shortcut Conv2D/BatchNormalization → residual{i}[_bn]."""
  aliases, counts = {}, {"Conv2D": 0, "BatchNormalization": 0}
  for layer in model.layers:
    kind = type(layer).__name__
    if kind in counts and not layer.name.startswith("block"):
      counts[kind] += 1
      aliases[layer.name] = f"residual{counts[kind]}" + ("_bn" if kind != "Conv2D" else "")
  return aliases


def arrays(model, name: str = "") -> dict[str, np.ndarray]:
  """All weights of a Keras model as ``'layer/var'`` → array in cvx layout.

  Normalization layers (input preprocessing) are left out; Xception's
  unnamed shortcut layers are renamed ``residual1``… in model order.
  """
  aliases = _aliases(model) if name == "xception" else {}
  out = {}
  for layer in model.layers:
    if type(layer).__name__ != "Normalization":
      out.update(_layer_arrays(layer, aliases.get(layer.name, layer.name)))
  return out


def _check_bn_epsilon(model, expected: float | None, name: str) -> None:
  """Every BatchNorm of the Keras model uses the cvx model's ε (None: no BN)."""
  if expected is None:
    return  # BatchNorm layers in a VGG are reported by assign() as unexpected
  for layer in model.layers:
    if (type(layer).__name__ == "BatchNormalization"
        and not np.isclose(layer.epsilon, expected, rtol=1e-6)):
      raise ValueError(f"Keras layer {layer.name!r} has BatchNorm epsilon {layer.epsilon}; "
                       f"cvx {name!r} uses {expected}")


def _transform(path, array):
  """Keras → cvx layout left after :func:`arrays`: a 1×1 conv head becomes dense."""
  if path[1] == "head" and path[-1] == "kernel" and array.ndim == 4:
    if array.shape[:2] != (1, 1):
      raise ValueError(f"head kernel {array.shape} is not 1×1")
    return array.reshape(array.shape[2:])
  return array


def from_keras(name: str, weights: Any, **model_kwargs) -> Converted:
  """Imports a Keras application's weights into the cvx model ``name``.

  Args:
    name: one of ``MODELS`` (cvx names: 'mobilenet_v1' is Keras' MobileNet).
    weights: a ``keras.Model`` or a file (see :func:`load_model`).
    **model_kwargs: extra cvx model options; for MobileNet weights-only files
      ``alpha`` also builds the Keras model (default 1.0).

  Returns:
    A :class:`Converted`; its head size is the Keras model's ``classes``.
  """
  if name not in _SPECS:
    raise ValueError(f"unknown Keras model {name!r}; supported: {', '.join(MODELS)}")
  spec = _SPECS[name]
  model = load_model(name, weights, model_kwargs.get("alpha", 1.0))
  if spec.head not in {layer.name for layer in model.layers}:
    raise ValueError(f"Keras model {model.name!r} has no {spec.head!r} layer: convert a "
                     "model built with include_top=True")
  _check_bn_epsilon(model, spec.bn_epsilon, name)
  source = arrays(model, name)
  num_classes = int(source[f"{spec.head}/kernel"].shape[-1])
  kwargs = {**spec.kwargs, **_inferred_kwargs(name, source), **model_kwargs}
  cvx_model = models.create(name, num_classes=num_classes, **kwargs)
  shapes = target_shapes(cvx_model, 299 if name == "xception" else 224)
  variables = assign(shapes, source, key_of=lambda path: f"{spec.rename(path[1:-1])}/{path[-1]}",
                     transform=_transform, what=f"Keras {name!r}")
  prep = (preprocessing.get(spec.preprocessing) if spec.preprocessing
          else preprocessing.from_keras_layers(model.layers))
  return Converted(name, kwargs, num_classes, variables, "keras", prep)
