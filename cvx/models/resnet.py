"""ResNet-18/34/50/101/152 (He et al., 2016), torchvision layout by default.

Variants are data: stage sizes and block type per depth. Options: ``version``
('v1.5' strides the bottleneck's 3×3, torchvision; 'v1' its first 1×1, the
paper), ``stem`` ('imagenet': 7×7/2 conv + 3×3/2 max pool; 'cifar': one 3×3
conv, no pool, for 32×32 inputs), ``plain`` (no shortcuts, the paper's plain
nets), ``width`` (channels of the first stage), ``conv_bias`` and
``bn_epsilon`` (Keras' ResNets: v1 with a bias in every conv and ε = 1.001e-5,
25,636,712 parameters and statistics for ResNet-50).
"""
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cvx.layers.conv import ConvBN
from cvx.layers.pooling import GlobalAvgPool, MaxPool
from cvx.layers.residual import BasicBlock, Bottleneck
from cvx.models.features import tap
from cvx.models.registry import register


class ResNet(nn.Module):
  """Features: ``stem``, ``stage1``…``stage4``, ``last_conv``, ``pre_logits``."""
  num_classes: int
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  block: str = "basic"
  version: str = "v1.5"
  stem: str = "imagenet"
  plain: bool = False
  width: int = 64
  conv_bias: bool = False
  bn_epsilon: float = 1e-5
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  def _block(self, features, strides, name):
    common = dict(features=features, strides=strides, plain=self.plain,
                  conv_bias=self.conv_bias, bn_epsilon=self.bn_epsilon,
                  bn_axis_name=self.bn_axis_name, dtype=self.dtype, name=name)
    if self.block == "basic":
      return BasicBlock(**common)
    return Bottleneck(version=self.version, **common)

  def _stem(self, x, train):
    common = dict(conv_bias=self.conv_bias, bn_epsilon=self.bn_epsilon,
                  bn_axis_name=self.bn_axis_name, dtype=self.dtype, name="conv1")
    if self.stem == "cifar":
      return ConvBN(self.width, 3, **common)(x, train)
    if self.stem != "imagenet":
      raise ValueError(f"stem must be 'imagenet' or 'cifar', got {self.stem!r}")
    x = ConvBN(self.width, 7, 2, padding=3, **common)(x, train)
    return MaxPool(3, 2, 1, name="maxpool")(x)

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.block not in ("basic", "bottleneck"):
      raise ValueError(f"block must be 'basic' or 'bottleneck', got {self.block!r}")
    features = {}
    x = tap(self, features, "stem", self._stem(x.astype(self.dtype), train))
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        strides = 2 if i > 0 and j == 0 else 1
        x = self._block(self.width * 2**i, strides, f"stage{i + 1}_block{j + 1}")(x, train)
      x = tap(self, features, f"stage{i + 1}", x)
    x = tap(self, features, "last_conv", x)
    x = tap(self, features, "pre_logits", GlobalAvgPool()(x))
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
    return logits.astype(jnp.float32), features


_DEPTHS = {
    18: ((2, 2, 2, 2), "basic"),
    34: ((3, 4, 6, 3), "basic"),
    50: ((3, 4, 6, 3), "bottleneck"),
    101: ((3, 4, 23, 3), "bottleneck"),
    152: ((3, 8, 36, 3), "bottleneck"),
}

for _depth, (_sizes, _block) in _DEPTHS.items():
  register(f"resnet{_depth}")(functools.partial(ResNet, stage_sizes=_sizes, block=_block))
  register(f"resnet{_depth}_plain")(
      functools.partial(ResNet, stage_sizes=_sizes, block=_block, plain=True))
