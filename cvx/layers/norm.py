"""Normalization layers beyond flax's BatchNorm: AlexNet's local response norm."""
import flax.linen as nn
import jax
import jax.numpy as jnp


class LocalResponseNorm(nn.Module):
  """Across-channel LRN (Krizhevsky et al., 2012), NHWC.

  b_c = a_c / (k + α·Σ_{c'} a_{c'}²)^β over ``size`` neighbouring channels
  centred on c (zeros beyond the ends). This is the paper's α: PyTorch's
  ``LocalResponseNorm`` divides α by ``size``, so its α equals ours × size.
  Paper values: size 5, k 2, α 1e-4, β 0.75.
  """
  size: int = 5
  alpha: float = 1e-4
  beta: float = 0.75
  k: float = 2.0

  def __call__(self, x):
    squares = jnp.square(x.astype(jnp.float32))
    window = (1,) * (x.ndim - 1) + (self.size,)
    pads = [(0, 0)] * (x.ndim - 1) + [(self.size // 2, (self.size - 1) // 2)]
    sums = jax.lax.reduce_window(squares, 0.0, jax.lax.add, window,
                                 (1,) * x.ndim, pads)
    return (x / (self.k + self.alpha * sums) ** self.beta).astype(x.dtype)
