"""LeNet-5 (LeCun et al., 1998) with ReLU and max pooling, as taught today."""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cvx.layers.conv import Conv
from cvx.layers.pooling import MaxPool
from cvx.models.features import tap
from cvx.models.registry import register


@register("lenet5")
class LeNet5(nn.Module):
  """conv5×5(6, pad 2) → pool → conv5×5(16) → pool → 120 → 84 → num_classes.

  Input: N×28×28×C (MNIST); 61,706 parameters for one channel and 10 classes.
  ``batch_norm=True`` inserts BatchNorm after each conv (conv → BN → ReLU →
  pool, the refinement in seed 001); ``bn_axis_name`` names the pmap axis its
  statistics are averaged over.
  """
  num_classes: int
  dropout_rate: float = 0.0
  batch_norm: bool = False
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    features = {}
    for i, (width, padding) in enumerate([(6, 2), (16, "VALID")], start=1):
      x = Conv(width, (5, 5), padding=padding, use_bias=not self.batch_norm,
               dtype=self.dtype, name=f"conv{i}")(x)
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                         axis_name=self.bn_axis_name, dtype=self.dtype,
                         name=f"bn{i}")(x)
      x = tap(self, features, f"stage{i}", nn.relu(x))
      if i == 2:
        x = tap(self, features, "last_conv", x)
      x = MaxPool(2, name=f"pool{i}")(x)
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(120, dtype=self.dtype, name="fc1")(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = nn.relu(nn.Dense(84, dtype=self.dtype, name="fc2")(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = tap(self, features, "pre_logits", x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
    return logits.astype(jnp.float32), features
