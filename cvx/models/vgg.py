"""VGG-11/13/16/19 (Simonyan & Zisserman, 2015), ± BatchNorm, torchvision layout.

Five stages of 3×3 convs (pad 1) each ended by a 2×2 max pool, then a 7×7
adaptive average pool and 4096 → 4096 → classes with dropout. ``_bn`` variants
put BatchNorm after every conv (bias kept, as torchvision).
"""
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cvx.layers.conv import Conv
from cvx.layers.pooling import AdaptiveAvgPool, MaxPool
from cvx.models.features import tap
from cvx.models.registry import register

_STAGES = {
    11: ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    13: ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    16: ((64, 64), (128, 128), (256,) * 3, (512,) * 3, (512,) * 3),
    19: ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}


class VGG(nn.Module):
  """Features: ``stage1``…``stage5`` (after pooling), ``last_conv`` (before the
  last pool, 14×14 at 224), ``pre_logits``. ``pool_size``/``hidden`` shrink
  the head for small inputs (e.g. (1, 1) and 512 at 32×32)."""
  num_classes: int
  stages: Sequence[Sequence[int]] = _STAGES[16]
  batch_norm: bool = False
  pool_size: tuple[int, int] = (7, 7)
  hidden: int = 4096
  dropout_rate: float = 0.5
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    features = {}
    x = x.astype(self.dtype)
    for i, widths in enumerate(self.stages, start=1):
      for j, width in enumerate(widths, start=1):
        x = Conv(width, (3, 3), padding=1, dtype=self.dtype, name=f"conv{i}_{j}")(x)
        if self.batch_norm:
          x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                           axis_name=self.bn_axis_name, dtype=self.dtype,
                           name=f"bn{i}_{j}")(x)
        x = nn.relu(x)
      if i == len(self.stages):
        x = tap(self, features, "last_conv", x)
      x = tap(self, features, f"stage{i}", MaxPool(2, name=f"pool{i}")(x))
    x = AdaptiveAvgPool(self.pool_size)(x).reshape(x.shape[0], -1)
    for i in (1, 2):
      x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name=f"fc{i}")(x))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = tap(self, features, "pre_logits", x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
    return logits.astype(jnp.float32), features


for _depth, _stages in _STAGES.items():
  register(f"vgg{_depth}")(functools.partial(VGG, stages=_stages))
  register(f"vgg{_depth}_bn")(functools.partial(VGG, stages=_stages, batch_norm=True))
