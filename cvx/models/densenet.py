"""DenseNet-121 (Huang et al., 2017), torchvision layout.

Stem (7×7/2 conv, BN, ReLU, 3×3/2 max pool) → dense blocks of 6, 12, 24, 16
layers (growth 32, bottleneck 4·growth) with halving transitions between →
BN → ReLU → global average pool → FC. ``bn_epsilon``: 1e-5 in torchvision,
1.001e-5 in Keras.
"""
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cvx.layers.conv import ConvBN
from cvx.layers.dense import DenseBlock, Transition
from cvx.layers.pooling import GlobalAvgPool, MaxPool
from cvx.models.features import tap
from cvx.models.registry import register


class DenseNet(nn.Module):
  """Features: ``stem``, ``block1``…``block4``, ``last_conv``, ``pre_logits``."""
  num_classes: int
  block_sizes: Sequence[int] = (6, 12, 24, 16)
  growth_rate: int = 32
  stem_width: int = 64
  bn_size: int = 4
  bn_epsilon: float = 1e-5
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    features = {}
    x = ConvBN(self.stem_width, 7, 2, 3, bn_epsilon=self.bn_epsilon,
               bn_axis_name=self.bn_axis_name, dtype=self.dtype,
               name="conv0")(x.astype(self.dtype), train)
    x = tap(self, features, "stem", MaxPool(3, 2, 1, name="pool0")(x))
    for i, num_layers in enumerate(self.block_sizes, start=1):
      x = DenseBlock(num_layers, self.growth_rate, self.bn_size, self.bn_axis_name,
                     self.dtype, self.bn_epsilon, name=f"denseblock{i}")(x, train)
      x = tap(self, features, f"block{i}", x)
      if i < len(self.block_sizes):
        x = Transition(bn_axis_name=self.bn_axis_name, dtype=self.dtype,
                       bn_epsilon=self.bn_epsilon, name=f"transition{i}")(x, train)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=self.bn_epsilon,
                     axis_name=self.bn_axis_name, dtype=self.dtype, name="norm5")(x)
    x = tap(self, features, "last_conv", nn.relu(x))
    x = tap(self, features, "pre_logits", GlobalAvgPool()(x))
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
    return logits.astype(jnp.float32), features


register("densenet121")(functools.partial(DenseNet, block_sizes=(6, 12, 24, 16)))
