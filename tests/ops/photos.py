"""Real photographs for the cvx.ops tests and a runner for eager/jit/vmap/batch."""
import functools

import cv2
import jax
import numpy as np
from skimage import data

SIZE = (128, 96)  # (width, height), small enough for fast tests
GRAY = ("camera", "coins", "moon", "text")
COLOR = ("astronaut", "coffee", "chelsea")
MODES = ("eager", "jit", "vmap", "batch")


@functools.cache
def photo(name: str, size=SIZE, gray: bool = False) -> np.ndarray:
  """uint8 sample image resized with area averaging; RGB unless gray."""
  image = getattr(data, name)()
  if gray and image.ndim == 3:
    image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
  image = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if size else image
  image.setflags(write=False)
  return image


def run(mode: str, fn, images):
  """Applies ``fn`` to each of ``images`` (same shape) in ``mode``; list of numpy results.

  eager/jit call ``fn`` per image; vmap maps it over the stacked images; batch
  passes the stack itself (H×W images get a channel axis, removed again). Both
  batched modes run under jit, as in a train step (and to keep tests fast).
  """
  if mode in ("eager", "jit"):
    f = jax.jit(fn) if mode == "jit" else fn
    return [jax.tree.map(np.asarray, f(im)) for im in images]
  stack = np.stack(images)
  if mode == "vmap":
    out = jax.jit(jax.vmap(fn))(stack)
  else:
    squeeze = stack.ndim == 3
    out = jax.jit(fn)(stack[..., None] if squeeze else stack)
    if squeeze:
      out = jax.tree.map(lambda y: y[..., 0] if y.ndim == 4 else y, out)
  return [jax.tree.map(lambda y, i=i: np.asarray(y[i]), out) for i in range(len(images))]
