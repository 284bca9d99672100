"""EfficientNet-B0 (Tan & Le, 2019): MBConv stages found by architecture search.

Stem 3×3/2 conv (32) → 16 MBConv blocks in 7 stages → 1×1 conv 1280 →
global average pool → dropout → FC. SiLU activations, squeeze-excitation
ratio 0.25, stochastic depth growing linearly to ``drop_connect_rate``.
``padding_style``: 'torch' pads (k − 1)/2 on each side (torchvision); 'keras'
pads strided convs like Keras' ``correct_pad`` (one less before than after on
even-sized inputs), which converted Keras weights need.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cvx.layers.conv import ConvBN
from cvx.layers.mbconv import MBConv
from cvx.layers.pooling import GlobalAvgPool
from cvx.models.features import tap
from cvx.models.registry import register

# (expand ratio, kernel, stride, output channels, repeats) per stage, B0.
_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
           (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))


def keras_padding(size: int, kernel: int, strides: int):
  """Keras' pads for a conv on a ``size``-long axis: ``correct_pad`` when strided."""
  half = kernel // 2
  if strides == 1:
    return None
  low = half - (1 - size % 2)
  return ((low, half), (low, half))


@register("efficientnet_b0")
class EfficientNetB0(nn.Module):
  """Features: ``stem``, ``stage1``…``stage7``, ``last_conv``, ``pre_logits``."""
  num_classes: int
  dropout_rate: float = 0.2
  drop_connect_rate: float = 0.2
  padding_style: str = "torch"
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  def _padding(self, x, kernel, strides):
    if self.padding_style == "torch":
      return None
    if self.padding_style == "keras":
      return keras_padding(x.shape[1], kernel, strides)
    raise ValueError(f"padding_style must be 'torch' or 'keras', got {self.padding_style!r}")

  @nn.compact
  def __call__(self, x, train: bool = False):
    features = {}
    bn = dict(bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon,
              bn_axis_name=self.bn_axis_name, dtype=self.dtype)
    x = x.astype(self.dtype)
    x = ConvBN(32, 3, 2, self._padding(x, 3, 2), act=nn.silu, name="stem_conv", **bn)(x, train)
    x = tap(self, features, "stem", x)
    total, index = sum(stage[-1] for stage in _STAGES), 0
    for i, (expand, kernel, stride, width, repeats) in enumerate(_STAGES, start=1):
      for j in range(repeats):
        strides = stride if j == 0 else 1
        x = MBConv(width, kernel, strides, expand, drop_rate=self.drop_connect_rate * index / total,
                   padding=self._padding(x, kernel, strides), name=f"stage{i}_block{j + 1}",
                   **bn)(x, train)
        index += 1
      x = tap(self, features, f"stage{i}", x)
    x = ConvBN(1280, 1, act=nn.silu, name="top_conv", **bn)(x, train)
    x = tap(self, features, "last_conv", x)
    x = GlobalAvgPool()(x)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = tap(self, features, "pre_logits", x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
    return logits.astype(jnp.float32), features
