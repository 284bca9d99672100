"""Pooling layers as modules, so model summaries and receptive fields see them.

``MaxPool``/``AvgPool`` take PyTorch's ``ceil_mode`` (GoogLeNet needs it) and
AvgPool's ``count_include_pad``. ``AdaptiveAvgPool`` reproduces
``torch.nn.AdaptiveAvgPool2d`` bins: row i averages [⌊i·H/h⌋, ⌈(i+1)·H/h⌉).
"""
import math

import flax.linen as nn
import jax.numpy as jnp


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
    return nn.max_pool(x, (self.window,) * 2, (stride,) * 2, padding=pads)


class AvgPool(_Pool):
  """Mean over ``window``×``window``; padded zeros count iff ``count_include_pad``."""
  count_include_pad: bool = True

  def __call__(self, x):
    pads, stride = self._pads(x)
    return nn.avg_pool(x, (self.window,) * 2, (stride,) * 2, padding=pads,
                       count_include_pad=self.count_include_pad)


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
