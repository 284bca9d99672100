"""Xception's flows (Chollet, 2017): depthwise-separable convs with residuals.

Entry flow: two 3×3 convs, then three blocks (128, 256, 728) of
[ReLU] → sep → BN → ReLU → sep → BN → 3×3/2 max pool, plus a strided 1×1
projection shortcut. Middle flow: 8 × three (ReLU → sep 728 → BN) with an
identity shortcut. Exit flow: a (728, 1024) block, then sep 1536 and sep 2048
with BN and ReLU. Padding and BatchNorm (ε 1e-3) follow Keras' Xception.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cvx.layers.conv import Conv, SeparableConv
from cvx.layers.pooling import MaxPool


class _XceptionModule(nn.Module):
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  def _bn(self, train, name):
    return nn.BatchNorm(use_running_average=not train, momentum=0.99, epsilon=1e-3,
                        axis_name=self.bn_axis_name, dtype=self.dtype, name=name)

  def _sep_bn(self, x, features, train, name):
    x = SeparableConv(features, 3, padding="SAME", dtype=self.dtype, name=name)(x)
    return self._bn(train, f"{name}_bn")(x)


class XceptionBlock(_XceptionModule):
  """sep(features[0]) → sep(features[1]) → max pool /2, + 1×1/2 projection."""
  features: Sequence[int] = (128, 128)
  relu_first: bool = True

  @nn.compact
  def __call__(self, x, train: bool = False):
    shortcut = Conv(self.features[1], (1, 1), strides=2, padding="SAME",
                    use_bias=False, dtype=self.dtype, name="shortcut")(x)
    shortcut = self._bn(train, "shortcut_bn")(shortcut)
    if self.relu_first:
      x = nn.relu(x)
    x = nn.relu(self._sep_bn(x, self.features[0], train, "sep1"))
    x = self._sep_bn(x, self.features[1], train, "sep2")
    return MaxPool(3, 2, "SAME", name="pool")(x) + shortcut


class MiddleBlock(_XceptionModule):
  """Three ReLU → sep → BN at constant width, identity shortcut."""
  features: int = 728

  @nn.compact
  def __call__(self, x, train: bool = False):
    y = x
    for i in range(3):
      y = self._sep_bn(nn.relu(y), self.features, train, f"sep{i + 1}")
    return y + x


class EntryFlow(_XceptionModule):
  """299×299×3 → 19×19×728."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    for i, width in enumerate((32, 64)):
      x = Conv(width, (3, 3), strides=2 - i, padding="VALID", use_bias=False,
               dtype=self.dtype, name=f"conv{i + 1}")(x)
      x = nn.relu(self._bn(train, f"conv{i + 1}_bn")(x))
    for i, width in enumerate((128, 256, 728)):
      x = XceptionBlock(features=(width, width), bn_axis_name=self.bn_axis_name,
                        dtype=self.dtype,
                        relu_first=i > 0, name=f"block{i + 1}")(x, train)
    return x


class MiddleFlow(_XceptionModule):
  """``repeats`` middle blocks at 728 channels."""
  repeats: int = 8

  @nn.compact
  def __call__(self, x, train: bool = False):
    for i in range(self.repeats):
      x = MiddleBlock(bn_axis_name=self.bn_axis_name, dtype=self.dtype,
                      name=f"block{i + 1}")(x, train)
    return x


class ExitFlow(_XceptionModule):
  """(728, 1024) block → sep 1536 → sep 2048, each BN + ReLU."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = XceptionBlock(features=(728, 1024), bn_axis_name=self.bn_axis_name,
                      dtype=self.dtype, name="block1")(x, train)
    for i, width in enumerate((1536, 2048)):
      x = nn.relu(self._sep_bn(x, width, train, f"sep{i + 1}"))
    return x
