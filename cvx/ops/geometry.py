"""Geometric transforms named after OpenCV: resize, flip, rotate, affine warps.

Sizes follow OpenCV: ``dsize`` is (width, height); affine matrices are 2×3 and
map source (x, y) to destination (x, y) unless ``WARP_INVERSE_MAP`` is set.
uint8 in → uint8 out (OpenCV's rounding); float stays float32.

- ``resize``: separable taps computed at trace time with OpenCV's coordinate
  rules (INTER_NEAREST: floor(x·src/dst); INTER_LINEAR: pixel centres,
  border replicated; INTER_AREA: exact pixel-overlap averaging when shrinking,
  OpenCV's clipped linear weights when enlarging).
- ``warp_affine``: OpenCV 5's sampling at float32 source points: INTER_NEAREST
  rounds them half to even; INTER_LINEAR lerps horizontally then vertically
  (uint8 rounds half to even). The matrix may be traced (random augmentation); bilinear warps are
  differentiable in the image and the matrix.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np

from cvx.ops import _images
from cvx.ops.borders import (BORDER_CONSTANT, BORDER_REFLECT, BORDER_REPLICATE, BORDER_WRAP,
                             check_border)

INTER_NEAREST = 0
INTER_LINEAR = 1
INTER_AREA = 3
WARP_INVERSE_MAP = 16
INTERPOLATIONS = {"INTER_NEAREST": INTER_NEAREST, "INTER_LINEAR": INTER_LINEAR,
                  "INTER_AREA": INTER_AREA}
ROTATE_90_CLOCKWISE = 0
ROTATE_180 = 1
ROTATE_90_COUNTERCLOCKWISE = 2
ROTATIONS = {"ROTATE_90_CLOCKWISE": ROTATE_90_CLOCKWISE, "ROTATE_180": ROTATE_180,
             "ROTATE_90_COUNTERCLOCKWISE": ROTATE_90_COUNTERCLOCKWISE}

# --- resize --------------------------------------------------------------------------------


def _nearest_index(src: int, dst: int) -> np.ndarray:
  """Source index floor(i·src/dst) of each destination index i (OpenCV's)."""
  return np.minimum(np.floor(np.arange(dst) * (src / dst)).astype(np.int64), src - 1)


def _linear_taps(src: int, dst: int):
  """(dst×2 source indices, dst×2 weights): pixel centres, border replicated."""
  x = ((np.arange(dst) + 0.5) * (src / dst) - 0.5).astype(np.float32)
  left = np.floor(x).astype(np.int64)
  frac = (x - left).astype(np.float64)
  frac[left < 0] = 0
  left = np.maximum(left, 0)
  frac[left >= src - 1] = 0
  left = np.minimum(left, src - 1)
  return np.stack([left, np.minimum(left + 1, src - 1)], 1), np.stack([1 - frac, frac], 1)


def _area_taps(src: int, dst: int, shrinking: bool):
  """Shrinking (both axes, as OpenCV decides): the fraction of each source
  pixel inside destination pixel i's interval [i·s, (i+1)·s), s = src/dst;
  else OpenCV's linear weights that keep most destination pixels equal to one
  source pixel."""
  scale = src / dst
  if not shrinking:
    left = np.floor(np.arange(dst) * scale).astype(np.int64)
    frac = (np.arange(dst) + 1) - (left + 1) / scale
    frac = np.where(frac <= 0, 0.0, frac - np.floor(frac)).astype(np.float32)
    return (np.stack([left, np.minimum(left + 1, src - 1)], 1),
            np.stack([1 - frac, frac], 1).astype(np.float64))
  width = math.ceil(scale) + 1
  start = np.floor(np.arange(dst) * scale).astype(np.int64)
  index = start[:, None] + np.arange(width)
  lo = np.maximum(index, np.arange(dst)[:, None] * scale)
  hi = np.minimum(index + 1, (np.arange(dst)[:, None] + 1) * scale)
  weight = np.clip(hi - lo, 0, None) / scale
  return np.minimum(index, src - 1), np.where(index < src, weight, 0.0)


def _resample(x: jax.Array, axis: int, index: np.ndarray, weight: np.ndarray) -> jax.Array:
  """Σ_k weight[:, k] · x[index[:, k]] along ``axis`` (float32)."""
  shape = [1] * x.ndim
  shape[axis] = index.shape[0]
  out = 0.0
  for k in range(index.shape[1]):
    out = out + jnp.take(x, index[:, k], axis=axis) * weight[:, k].astype(np.float32).reshape(shape)
  return out


def _output_size(fn: str, src_hw, dsize, fx, fy) -> tuple[int, int]:
  """(height, width) from ``dsize`` = (width, height), or from fx, fy."""
  if dsize is not None and tuple(dsize) != (0, 0):
    if (len(dsize) != 2 or not all(isinstance(d, (int, np.integer)) and d > 0
                                   for d in dsize)):
      raise ValueError(f"{fn}: dsize must be (width, height) of positive ints, got {dsize!r}")
    return int(dsize[1]), int(dsize[0])
  if not (fx > 0 and fy > 0):
    raise ValueError(f"{fn}: give dsize=(width, height) or positive fx and fy, got "
                     f"dsize={dsize!r}, fx={fx!r}, fy={fy!r}")
  return round(src_hw[0] * fy), round(src_hw[1] * fx)


def resize(image, dsize=None, fx: float = 0.0, fy: float = 0.0,
           interpolation: int = INTER_LINEAR) -> jax.Array:
  """``cv2.resize``: H×W(×C) or N×H×W×C → same rank at the new size.

  Args:
    image: uint8 or float image(s).
    dsize: (width, height), or None/(0, 0) to scale by ``fx``, ``fy``.
    interpolation: INTER_NEAREST, INTER_LINEAR or INTER_AREA.

  uint8 results are within ±1 of OpenCV's (it rounds its 11-bit fixed-point
  weights; cvx weights in float32), float results within float rounding.
  """
  image = _images.check_image(image, fn="resize")
  _images.check_choice("resize", "interpolation", interpolation, INTERPOLATIONS)
  x, restore = _images.as_batch(image)
  height, width = _output_size("resize", x.shape[1:3], dsize, fx, fy)
  if (height, width) == x.shape[1:3]:
    return image
  if interpolation == INTER_NEAREST:
    rows, cols = _nearest_index(x.shape[1], height), _nearest_index(x.shape[2], width)
    return restore(x[:, rows][:, :, cols])
  taps = _linear_taps
  if interpolation == INTER_AREA:
    shrinking = height <= x.shape[1] and width <= x.shape[2]
    taps = lambda src, dst: _area_taps(src, dst, shrinking)
  out = _resample(_images.to_float(x), 1, *taps(x.shape[1], height))
  out = _resample(out, 2, *taps(x.shape[2], width))
  if image.dtype != jnp.uint8:
    return restore(out)
  # OpenCV accumulates area averages in float (round half to even) and
  # linear weights in fixed point (half up).
  area = interpolation == INTER_AREA and shrinking
  return restore(_images.saturate_uint8(out if area else jnp.floor(out + 0.5)))


# --- flips and right-angle rotations ---------------------------------------------------------


def flip(image, flip_code: int) -> jax.Array:
  """``cv2.flip``: 0 flips vertically (about the x axis), > 0 horizontally,
  < 0 both."""
  image = _images.check_image(image, fn="flip")
  if not isinstance(flip_code, (int, np.integer)):
    raise ValueError(f"flip: flip_code must be an int (0, > 0 or < 0), got {flip_code!r}")
  x, restore = _images.as_batch(image)
  if flip_code <= 0:
    x = x[:, ::-1]
  if flip_code != 0:
    x = x[:, :, ::-1]
  return restore(x)


def rotate(image, rotate_code: int) -> jax.Array:
  """``cv2.rotate`` by a right angle: ROTATE_90_CLOCKWISE, ROTATE_180 or
  ROTATE_90_COUNTERCLOCKWISE (exact; H and W swap for quarter turns)."""
  image = _images.check_image(image, fn="rotate")
  _images.check_choice("rotate", "rotate_code", rotate_code, ROTATIONS)
  x, restore = _images.as_batch(image)
  turns = {ROTATE_90_CLOCKWISE: -1, ROTATE_180: 2, ROTATE_90_COUNTERCLOCKWISE: 1}[rotate_code]
  return restore(jnp.rot90(x, turns, axes=(1, 2)))


# --- affine warps ----------------------------------------------------------------------------


def get_rotation_matrix_2d(center, angle: float, scale: float = 1.0) -> jax.Array:
  """``cv2.getRotationMatrix2D``: the 2×3 matrix rotating by ``angle`` degrees
  counter-clockwise (y down, as displayed) about ``center`` = (x, y), then
  scaling; jit-able in ``angle`` and ``scale``."""
  radians = jnp.deg2rad(jnp.asarray(angle, jnp.float32))
  alpha, beta = scale * jnp.cos(radians), scale * jnp.sin(radians)
  cx, cy = center
  return jnp.stack([jnp.stack([alpha, beta, (1 - alpha) * cx - beta * cy]),
                    jnp.stack([-beta, alpha, beta * cx + (1 - alpha) * cy])])


def _inverse_affine(m: jax.Array) -> jax.Array:
  """Inverse of the 2×3 affine map ``m`` (0 when singular, as OpenCV)."""
  a, b, c = m[0, 0], m[0, 1], m[0, 2]
  d, e, f = m[1, 0], m[1, 1], m[1, 2]
  det = a * e - b * d
  inv = jnp.where(det != 0, 1.0 / jnp.where(det != 0, det, 1.0), 0.0)
  a2, b2, d2, e2 = e * inv, -b * inv, -d * inv, a * inv
  return jnp.stack([jnp.stack([a2, b2, -a2 * c - b2 * f]),
                    jnp.stack([d2, e2, -d2 * c - e2 * f])])


def _source_points(m: jax.Array, height: int, width: int):
  """float32 source (x, y) = m · (x, y, 1) of every destination pixel."""
  m = m.astype(jnp.float32)
  xs, ys = jnp.arange(width, dtype=jnp.float32), jnp.arange(height, dtype=jnp.float32)
  sx = m[0, 0] * xs[None, :] + m[0, 1] * ys[:, None] + m[0, 2]
  sy = m[1, 0] * xs[None, :] + m[1, 1] * ys[:, None] + m[1, 2]
  return sx, sy


def _border_index(i: jax.Array, n: int, border: int) -> jax.Array:
  """OpenCV's borderInterpolate for indices off the image (any distance)."""
  if border == BORDER_REPLICATE:
    return jnp.clip(i, 0, n - 1)
  if border == BORDER_WRAP:
    return jnp.mod(i, n)
  if n == 1:
    return jnp.zeros_like(i)
  if border == BORDER_REFLECT:
    period = 2 * n
    i = jnp.mod(i, period)
    return jnp.where(i < n, i, period - 1 - i)
  period = 2 * n - 2  # REFLECT_101
  i = jnp.mod(i, period)
  return jnp.where(i < n, i, period - i)


def _gather(x: jax.Array, row: jax.Array, col: jax.Array, border: int, value):
  """x[:, row, col] (N×h×w×C) with OpenCV's border rule for indices outside."""
  height, width = x.shape[1:3]
  if border == BORDER_CONSTANT:
    inside = (row >= 0) & (row < height) & (col >= 0) & (col < width)
    got = x[:, jnp.clip(row, 0, height - 1), jnp.clip(col, 0, width - 1)]
    return jnp.where(inside[None, ..., None], got, jnp.asarray(value, x.dtype))
  return x[:, _border_index(row, height, border), _border_index(col, width, border)]


def _check_matrix(fn: str, m) -> jax.Array:
  m = jnp.asarray(m)
  if m.shape != (2, 3):
    raise ValueError(f"{fn}: M must be a 2×3 affine matrix, got shape {m.shape}")
  return m


def warp_affine(image, m, dsize=None, flags: int = INTER_LINEAR,
                border_mode: int = BORDER_CONSTANT, border_value=0) -> jax.Array:
  """``cv2.warpAffine``: dst(x, y) = src(M⁻¹ · (x, y, 1)).

  Args:
    image: H×W(×C) or N×H×W×C, uint8 or float.
    m: 2×3 matrix (numpy or traced) mapping source to destination points;
      with ``flags | WARP_INVERSE_MAP`` it maps destination to source.
    dsize: (width, height) of the output; default the input's.
    flags: INTER_NEAREST or INTER_LINEAR, optionally | WARP_INVERSE_MAP.
    border_mode: BORDER_CONSTANT (``border_value``, scalar or per channel),
      REPLICATE, REFLECT, WRAP or REFLECT_101.

  Returns:
    The warped image(s), same rank and dtype. INTER_NEAREST equals OpenCV
    (up to ties x.5 that float rounding breaks either way); INTER_LINEAR uint8
    is within ±1 of it on a few pixels.
  """
  image = _images.check_image(image, fn="warp_affine")
  interpolation = flags & ~WARP_INVERSE_MAP
  _images.check_choice("warp_affine", "flags & ~WARP_INVERSE_MAP", interpolation,
                       {"INTER_NEAREST": INTER_NEAREST, "INTER_LINEAR": INTER_LINEAR})
  check_border(border_mode, "warp_affine")
  m = _check_matrix("warp_affine", m)
  x, restore = _images.as_batch(image)
  height, width = (x.shape[1:3] if dsize is None else
                   _output_size("warp_affine", x.shape[1:3], dsize, 0, 0))
  inverse = m if flags & WARP_INVERSE_MAP else _inverse_affine(m)
  sx, sy = _source_points(inverse, height, width)
  if interpolation == INTER_NEAREST:  # rounded half to even
    col, row = jnp.round(sx).astype(jnp.int32), jnp.round(sy).astype(jnp.int32)
    return restore(_gather(x, row, col, border_mode, border_value))
  return restore(_bilinear(x, sx, sy, border_mode, border_value))


def _bilinear(x: jax.Array, sx: jax.Array, sy: jax.Array, border: int, value) -> jax.Array:
  """Bilinear samples at source points (sx, sy), as OpenCV 5: a horizontal
  then a vertical lerp; uint8 rounds half to even."""
  col, row = jnp.floor(sx), jnp.floor(sy)
  ax, ay = (sx - col)[None, ..., None], (sy - row)[None, ..., None]
  col, row = col.astype(jnp.int32), row.astype(jnp.int32)
  at = lambda r, c: _gather(x, r, c, border, value).astype(jnp.float32)
  top = at(row, col) + ax * (at(row, col + 1) - at(row, col))
  bottom = at(row + 1, col) + ax * (at(row + 1, col + 1) - at(row + 1, col))
  return _images.cast_like(top + ay * (bottom - top), x)


def translate(image, tx, ty, border_mode: int = BORDER_CONSTANT, border_value=0,
              flags: int = INTER_LINEAR) -> jax.Array:
  """Shifts the content by (tx, ty) pixels (right, down): ``warp_affine``
  with [[1, 0, tx], [0, 1, ty]]; tx and ty may be traced."""
  m = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).at[:, 2].set(
      jnp.stack([jnp.asarray(tx, jnp.float32), jnp.asarray(ty, jnp.float32)]))
  return warp_affine(image, m, flags=flags, border_mode=border_mode, border_value=border_value)


def rotate_about_center(image, angle, scale=1.0, border_mode: int = BORDER_CONSTANT,
                        border_value=0, flags: int = INTER_LINEAR) -> jax.Array:
  """Rotates by ``angle`` degrees counter-clockwise about the image centre
  ((W−1)/2, (H−1)/2), then scales: ``warp_affine`` with
  ``get_rotation_matrix_2d``; ``angle`` and ``scale`` may be traced."""
  image = _images.check_image(image, fn="rotate_about_center")
  height, width = _images.as_batch(image)[0].shape[1:3]
  m = get_rotation_matrix_2d(((width - 1) / 2, (height - 1) / 2), angle, scale)
  return warp_affine(image, m, flags=flags, border_mode=border_mode, border_value=border_value)
