"""DenseNet's dense block and transition layer (Huang et al., 2017).

Each layer of a dense block sees the concatenation of all earlier outputs:
BN → ReLU → 1×1 conv (bn_size·growth) → BN → ReLU → 3×3 conv (growth), and
appends ``growth_rate`` channels. A transition halves channels (1×1 conv,
``compression``) and resolution (2×2 average pool).
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cvx.layers.conv import Conv
from cvx.layers.pooling import AvgPool


class _PreActivation(nn.Module):
  """BN → ReLU → conv (no bias): DenseNet's composite function."""
  features: int
  kernel_size: int
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  bn_epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=self.bn_epsilon,
                     axis_name=self.bn_axis_name, dtype=self.dtype, name="bn")(x)
    k = self.kernel_size
    return Conv(self.features, (k, k), padding=(k - 1) // 2, use_bias=False,
                dtype=self.dtype, name="conv")(nn.relu(x))


class DenseBlock(nn.Module):
  """``num_layers`` densely connected layers: C_in + num_layers·growth_rate out."""
  num_layers: int
  growth_rate: int = 32
  bn_size: int = 4
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  bn_epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x, train: bool = False):
    for i in range(self.num_layers):
      y = _PreActivation(self.bn_size * self.growth_rate, 1, self.bn_axis_name,
                         self.dtype, self.bn_epsilon, name=f"layer{i}_conv1")(x, train)
      y = _PreActivation(self.growth_rate, 3, self.bn_axis_name, self.dtype,
                         self.bn_epsilon, name=f"layer{i}_conv2")(y, train)
      x = jnp.concatenate([x, y], axis=-1)
    return x


class Transition(nn.Module):
  """BN → ReLU → 1×1 conv to ⌊compression·C⌋ → 2×2 average pool."""
  compression: float = 0.5
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  bn_epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = _PreActivation(int(x.shape[-1] * self.compression), 1, self.bn_axis_name,
                       self.dtype, self.bn_epsilon, name="conv")(x, train)
    return AvgPool(2, name="pool")(x)
