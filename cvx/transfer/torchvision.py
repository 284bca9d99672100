"""torchvision state dicts → cvx variables (``from_torchvision``).

Layouts: conv kernels O×I×H×W → H×W×I×O (depthwise C×1×k×k → k×k×1×C), linear
weights (out, in) → (in, out), BatchNorm weight/bias/running_mean/running_var →
scale/bias/mean/var. A linear layer after a conv map (AlexNet ``classifier.1``,
VGG ``classifier.0``, GoogLeNet ``aux*.fc1``) reads torch's C·H·W flattening;
its rows are reordered to cvx's H·W·C. Module names map one to one (e.g.
``layer2.0.downsample.1`` ↔ ``stage2_block1/downsample/bn``); each cvx leaf
must find its tensor with the right shape and every tensor must be used
(``num_batches_tracked`` aside), else ``ValueError``.

Preprocessing is torchvision's ImageNet mean/std on [0, 1] images, except
GoogLeNet with ``transform_input=True`` (how torchvision builds it with its
pretrained weights; pass ``transform_input=True``): (x − 0.5)/0.5.
"""
import functools
import os
import re
from typing import Any, Callable, Mapping

import numpy as np

from cvx import models
from cvx.transfer import preprocessing
from cvx.transfer.assign import assign, require_file, target_shapes
from cvx.transfer.checkpoint import Converted

_VGG = [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]
_RESNET = [f"resnet{d}" for d in (18, 34, 50, 101, 152)]
MODELS = ("alexnet", *_VGG, "googlenet", *_RESNET, "densenet121", "efficientnet_b0")
_HEAD = {"alexnet": "classifier.6", "googlenet": "fc", "densenet121": "classifier",
         "efficientnet_b0": "classifier.1", **{n: "classifier.6" for n in _VGG},
         **{n: "fc" for n in _RESNET}}
_LEAF = {"kernel": "weight", "bias": "bias", "scale": "weight", "mean": "running_mean",
         "var": "running_var"}
_CONV_BN = {"conv": "0", "bn": "1"}
_EXAMPLE = "torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url"


def _alexnet(path):
  conv = re.fullmatch(r"conv(\d)_conv", path[0])
  if conv:
    return f"features.{(0, 3, 6, 8, 10)[int(conv[1]) - 1]}"
  return {"fc6": "classifier.1", "fc7": "classifier.4", "head": "classifier.6"}[path[0]]


def _vgg_features(model) -> dict[str, int]:
  """cvx conv/BN name → index in torchvision's ``features`` Sequential."""
  index, features = 0, {}
  for i, widths in enumerate(model.stages, start=1):
    for j in range(1, len(widths) + 1):
      features[f"conv{i}_{j}"], features[f"bn{i}_{j}"] = index, index + 1
      index += 3 if model.batch_norm else 2  # conv, [BN,] ReLU
    index += 1  # the stage's max pool
  return features


def _vgg(features, path):
  if path[0] in features:
    return f"features.{features[path[0]]}"
  return {"fc1": "classifier.0", "fc2": "classifier.3", "head": "classifier.6"}[path[0]]


_GOOGLENET = {"branch2_reduce": "branch2.0", "branch2": "branch2.1", "branch3_reduce": "branch3.0",
              "branch3": "branch3.1", "branch4": "branch4.1",
              "head": "fc2"}  # the auxiliary classifiers' last layer


def _googlenet(path):
  if path[0] == "head":
    return "fc"
  return ".".join(_GOOGLENET.get(p, p) for p in path)


def _resnet(path):
  if path[0] == "head":
    return "fc"
  if path[0] == "conv1":
    return {"conv": "conv1", "bn": "bn1"}[path[1]]
  stage, block = re.fullmatch(r"stage(\d+)_block(\d+)", path[0]).groups()
  prefix = f"layer{stage}.{int(block) - 1}"
  if path[1] == "downsample":
    return f"{prefix}.downsample.{_CONV_BN[path[2]]}"
  return f"{prefix}.{path[2]}{path[1][-1]}"  # conv2/bn → layerS.B.bn2


def _densenet(path):
  kind = {"conv": "conv", "bn": "norm"}
  if path[0] == "head":
    return "classifier"
  if path[0] == "conv0":
    return f"features.{kind[path[1]]}0"
  if path[0] == "norm5":
    return "features.norm5"
  if path[0].startswith("transition"):
    return f"features.{path[0]}.{kind[path[2]]}"
  layer, m = re.fullmatch(r"layer(\d+)_conv(\d)", path[1]).groups()
  return f"features.{path[0]}.denselayer{int(layer) + 1}.{kind[path[2]]}{m}"


def _efficientnet(params, path):
  if path[0] == "head":
    return "classifier.1"
  if path[0] in ("stem_conv", "top_conv"):
    return f"features.{0 if path[0] == 'stem_conv' else 8}.{_CONV_BN[path[1]]}"
  stage, block = re.fullmatch(r"stage(\d+)_block(\d+)", path[0]).groups()
  parts = [p for p in ("expand", "depthwise", "se", "project") if p in params[path[0]]]
  prefix = f"features.{stage}.{int(block) - 1}.block.{parts.index(path[1])}"
  if path[1] == "se":
    return f"{prefix}.{ {'reduce': 'fc1', 'expand': 'fc2'}[path[2]]}"
  return f"{prefix}.{_CONV_BN[path[2]]}"


def _rename(name: str, model, params: dict) -> Callable[[tuple], str]:
  """cvx module path → torchvision module name, for model ``name``."""
  if name in _VGG:
    return functools.partial(_vgg, _vgg_features(model))
  if name == "efficientnet_b0":  # stage 1 has no expand conv: block indices shift
    return functools.partial(_efficientnet, params)
  return {"alexnet": _alexnet, "googlenet": _googlenet, "densenet121": _densenet,
          **{n: _resnet for n in _RESNET}}[name]


def _nchw_rows_to_nhwc(weight: np.ndarray, channels: int) -> np.ndarray:
  """(out, C·H·W) torch linear weight after a flatten → cvx (H·W·C, out) kernel."""
  out, inputs = weight.shape
  if inputs % channels:
    raise ValueError(f"{inputs} inputs are not a multiple of {channels} channels")
  return weight.reshape(out, channels, -1).transpose(2, 1, 0).reshape(inputs, out)


def _flattened(name: str, model) -> dict[tuple, int]:
  """cvx linear layers that read a flattened conv map → the map's channels."""
  if name == "alexnet":
    return {("fc6",): model.widths[-1]}
  if name in _VGG:
    return {("fc1",): model.stages[-1][-1]}
  if name == "googlenet":  # the auxiliary heads flatten a 4×4×128 map
    return {("aux1", "fc1"): 128, ("aux2", "fc1"): 128}
  return {}


def _transform(name: str, model) -> Callable[[tuple, np.ndarray], np.ndarray]:
  """Source → cvx layout of a leaf, reordering rows after torch's flatten."""
  flattened = _flattened(name, model)

  def transform(path, array):
    if path[1:-1] in flattened and path[-1] == "kernel" and array.ndim == 2:
      return _nchw_rows_to_nhwc(array, flattened[path[1:-1]])
    if array.ndim == 4:
      return array.transpose(2, 3, 1, 0)
    return array.T if array.ndim == 2 else array

  return transform


def _numpy(value) -> np.ndarray:
  if hasattr(value, "detach"):  # torch.Tensor
    value = value.detach().cpu()
    return (value.float() if value.is_floating_point() else value).numpy()
  return np.asarray(value)


def state_dict(weights) -> dict[str, np.ndarray]:
  """A torch state dict as numpy arrays from a mapping, an ``nn.Module`` or a
  ``.pth``/``.pt`` file written by ``torch.save(model.state_dict(), path)``."""
  if isinstance(weights, (str, os.PathLike)):
    import torch  # pylint: disable=import-outside-toplevel  (heavy, optional)
    path = require_file(weights, "torchvision", _EXAMPLE)
    try:
      weights = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle and zip errors have no common base
      raise ValueError(f"cannot read torch weights {path!r}: {e}") from None
  if hasattr(weights, "state_dict"):
    weights = weights.state_dict()
  if not isinstance(weights, Mapping):
    raise TypeError(f"torchvision weights must be a state dict, an nn.Module or a path, "
                    f"got {type(weights).__name__}")
  return {k: _numpy(v) for k, v in weights.items()}


def from_torchvision(name: str, weights: Any, transform_input: bool = False,
                     **model_kwargs) -> Converted:
  """Imports torchvision ``name``'s weights into the cvx model of the same name.

  Args:
    name: one of ``MODELS`` (torchvision's and cvx's names agree).
    weights: a state dict, an ``nn.Module`` or a path to a saved state dict.
    transform_input: GoogLeNet only: the weights expect torchvision's
      ``transform_input=True`` (its pretrained ones do); sets preprocessing.
    **model_kwargs: extra cvx model options (e.g. ``dtype``); GoogLeNet's
      ``aux_logits`` defaults to whether the weights have auxiliary heads.

  Returns:
    A :class:`Converted` whose head size is the weights'.
  """
  if name not in MODELS:
    raise ValueError(f"unknown torchvision model {name!r}; supported: {', '.join(MODELS)}")
  if transform_input and name != "googlenet":
    raise ValueError(f"transform_input applies to googlenet only, not {name!r}")
  state = state_dict(weights)
  head = state.get(f"{_HEAD[name]}.weight")
  num_classes = 1000 if head is None else int(head.shape[0])
  has_aux = "aux1.fc2.weight" in state
  if name == "googlenet":
    model_kwargs = {"aux_logits": has_aux, **model_kwargs}
  model = models.create(name, num_classes=num_classes, **model_kwargs)
  shapes = target_shapes(model, 224)
  dropped_aux = has_aux and not model_kwargs.get("aux_logits", False)
  rename = _rename(name, model, shapes["params"])
  variables = assign(
      shapes, state, key_of=lambda path: f"{rename(path[1:-1])}.{_LEAF[path[-1]]}",
      transform=_transform(name, model), what=f"torchvision {name!r}",
      ignore=lambda key: (key.endswith("num_batches_tracked")
                          or dropped_aux and key.startswith(("aux1.", "aux2."))))
  mode = "torchvision_transform_input" if transform_input else "torchvision"
  return Converted(name, model_kwargs, num_classes, variables, "torchvision",
                   preprocessing.get(mode))
