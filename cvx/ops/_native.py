"""cvx's native CPU kernels for image ops: XLA FFI custom calls compiled with
the conv library (``cvx.layers.onednn.build``), used at trace time on the CPU
backend only; other backends, and ``CVX_NATIVE_OPS=0``, keep the XLA ops."""
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from cvx.layers.onednn import build

_SEPARABLE_U8 = "CvxSeparableU8"
_SEPARABLE_U8_SIGNED = {np.dtype(np.float32): ("CvxSeparableU8F32", 2**31),
                        np.dtype(np.int16): ("CvxSeparableU8I16", 2**15)}
_EXTREME_U8 = "CvxExtremeU8"


@functools.cache
def _registered() -> bool:
  try:
    library = build.load()
  except build.OneDnnUnavailable as error:
    logging.warning("native image ops unavailable, using XLA's: %s", error)
    return False
  for target in (_SEPARABLE_U8, *(t for t, _ in _SEPARABLE_U8_SIGNED.values()), _EXTREME_U8):
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, target)),
                                platform="cpu")
  return True


def active() -> bool:
  """Whether ops traced now take the native kernels: on the CPU backend,
  unless ``CVX_NATIVE_OPS=0``, where the library builds (checked once)."""
  return (jax.default_backend() == "cpu" and os.environ.get("CVX_NATIVE_OPS", "1") != "0"
          and _registered())


def _int32(a) -> jax.Array:
  return jnp.asarray(np.asarray(a, np.int32))


def _largest_sum(ky: np.ndarray, kx: np.ndarray) -> int:
  return 255 * int(np.abs(ky).sum()) * int(np.abs(kx).sum())


def _check_bound(fn: str, ky: np.ndarray, kx: np.ndarray, bias: int, limit: int) -> None:
  if _largest_sum(ky, kx) + bias >= limit:
    raise ValueError(f"{fn}: 255·Σ|ky|·Σ|kx| + bias must stay below {limit}, got ky={ky}, "
                     f"kx={kx}, bias={bias}")


def separable_u8(x: jax.Array, ky: np.ndarray, kx: np.ndarray, rows: np.ndarray,
                 cols: np.ndarray, left: int, bias: int, shift: int) -> jax.Array:
  """uint8((Σ_i ky[i] Σ_j kx[j] x[rows[h + i], cols[w + j]] + bias) >> shift)
  of uint8 N×H×W×C ``x``, same shape.

  ``rows`` (H + kh − 1) and ``cols`` (W + kw − 1) map padded to source
  indices, −1 for zeros (:func:`cvx.ops.borders.source_indices`), the image
  ``left`` columns into the padded row. Taps are non-negative integers with
  255·Σky·Σkx + bias < 2³² (the sums are exact).
  """
  if (ky < 0).any() or (kx < 0).any():
    raise ValueError(f"separable_u8: taps must be >= 0, got ky={ky}, kx={kx}")
  _check_bound("separable_u8", ky, kx, bias, 2**32)
  call = jax.ffi.ffi_call(_SEPARABLE_U8, jax.ShapeDtypeStruct(x.shape, jnp.uint8),
                          vmap_method="expand_dims")
  return call(x, _int32(rows), _int32(cols), _int32(ky), _int32(kx), left=np.int64(left),
              bias=np.int64(bias), shift=np.int64(shift))


def signed_sums_fit(ky: np.ndarray, kx: np.ndarray, dtype) -> bool:
  """Whether :func:`separable_u8_signed` takes these taps into ``dtype``."""
  return _largest_sum(ky, kx) < _SEPARABLE_U8_SIGNED[np.dtype(dtype)][1]


def separable_u8_signed(x: jax.Array, ky: np.ndarray, kx: np.ndarray, rows: np.ndarray,
                        cols: np.ndarray, left: int, dtype) -> jax.Array:
  """dtype(Σ_i ky[i] Σ_j kx[j] x[rows[h + i], cols[w + j]]) of uint8
  N×H×W×C ``x``, same shape, exact: integer taps of either sign with
  255·Σ|ky|·Σ|kx| below 2³¹ for float32, 2¹⁵ for int16 (no saturation); the
  maps as in :func:`separable_u8`."""
  if np.dtype(dtype) not in _SEPARABLE_U8_SIGNED:
    raise ValueError(f"separable_u8_signed: dtype must be float32 or int16, got {dtype}")
  target, limit = _SEPARABLE_U8_SIGNED[np.dtype(dtype)]
  _check_bound("separable_u8_signed", ky, kx, 0, limit)
  call = jax.ffi.ffi_call(target, jax.ShapeDtypeStruct(x.shape, dtype), vmap_method="expand_dims")
  return call(x, _int32(rows), _int32(cols), _int32(ky), _int32(kx), left=np.int64(left))


def extreme_u8(x: jax.Array, kh: int, kw: int, rows: np.ndarray, cols: np.ndarray, left: int,
               fill: int, use_max: bool) -> jax.Array:
  """Min (or max) of uint8 N×H×W×C ``x`` over kh × kw rectangles,
  x[rows[h + i], cols[w + j]] for i < kh, j < kw, ``fill`` (0..255) where a
  map reads −1; the maps as in :func:`separable_u8`. Same shape."""
  if not 0 <= fill <= 255:
    raise ValueError(f"extreme_u8: fill must be in 0..255, got {fill}")
  call = jax.ffi.ffi_call(_EXTREME_U8, jax.ShapeDtypeStruct(x.shape, jnp.uint8),
                          vmap_method="expand_dims")
  return call(x, _int32(rows), _int32(cols), kh=np.int64(kh), kw=np.int64(kw),
              left=np.int64(left), fill=np.int64(fill), use_max=np.int64(use_max))
