"""The input convention each weight source was trained with, as one affine map.

Every convention is y = (x[..., order] − mean) / std per channel for images x
in cvx's convention (NHWC RGB, float in [0, 1] or uint8, divided by 255), so
``Preprocessing`` is data that a checkpoint's JSON sidecar can carry:

- 'torchvision': mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
- 'torchvision_transform_input': GoogLeNet with ``transform_input=True``
  (torchvision sets it with its pretrained weights): (x − 0.5) / 0.5.
- 'caffe' (Keras VGG, ResNet): RGB → BGR, 255·x − (103.939, 116.779, 123.68).
- 'tf' (Keras MobileNet, Xception): 2·x − 1, i.e. [−1, 1].
- 'torch' (Keras DenseNet): the torchvision numbers.
- 'keras_model' (Keras EfficientNet): the model's own Rescaling/Normalization
  layers on 0..255 input, read from the model (:func:`from_keras_layers`).

cvx models return logits; Keras applications end in a softmax by default, so
softmax(cvx logits) is what the Keras model predicts.
"""
import dataclasses

import jax.numpy as jnp
import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclasses.dataclass(frozen=True)
class Preprocessing:
  """y = (x[..., ::-1 if bgr] − mean) / std, for x in [0, 1] (uint8 is /255 first).

  ``mean`` and ``std`` are per output channel, in [0, 1] units.
  """
  mode: str
  mean: tuple[float, ...]
  std: tuple[float, ...]
  bgr: bool = False

  def __call__(self, images):
    """N×H×W×3 (or H×W×3) uint8 or float in [0, 1] → float32 model input."""
    x = jnp.asarray(images)
    x = x.astype(jnp.float32) / 255 if x.dtype == jnp.uint8 else x.astype(jnp.float32)
    if self.bgr:
      x = x[..., ::-1]
    return (x - jnp.asarray(self.mean, jnp.float32)) / jnp.asarray(self.std, jnp.float32)

  def to_json(self) -> dict:
    return {"mode": self.mode, "mean": list(self.mean), "std": list(self.std),
            "channel_order": "BGR" if self.bgr else "RGB"}

  @classmethod
  def from_json(cls, d: dict) -> "Preprocessing":
    return cls(d["mode"], tuple(d["mean"]), tuple(d["std"]), d["channel_order"] == "BGR")


MODES = {
    "torchvision": Preprocessing("torchvision", IMAGENET_MEAN, IMAGENET_STD),
    "torchvision_transform_input": Preprocessing("torchvision_transform_input",
                                                 (0.5,) * 3, (0.5,) * 3),
    "caffe": Preprocessing("caffe", tuple(m / 255 for m in _CAFFE_MEAN_BGR),
                           (1 / 255,) * 3, bgr=True),
    "tf": Preprocessing("tf", (0.5,) * 3, (0.5,) * 3),
    "torch": Preprocessing("torch", IMAGENET_MEAN, IMAGENET_STD),
}


def get(mode: str) -> Preprocessing:
  """The named convention (one of ``MODES``)."""
  if mode not in MODES:
    raise ValueError(f"unknown preprocessing mode {mode!r}; allowed: {', '.join(MODES)}")
  return MODES[mode]


def from_keras_layers(layers) -> Preprocessing:
  """Composes leading Keras ``Rescaling``/``Normalization`` layers (on 0..255 input).

  Tracks y = a·x + b per channel for x in [0, 1], starting from a = 255
  (Keras applications take 0..255 pixels); stops at the first other layer.
  """
  a, b = np.full(3, 255.0), np.zeros(3)
  for layer in layers:
    kind = type(layer).__name__
    if kind == "InputLayer":
      continue
    if kind == "Rescaling":
      scale, offset = np.asarray(layer.scale, float), np.asarray(layer.offset, float)
      a, b = a * scale, b * scale + offset
    elif kind == "Normalization":
      if layer.invert:
        raise ValueError(f"Keras layer {layer.name!r}: inverted Normalization is not an input"
                         " preprocessing")
      mean = np.asarray(layer.mean, float).reshape(-1)
      std = np.maximum(np.sqrt(np.asarray(layer.variance, float).reshape(-1)), 1e-7)
      a, b = a / std, (b - mean) / std
    else:
      break
  a, b = np.broadcast_to(a, 3), np.broadcast_to(b, 3)
  return Preprocessing("keras_model", tuple(float(v) for v in -b / a),
                       tuple(float(v) for v in 1 / a))
