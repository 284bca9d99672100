"""GoogLeNet / Inception v1 (Szegedy et al., 2015), torchvision layout.

Stem (7×7/2 conv, pool, 1×1, 3×3, pool) → inception 3a, 3b → pool →
4a…4e → pool → 5a, 5b → global average pool → dropout → FC. Pools use
PyTorch's ceil mode. With ``aux_logits`` two auxiliary classifiers read 4a
and 4d; their logits are returned as features ``aux1_logits``/``aux2_logits``
and the classification task weights their loss (0.3 by default).
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cvx.layers.conv import ConvBN
from cvx.layers.inception import Inception, InceptionAux
from cvx.layers.pooling import GlobalAvgPool, MaxPool
from cvx.models.features import tap
from cvx.models.registry import register

# name: (ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj), then a pool after 3b, 4e.
_INCEPTIONS = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


@register("googlenet")
class GoogLeNet(nn.Module):
  """Features: ``stem``, ``inception3b_out``, ``inception4e_out`` (before their
  pools), ``last_conv`` (5b), ``pre_logits`` (+ aux logits). ``kernel5=3`` is torchvision's "5×5" branch (6,624,904
  parameters); 5 is the paper's."""
  num_classes: int
  aux_logits: bool = False
  kernel5: int = 3
  dropout_rate: float = 0.2
  aux_dropout_rate: float = 0.7
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  def _conv(self, features, kernel, strides=1, padding=None, name=None):
    return ConvBN(features, kernel, strides, padding, bn_epsilon=1e-3,
                  bn_axis_name=self.bn_axis_name, dtype=self.dtype, name=name)

  def _aux(self, name):
    return InceptionAux(self.num_classes, self.aux_dropout_rate, self.bn_axis_name,
                        self.dtype, name=name)

  @nn.compact
  def __call__(self, x, train: bool = False):
    features = {}
    x = self._conv(64, 7, 2, 3, name="conv1")(x.astype(self.dtype), train)
    x = MaxPool(3, 2, ceil_mode=True, name="maxpool1")(x)
    x = self._conv(64, 1, name="conv2")(x, train)
    x = self._conv(192, 3, name="conv3")(x, train)
    x = tap(self, features, "stem", MaxPool(3, 2, ceil_mode=True, name="maxpool2")(x))
    for name, channels in _INCEPTIONS.items():
      x = Inception(*channels, kernel5=self.kernel5, bn_axis_name=self.bn_axis_name,
                    dtype=self.dtype, name=f"inception{name}")(x, train)
      if self.aux_logits and name in ("4a", "4d"):
        aux_name = "aux1" if name == "4a" else "aux2"
        features[f"{aux_name}_logits"] = self._aux(aux_name)(x, train).astype(jnp.float32)
      if name in ("3b", "4e"):
        x = tap(self, features, f"inception{name}_out", x)
        pool = MaxPool(3, 2, ceil_mode=True) if name == "3b" else MaxPool(2, 2, ceil_mode=True)
        x = pool(x)
    x = tap(self, features, "last_conv", x)
    x = GlobalAvgPool()(x)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = tap(self, features, "pre_logits", x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
    return logits.astype(jnp.float32), features
