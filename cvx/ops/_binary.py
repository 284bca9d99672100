"""Single-channel inputs (edge maps, masks) as a stack of planes (private).

Binary-image ops accept H×W, H×W×1 or N×H×W×1 arrays, uint8, bool or float;
nonzero means foreground, as in OpenCV.
"""
import functools
from typing import Callable

import jax
import jax.numpy as jnp

from cvx.ops import _images


def planes(image, fn: str, name: str = "image") -> tuple[jax.Array, bool]:
  """(N×H×W bool planes, whether the input was a batch), checked."""
  image = jnp.asarray(image)
  if image.dtype != jnp.bool_:
    image = _images.check_image(image, name, fn)
  if image.ndim == 2:
    return image[None] != 0, False
  if image.ndim in (3, 4) and image.shape[-1] == 1:
    return image[..., 0].reshape((-1,) + image.shape[-3:-1]) != 0, image.ndim == 4
  raise ValueError(f"{fn}: {name} must be H×W, H×W×1 or N×H×W×1 (one channel), "
                   f"got shape {image.shape}")


@functools.lru_cache(maxsize=None)
def _compiled(core: Callable, static: tuple) -> Callable:
  return jax.jit(jax.vmap(functools.partial(core, **dict(static))))


def map_planes(core: Callable, stack: jax.Array, batched: bool, **static):
  """``core(plane, **static)`` on every plane, compiled once per setting.

  The static keyword arguments must be hashable. Drops the batch axis for one
  image. Under an outer ``jit`` or ``vmap`` the inner ``jit`` is inlined.
  """
  out = _compiled(core, tuple(sorted(static.items())))(stack)
  return out if batched else jax.tree.map(lambda a: a[0], out)
