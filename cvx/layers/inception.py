"""The Inception module (Szegedy et al., 2015) and GoogLeNet's auxiliary head.

Four parallel branches concatenated on channels: 1×1; 1×1 reduce → 3×3;
1×1 reduce → 5×5; 3×3 max pool (stride 1) → 1×1 projection. The naive
module (``reduce=False``) has no reduce or projection convs: seed 000's cost
example, where a 1×1 reduce before the 5×5 cuts the multiplications ~10×.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cvx.layers.conv import Conv, ConvBN
from cvx.layers.pooling import AdaptiveAvgPool, MaxPool


class Inception(nn.Module):
  """Output channels: ch1x1 + ch3x3 + ch5x5 + (pool_proj or C_in if naive).

  ``kernel5`` is the kernel of the "5×5" branch: torchvision's GoogLeNet uses
  3 there (a bug kept for its pretrained weights), the paper 5. Convs are
  conv-BN-ReLU (BN ε = 1e-3, as torchvision) unless ``batch_norm=False``,
  which gives the paper's conv(bias)-ReLU.
  """
  ch1x1: int
  ch3x3red: int
  ch3x3: int
  ch5x5red: int
  ch5x5: int
  pool_proj: int
  reduce: bool = True
  kernel5: int = 5
  batch_norm: bool = True
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  def _conv(self, features, kernel, name):
    if self.batch_norm:
      return ConvBN(features, kernel, bn_epsilon=1e-3, bn_axis_name=self.bn_axis_name,
                    dtype=self.dtype, name=name)
    return lambda x, train: nn.relu(Conv(features, (kernel, kernel),
                                         padding=(kernel - 1) // 2,
                                         dtype=self.dtype, name=name)(x))

  @nn.compact
  def __call__(self, x, train: bool = False):
    pooled = MaxPool(3, 1, 1, ceil_mode=True, name="pool")(x)
    if not self.reduce:
      return jnp.concatenate([
          self._conv(self.ch1x1, 1, "branch1")(x, train),
          self._conv(self.ch3x3, 3, "branch2")(x, train),
          self._conv(self.ch5x5, self.kernel5, "branch3")(x, train),
          pooled], axis=-1)
    b2 = self._conv(self.ch3x3red, 1, "branch2_reduce")(x, train)
    b3 = self._conv(self.ch5x5red, 1, "branch3_reduce")(x, train)
    return jnp.concatenate([
        self._conv(self.ch1x1, 1, "branch1")(x, train),
        self._conv(self.ch3x3, 3, "branch2")(b2, train),
        self._conv(self.ch5x5, self.kernel5, "branch3")(b3, train),
        self._conv(self.pool_proj, 1, "branch4")(pooled, train)], axis=-1)


class InceptionAux(nn.Module):
  """Auxiliary classifier: 4×4 avg pool → 1×1 conv 128 → FC 1024 → dropout → FC.

  The last layer is named ``head``, like the main classifier's, so a new
  ``num_classes`` re-initialises it and freeze policies treat it as a head.
  """
  num_classes: int
  dropout_rate: float = 0.7
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = AdaptiveAvgPool((4, 4))(x)
    x = ConvBN(128, 1, bn_epsilon=1e-3, bn_axis_name=self.bn_axis_name,
               dtype=self.dtype, name="conv")(x, train)
    x = nn.relu(nn.Dense(1024, dtype=self.dtype, name="fc1")(x.reshape(x.shape[0], -1)))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
