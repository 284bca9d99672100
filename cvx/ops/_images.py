"""Shared checks and shape handling for cvx.ops (private).

Ops accept H×W, H×W×C or N×H×W×C images. Spatial ops work on N×H×W×C:
:func:`as_batch` lifts any accepted rank to four and returns the inverse.
"""
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


def check_image(image, name: str = "image", fn: str = "") -> jax.Array:
  """Returns ``image`` as a jax array after checking its rank and dtype."""
  image = jnp.asarray(image)
  where = f"{fn}: " if fn else ""
  if image.ndim not in (2, 3, 4):
    raise ValueError(f"{where}{name} must be H×W, H×W×C or N×H×W×C, got shape "
                     f"{image.shape}")
  if image.dtype != jnp.uint8 and not jnp.issubdtype(image.dtype, jnp.floating):
    raise TypeError(f"{where}{name} must be uint8 or float, got dtype {image.dtype}")
  return image


def check_choice(fn: str, name: str, value, allowed: dict):
  """Raises ValueError unless ``value`` is one of ``allowed`` (value → label)."""
  if not isinstance(value, (int, np.integer)) or value not in allowed.values():
    names = ", ".join(f"{v} ({k})" for k, v in allowed.items())
    raise ValueError(f"{fn}: {name}={value!r} is not one of {names}")


def ksize_pair(fn: str, ksize, odd: bool = True, allow_zero: bool = False):
  """(width, height) from an int or a pair, checked positive (and odd)."""
  pair = (ksize, ksize) if isinstance(ksize, (int, np.integer)) else tuple(ksize)
  if len(pair) != 2 or not all(isinstance(k, (int, np.integer)) for k in pair):
    raise ValueError(f"{fn}: ksize must be an int or (width, height), got {ksize!r}")
  for k in pair:
    if (k == 0 and allow_zero):
      continue
    if k < 1 or (odd and k % 2 == 0):
      kind = "odd positive" if odd else "positive"
      raise ValueError(f"{fn}: ksize must be {kind}, got {ksize!r}")
  return int(pair[0]), int(pair[1])


def as_batch(image: jax.Array) -> tuple[jax.Array, Callable[[jax.Array], jax.Array]]:
  """N×H×W×C view of ``image`` and a function mapping N×H×W×C' back."""
  rank = image.ndim
  if rank == 2:
    return image[None, :, :, None], lambda y: y[0, :, :, 0] if y.shape[-1] == 1 else y[0]
  if rank == 3:
    return image[None], lambda y: y[0]
  return image, lambda y: y


def to_float(image: jax.Array) -> jax.Array:
  """float32 copy; uint8 keeps its 0..255 values (no rescaling)."""
  return image.astype(jnp.float32)


def saturate_uint8(x: jax.Array) -> jax.Array:
  """cv::saturate_cast<uchar>: round half to even, then clip to 0..255."""
  return jnp.clip(jnp.round(x), 0, 255).astype(jnp.uint8)


def cast_like(x: jax.Array, image: jax.Array) -> jax.Array:
  """Back to ``image``'s dtype: saturate for uint8, else float32."""
  return saturate_uint8(x) if image.dtype == jnp.uint8 else x.astype(jnp.float32)
