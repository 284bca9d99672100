"""AlexNet (Krizhevsky et al., 2012): torchvision's one-GPU variant and the original.

``alexnet``: 64-192-384-256-256 convs, no LRN, 224×224 input (61,100,840
parameters). ``alexnet_lrn``: the paper's single-tower widths 96-256-384-384-256
with local response normalization after conv1 and conv2, 227×227 input —
seed 000's table (55×55×96 → 27×27×96 → … → 6×6×256).
"""
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cvx.layers.conv import Conv
from cvx.layers.norm import LocalResponseNorm
from cvx.layers.pooling import AdaptiveAvgPool, MaxPool
from cvx.models.features import tap
from cvx.models.registry import register


class AlexNet(nn.Module):
  """Five convs (ReLU; pools after 1, 2, 5) → 6×6 avg pool → 4096 → 4096 → classes.

  Features: ``conv1``…``conv5`` (after ReLU), ``last_conv`` (conv5, before
  its pool), ``pre_logits``.
  """
  num_classes: int
  widths: Sequence[int] = (64, 192, 384, 256, 256)
  conv1_padding: int = 2
  lrn: bool = False
  dropout_rate: float = 0.5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    features = {}
    x = x.astype(self.dtype)
    specs = [(11, 4, self.conv1_padding), (5, 1, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1)]
    for i, (width, (k, stride, pad)) in enumerate(zip(self.widths, specs), start=1):
      x = Conv(width, (k, k), strides=stride, padding=pad, dtype=self.dtype,
               name=f"conv{i}_conv")(x)
      x = tap(self, features, f"conv{i}", nn.relu(x))
      if self.lrn and i <= 2:
        x = LocalResponseNorm(name=f"lrn{i}")(x)
      if i == 5:
        x = tap(self, features, "last_conv", x)
      if i in (1, 2, 5):
        x = MaxPool(3, 2, name=f"pool{i}")(x)
    x = AdaptiveAvgPool((6, 6))(x).reshape(x.shape[0], -1)
    for i in (6, 7):
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
      x = nn.relu(nn.Dense(4096, dtype=self.dtype, name=f"fc{i}")(x))
    x = tap(self, features, "pre_logits", x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
    return logits.astype(jnp.float32), features


register("alexnet")(AlexNet)
register("alexnet_lrn")(functools.partial(
    AlexNet, widths=(96, 256, 384, 384, 256), conv1_padding=0, lrn=True))
