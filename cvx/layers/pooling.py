"""Pooling layers as modules, so model summaries and receptive fields see them.

``MaxPool``/``AvgPool`` take PyTorch's ``ceil_mode`` (GoogLeNet needs it) and
AvgPool's ``count_include_pad``. On CPU (with the conv lowering of
:mod:`cvx.layers.conv_lowering` active), an unpadded max pool whose stride
equals its window is an elementwise maximum of the k² strided views, with a
gradient that goes to each tile's first maximum (as XLA's and PyTorch's):
XLA:CPU's ``select_and_scatter`` gradient of ``reduce_window`` is several times
slower. ``AdaptiveAvgPool`` reproduces
``torch.nn.AdaptiveAvgPool2d`` bins: row i averages [⌊i·H/h⌋, ⌈(i+1)·H/h⌉).
"""
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from cvx.layers import conv_lowering


def _pool_pads(size: int, window: int, stride: int, pad: int, ceil_mode: bool):
  """(low, high) pads so the pool yields PyTorch's output length."""
  span = size + 2 * pad - window
  if span < 0:
    raise ValueError(f"pool window {window} is larger than the padded input "
                     f"{size} + 2·{pad}")
  if not ceil_mode:
    return pad, pad
  out = math.ceil(span / stride) + 1
  if (out - 1) * stride >= size + pad:  # last window must start inside the input
    out -= 1
  return pad, (out - 1) * stride + window - size - pad


class _Pool(nn.Module):
  """``padding``: a symmetric int (PyTorch) or ``'SAME'``/``'VALID'`` (Keras/TF)."""
  window: int = 2
  strides: int | None = None
  padding: int | str = 0
  ceil_mode: bool = False

  def _pads(self, x):
    stride = self.strides or self.window
    if isinstance(self.padding, str):
      return self.padding, stride
    return [_pool_pads(n, self.window, stride, self.padding, self.ceil_mode)
            for n in x.shape[1:3]], stride


class MaxPool(_Pool):
  """Max over ``window``×``window`` (stride defaults to the window)."""

  def __call__(self, x):
    pads, stride = self._pads(x)
    unpadded = pads == "VALID" or (not isinstance(pads, str) and not any(sum(pads, ())))
    if unpadded and stride == self.window and conv_lowering.cpu_lowering_active():
      return _tiled_max(x, self.window)
    return nn.max_pool(x, (self.window,) * 2, (stride,) * 2, padding=pads)


class AvgPool(_Pool):
  """Mean over ``window``×``window``; padded zeros count iff ``count_include_pad``."""
  count_include_pad: bool = True

  def __call__(self, x):
    pads, stride = self._pads(x)
    if self.count_include_pad and not isinstance(pads, str):
      # PyTorch counts the symmetric zero padding but not ceil mode's extra
      # cells: pad explicitly, and let the pool exclude only the extra.
      x = jnp.pad(x, ((0, 0), (self.padding,) * 2, (self.padding,) * 2, (0, 0)))
      pads = [(0, high - self.padding) for _, high in pads]
    return nn.avg_pool(x, (self.window,) * 2, (stride,) * 2, padding=pads,
                       count_include_pad=isinstance(pads, str) and self.count_include_pad)


class GlobalAvgPool(nn.Module):
  """N×H×W×C → N×C (or N×1×1×C with ``keepdims``): GAP, seed 001."""
  keepdims: bool = False

  def __call__(self, x):
    return jnp.mean(x, axis=(1, 2), keepdims=self.keepdims)


class AdaptiveAvgPool(nn.Module):
  """N×H×W×C → N×h×w×C with PyTorch's bin edges (``output_size`` = (h, w))."""
  output_size: tuple[int, int]

  def __call__(self, x):
    rows = self._bins(x.shape[1], self.output_size[0])
    cols = self._bins(x.shape[2], self.output_size[1])
    return jnp.stack([
        jnp.stack([x[:, r0:r1, c0:c1].mean(axis=(1, 2)) for c0, c1 in cols], axis=1)
        for r0, r1 in rows], axis=1)

  @staticmethod
  def _bins(size: int, bins: int):
    return [((i * size) // bins, -((-(i + 1) * size) // bins)) for i in range(bins)]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _tiled_max(x, k: int):
  """Non-overlapping k×k max pool (floor mode) as a maximum of k² strided views."""
  return functools.reduce(jnp.maximum, _views(x, k))


def _views(x, k: int):
  """The k² strided views of x's k×k tiles, in row-major order within a tile."""
  n, h, w, c = x.shape
  tiles = x[:, :h // k * k, :w // k * k].reshape(n, h // k, k, w // k, k, c)
  return [tiles[:, :, i, :, j] for i in range(k) for j in range(k)]


def _tiled_max_fwd(x, k):
  y = _tiled_max(x, k)
  return y, (x, y)


def _tiled_max_bwd(k, residuals, g):
  """The gradient goes to the first maximum of each tile (row-major), as in
  XLA's ``select_and_scatter`` and PyTorch, not shared between tied values."""
  x, y = residuals
  taken = jnp.zeros(y.shape, bool)
  grads = []
  for view in _views(x, k):
    first = (view == y) & ~taken
    taken |= first
    grads.append(jnp.where(first, g, 0))
  n, h, w, c = x.shape
  tiles = jnp.stack(grads, axis=0).reshape(k, k, n, h // k, w // k, c)
  dx = tiles.transpose(2, 3, 0, 4, 1, 5).reshape(n, h // k * k, w // k * k, c)
  return (jnp.pad(dx, ((0, 0), (0, h % k), (0, w % k), (0, 0))),)


_tiled_max.defvjp(_tiled_max_fwd, _tiled_max_bwd)
