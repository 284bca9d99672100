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


@functools.cache
def _registered() -> bool:
  try:
    library = build.load()
  except build.OneDnnUnavailable as error:
    logging.warning("native image ops unavailable, using XLA's: %s", error)
    return False
  jax.ffi.register_ffi_target(_SEPARABLE_U8, jax.ffi.pycapsule(getattr(library, _SEPARABLE_U8)),
                              platform="cpu")
  return True


def active() -> bool:
  """Whether ops traced now take the native kernels: on the CPU backend,
  unless ``CVX_NATIVE_OPS=0``, where the library builds (checked once)."""
  return (jax.default_backend() == "cpu" and os.environ.get("CVX_NATIVE_OPS", "1") != "0"
          and _registered())


def separable_u8(x: jax.Array, ky: np.ndarray, kx: np.ndarray, rows: np.ndarray,
                 cols: np.ndarray, left: int, bias: int, shift: int) -> jax.Array:
  """uint8((Σ_i ky[i] Σ_j kx[j] x[rows[h + i], cols[w + j]] + bias) >> shift)
  of uint8 N×H×W×C ``x``, same shape.

  ``rows`` (H + kh − 1) and ``cols`` (W + kw − 1) map padded to source
  indices, −1 for zeros (np.pad of an arange for a border mode), the image
  ``left`` columns into the padded row. Taps are non-negative integers with
  255·Σky·Σkx + bias < 2³² (the sums are exact uint32).
  """
  if (ky < 0).any() or (kx < 0).any() or 255 * int(ky.sum()) * int(kx.sum()) + bias >= 2**32:
    raise ValueError(f"separable_u8: taps must be >= 0 with sums below 2^32, got ky={ky}, "
                     f"kx={kx}, bias={bias}")
  as_int32 = lambda a: jnp.asarray(np.asarray(a, np.int32))
  call = jax.ffi.ffi_call(_SEPARABLE_U8, jax.ShapeDtypeStruct(x.shape, jnp.uint8),
                          vmap_method="expand_dims")
  return call(x, as_int32(rows), as_int32(cols), as_int32(ky), as_int32(kx),
              left=np.int64(left), bias=np.int64(bias), shift=np.int64(shift))
