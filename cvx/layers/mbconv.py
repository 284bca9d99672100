"""MBConv (inverted residual with squeeze-excitation), EfficientNet's block.

1×1 expand (× ``expand_ratio``, skipped at 1) → k×k depthwise (stride) →
squeeze-excitation → 1×1 project (linear), with SiLU activations and an
identity shortcut + stochastic depth when stride is 1 and widths match.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cvx.layers.conv import ConvBN, pointwise


class SqueezeExcite(nn.Module):
  """x · σ(W₂ silu(W₁ GAP(x))): channel gates from global context (1×1 convs with bias)."""
  squeeze_features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    s = jnp.mean(x, axis=(1, 2), keepdims=True)
    s = nn.silu(pointwise(self.squeeze_features, True, self.dtype, name="reduce")(s))
    s = nn.sigmoid(pointwise(x.shape[-1], True, self.dtype, name="expand")(s))
    return x * s


class MBConv(nn.Module):
  """``padding``: None pads (k − 1)/2 each side (torchvision); Keras pads
  strided depthwise convs asymmetrically — pass its pairs explicitly."""
  features: int
  kernel_size: int = 3
  strides: int = 1
  expand_ratio: int = 6
  se_ratio: float = 0.25
  drop_rate: float = 0.0
  padding: Any = None
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  def _conv_bn(self, features, kernel, strides=1, groups=1, act=nn.silu,
               padding=None, name=None):
    return ConvBN(features, kernel, strides, padding, groups, act,
                  bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon,
                  bn_axis_name=self.bn_axis_name, dtype=self.dtype, name=name)

  @nn.compact
  def __call__(self, x, train: bool = False):
    inputs, width = x, x.shape[-1] * self.expand_ratio
    if self.expand_ratio != 1:
      x = self._conv_bn(width, 1, name="expand")(x, train)
    x = self._conv_bn(width, self.kernel_size, self.strides, groups=width,
                      padding=self.padding, name="depthwise")(x, train)
    squeeze = max(1, int(inputs.shape[-1] * self.se_ratio))
    x = SqueezeExcite(squeeze, self.dtype, name="se")(x)
    x = self._conv_bn(self.features, 1, act=None, name="project")(x, train)
    if self.strides == 1 and inputs.shape[-1] == self.features:
      x = nn.Dropout(self.drop_rate, broadcast_dims=(1, 2, 3),
                     deterministic=not train)(x)
      x = x + inputs
    return x
