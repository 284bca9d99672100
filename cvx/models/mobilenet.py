"""MobileNet v1 (Howard et al., 2017), Keras applications layout.

A 3×3/2 conv then 13 depthwise-separable blocks (3×3 depthwise → BN → ReLU6 →
1×1 pointwise → BN → ReLU6), global average pool, dropout, 1×1 conv head.
The width multiplier α thins every layer to ⌊α·channels⌋; the resolution
multiplier ρ is the input size (224·ρ). Padding is Keras' (so converted Keras
weights line up exactly): the stem is TF 'SAME' ((0, 1) on even sizes, (1, 1)
on odd), strided depthwise convs always pad (0, 1).
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cvx.layers.conv import ConvBN
from cvx.layers.pooling import GlobalAvgPool
from cvx.models.features import tap
from cvx.models.registry import register

# (pointwise channels, depthwise stride) of the 13 separable blocks.
_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
           (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
_KERAS_STRIDED_PAD = ((0, 1), (0, 1))


@register("mobilenet_v1")
class MobileNetV1(nn.Module):
  """Features: ``stem``, ``block1``…``block13``, ``last_conv``, ``pre_logits``."""
  num_classes: int
  alpha: float = 1.0
  dropout_rate: float = 1e-3
  bn_momentum: float = 0.99  # Keras'; 0.9 tracks fast-changing weights better
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  def _conv_bn(self, features, kernel, strides=1, groups=1, padding=None, name=None):
    if padding is None and strides == 2:
      padding = _KERAS_STRIDED_PAD
    return ConvBN(features, kernel, strides, padding, groups, nn.relu6,
                  bn_momentum=self.bn_momentum, bn_epsilon=1e-3, bn_axis_name=self.bn_axis_name,
                  dtype=self.dtype, name=name)

  @nn.compact
  def __call__(self, x, train: bool = False):
    if not 0 < self.alpha <= 1:
      raise ValueError(f"width multiplier alpha must be in (0, 1], got {self.alpha}")
    features = {}
    width = int(32 * self.alpha)
    x = self._conv_bn(width, 3, 2, padding="SAME", name="conv1")(x.astype(self.dtype), train)
    x = tap(self, features, "stem", x)
    for i, (channels, strides) in enumerate(_BLOCKS, start=1):
      x = self._conv_bn(width, 3, strides, groups=width, name=f"conv_dw_{i}")(x, train)
      width = int(channels * self.alpha)
      x = self._conv_bn(width, 1, name=f"conv_pw_{i}")(x, train)
      x = tap(self, features, f"block{i}", x)
    x = tap(self, features, "last_conv", x)
    x = GlobalAvgPool()(x)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = tap(self, features, "pre_logits", x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
    return logits.astype(jnp.float32), features
