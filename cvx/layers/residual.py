"""Residual blocks (He et al., 2016): basic (two 3×3) and bottleneck (1×1-3×3-1×1).

y = relu(F(x) + shortcut(x)). The shortcut is the identity when shapes match
and a 1×1 strided conv + BN projection ("reduce") when they do not.
``plain=True`` drops the shortcut entirely (the paper's plain networks, for
ablations). Bottleneck ``version``: 'v1.5' strides the 3×3 conv (torchvision),
'v1' strides the first 1×1 (the paper, Keras). ``conv_bias`` gives every conv
a bias, as Keras' ResNets have.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cvx.layers.conv import ConvBN


class _Residual(nn.Module):
  """Shared fields and the shortcut-add of both block types."""
  features: int
  strides: int = 1
  plain: bool = False
  conv_bias: bool = False
  bn_epsilon: float = 1e-5
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  def _conv_bn(self, features, kernel, strides=1, act=nn.relu, name=None):
    return ConvBN(features, kernel, strides, act=act, conv_bias=self.conv_bias,
                  bn_epsilon=self.bn_epsilon, bn_axis_name=self.bn_axis_name,
                  dtype=self.dtype, name=name)

  def _add_shortcut(self, residual, x, train):
    if self.plain:
      return nn.relu(residual)
    if x.shape != residual.shape:
      x = self._conv_bn(residual.shape[-1], 1, self.strides, act=None,
                        name="downsample")(x, train)
    return nn.relu(residual + x)


class BasicBlock(_Residual):
  """3×3 (stride) → 3×3, ``features`` output channels (ResNet-18/34)."""
  expansion = 1

  @nn.compact
  def __call__(self, x, train: bool = False):
    y = self._conv_bn(self.features, 3, self.strides, name="conv1")(x, train)
    y = self._conv_bn(self.features, 3, act=None, name="conv2")(y, train)
    return self._add_shortcut(y, x, train)


class Bottleneck(_Residual):
  """1×1 reduce → 3×3 → 1×1 expand to 4·``features`` (ResNet-50/101/152)."""
  version: str = "v1.5"
  expansion = 4

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.version not in ("v1", "v1.5"):
      raise ValueError(f"bottleneck version must be 'v1' or 'v1.5', got {self.version!r}")
    first, middle = (1, self.strides) if self.version == "v1.5" else (self.strides, 1)
    y = self._conv_bn(self.features, 1, first, name="conv1")(x, train)
    y = self._conv_bn(self.features, 3, middle, name="conv2")(y, train)
    y = self._conv_bn(self.features * 4, 1, act=None, name="conv3")(y, train)
    return self._add_shortcut(y, x, train)
