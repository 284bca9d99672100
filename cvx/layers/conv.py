"""Convolutions in NHWC: plain, depthwise, pointwise, separable, conv-BN-act.

Every model in the zoo builds its convolutions from :class:`Conv`, so the
lowering of all of them is decided in one place. Padding follows
``flax.linen.Conv``: an int, per-dimension ``(low, high)`` pairs, ``'SAME'``
or ``'VALID'``. Flax's ``'SAME'`` pads a strided conv asymmetrically (more at
the bottom/right); PyTorch and Keras reference models pad explicitly, so the
zoo passes explicit pads where the reference does (e.g. ``3`` for a 7×7/2 stem).
"""
from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from cvx.layers import conv_lowering


class Conv(nn.Conv):
  """``flax.linen.Conv`` (kernel H×W×C_in/groups×C_out), the zoo's one conv.

  On CPU it lowers through :mod:`cvx.layers.conv_lowering` (oneDNN, or the
  matmul lowering; ``CVX_CPU_CONV=xla`` turns it off); elsewhere XLA's native
  conv.
  """
  conv_general_dilated: Any = conv_lowering.conv_general_dilated


def same_padding(kernel_size: int, dilation: int = 1) -> int:
  """Symmetric pad that keeps the size at stride 1: ⌊d·(k − 1)/2⌋ (PyTorch style)."""
  return dilation * (kernel_size - 1) // 2


class ConvBN(nn.Module):
  """conv → BatchNorm → activation; the block of most modern CNNs.

  ``padding=None`` pads symmetrically by ⌊(k − 1)/2⌋ (PyTorch/Keras 'same' at
  stride 1). ``act=None`` skips the activation (projection layers).
  ``bn_momentum`` is flax's (running = m·running + (1 − m)·batch), i.e.
  1 − PyTorch's momentum. ``conv_bias`` gives the conv a bias (redundant
  before BN, but Keras' ResNets have one).
  """
  features: int
  kernel_size: int = 3
  strides: int = 1
  padding: Any = None
  groups: int = 1
  act: Callable | None = nn.relu
  conv_bias: bool = False
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    k = self.kernel_size
    padding = same_padding(k) if self.padding is None else self.padding
    x = Conv(self.features, (k, k), strides=self.strides, padding=padding,
             feature_group_count=self.groups, use_bias=self.conv_bias, dtype=self.dtype,
             name="conv")(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                     epsilon=self.bn_epsilon, axis_name=self.bn_axis_name,
                     dtype=self.dtype, name="bn")(x)
    return x if self.act is None else self.act(x)


class DepthwiseConv(nn.Module):
  """One k×k filter per input channel (``feature_group_count = C_in``)."""
  kernel_size: int = 3
  strides: int = 1
  padding: Any = None
  depth_multiplier: int = 1
  use_bias: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    k, channels = self.kernel_size, x.shape[-1]
    padding = same_padding(k) if self.padding is None else self.padding
    return Conv(channels * self.depth_multiplier, (k, k), strides=self.strides,
                padding=padding, feature_group_count=channels,
                use_bias=self.use_bias, dtype=self.dtype, name="depthwise")(x)


def pointwise(features: int, use_bias: bool = False, dtype: Any = jnp.float32,
              name: str | None = None) -> Conv:
  """A 1×1 conv: mixes channels, touches no neighbours."""
  return Conv(features, (1, 1), use_bias=use_bias, dtype=dtype, name=name)


class SeparableConv(nn.Module):
  """Depthwise k×k then pointwise 1×1 (Keras ``SeparableConv2D``, no bias).

  Weights: k²·C_in + C_in·C_out versus k²·C_in·C_out for a full conv. With
  biases, seed 000's 3 → 64 example is 30 + 256 = 286 against 1,792.
  """
  features: int
  kernel_size: int = 3
  strides: int = 1
  padding: Any = None
  use_bias: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = DepthwiseConv(self.kernel_size, self.strides, self.padding,
                      use_bias=self.use_bias, dtype=self.dtype, name="dw")(x)
    return pointwise(self.features, self.use_bias, self.dtype, name="pw")(x)

