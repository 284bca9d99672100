"""Handcrafted image features for the classic classifiers, in JAX.

Every function takes one image (H×W or H×W×C) or a batch (N×H×W×C), uint8
or float in [0, 1], and returns a float32 vector (D,) or a batch (N, D) with
a static D, so features can be computed under ``jit`` and ``vmap``:

* :func:`raw_pixels`: the pixels scaled to [0, 1].
* :func:`hog`: histograms of oriented gradients, as ``skimage.feature.hog``.
* :func:`color_histogram`, :func:`hsv_histogram`: per-channel and joint HSV
  histograms, as ``cv2.calcHist``.
* :func:`orientation_histogram`, :func:`magnitude_histogram`,
  :func:`gradient_histogram`: Sobel gradient statistics on a coarse grid.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np

from cvx import ops
from cvx.ops import _images

BLOCK_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys")


def _pair(fn: str, name: str, value) -> tuple[int, int]:
  """(rows, cols) from an int or a pair of positive ints."""
  pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
  if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in pair):
    raise ValueError(f"{fn}: {name} must be a positive int or a pair of them, got {value!r}")
  return int(pair[0]), int(pair[1])


def _positive_int(fn: str, name: str, value) -> int:
  if not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{fn}: {name} must be a positive int, got {value!r}")
  return int(value)


def _flatten(features: jax.Array, image: jax.Array) -> jax.Array:
  """N×… → (N, D) for a batch, (D,) for one image."""
  flat = features.reshape(features.shape[0], -1)
  return flat if image.ndim == 4 else flat[0]


def raw_pixels(image) -> jax.Array:
  """Pixels as float32 in [0, 1] (uint8 / 255), flattened in H, W, C order."""
  image = _images.check_image(image, fn="raw_pixels")
  x, _ = _images.as_batch(image)
  x = x.astype(jnp.float32) / 255.0 if image.dtype == jnp.uint8 else x.astype(jnp.float32)
  return _flatten(x, image)


def _orientation_bins(g_row: jax.Array, g_col: jax.Array, bins: int,
                      signed: bool) -> jax.Array:
  """int32 bin of each gradient's direction, atan2(g_row, g_col) in degrees.

  Bin i covers [i·w, (i + 1)·w) with w = 180/bins (360/bins if ``signed``).
  Each boundary is a sign test of a cross product rather than a rounded
  atan2, so directions exactly on a boundary (0°, 45°, 90°, 135°, …) fall in
  the upper bin as in float64, and integer gradients are binned exactly.
  """
  lower = (g_row < 0) | ((g_row == 0) & (g_col < 0))  # direction in [180°, 360°)
  r = jnp.where(lower, -g_row, g_row)  # folded into [0°, 180°)
  c = jnp.where(lower, -g_col, g_col)
  index = jnp.zeros(g_row.shape, jnp.int32)
  width = (360.0 if signed else 180.0) / bins
  for i in range(1, bins):
    edge = i * width
    folded = math.radians(edge % 180.0)
    at_least = c * np.float32(math.sin(folded)) - r * np.float32(math.cos(folded)) <= 0
    if not signed:
      above = at_least
    elif edge < 180.0:
      above = lower | at_least
    else:
      above = lower & at_least
    index = index + above.astype(jnp.int32)
  return index


def _safe_sqrt(x: jax.Array) -> jax.Array:
  """sqrt with gradient 0 (not NaN) at 0."""
  positive = x > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def _pick_channel(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
  """N×H×W planes of (a, b) from the channel where a² + b² is largest (the
  first on ties)."""
  if a.shape[-1] == 1:  # skip the gather, slow on CPU
    return a[..., 0], b[..., 0]
  best = jnp.argmax(a * a + b * b, axis=-1)[..., None]
  pick = lambda g: jnp.take_along_axis(g, best, axis=-1)[..., 0]
  return pick(a), pick(b)


def _hog_gradients(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Central differences (0 on the outer rows/columns) of the channel with the
  largest gradient magnitude per pixel: (g_row, g_col), N×H×W float32."""
  zero_row = jnp.zeros_like(x[:, :1])
  g_row = jnp.concatenate([zero_row, x[:, 2:] - x[:, :-2], zero_row], axis=1)
  zero_col = jnp.zeros_like(x[:, :, :1])
  g_col = jnp.concatenate([zero_col, x[:, :, 2:] - x[:, :, :-2], zero_col], axis=2)
  return _pick_channel(g_row, g_col)


def _normalize_blocks(blocks: jax.Array, method: str, eps: float = 1e-5) -> jax.Array:
  """skimage's block normalisation over the last three axes."""
  axes = (-3, -2, -1)
  if method in ("L1", "L1-sqrt"):
    out = blocks / (jnp.sum(jnp.abs(blocks), axes, keepdims=True) + eps)
    return jnp.sqrt(out) if method == "L1-sqrt" else out
  l2 = lambda b: b / jnp.sqrt(jnp.sum(b * b, axes, keepdims=True) + eps * eps)
  out = l2(blocks)
  return l2(jnp.minimum(out, 0.2)) if method == "L2-Hys" else out


def hog(image, orientations: int = 9, pixels_per_cell=(8, 8), cells_per_block=(3, 3),
        block_norm: str = "L2-Hys", transform_sqrt: bool = False,
        feature_vector: bool = True) -> jax.Array:
  """Histogram of oriented gradients, as ``skimage.feature.hog``.

  Gradients are central differences (0 on the outermost rows/columns); a
  colour pixel uses its channel of largest gradient magnitude (skimage's
  ``channel_axis=-1``). Each cell's histogram is the mean gradient magnitude
  of its pixels per unsigned direction (``orientations`` bins over
  [0°, 180°), no interpolation); pixels beyond the last whole cell are
  ignored. Blocks of cells are normalised with ``block_norm``.

  Args:
    image: H×W, H×W×C or N×H×W×C, uint8 (0..255 units, as skimage) or float.
    orientations: number of direction bins.
    pixels_per_cell: (rows, cols) of a cell, or an int.
    cells_per_block: (rows, cols) of a block, in cells, or an int.
    block_norm: 'L1', 'L1-sqrt', 'L2' or 'L2-Hys' (L2, clip at 0.2, L2).
    transform_sqrt: take the square root of the image first.
    feature_vector: flatten each image's descriptor.

  Returns:
    float32 (D,) per image (N×D for a batch), D = blocks_row · blocks_col ·
    cells_per_block rows · cols · orientations, or with ``feature_vector``
    False (…, blocks_row, blocks_col, block rows, block cols, orientations).
    Within 1e-6 of skimage on uint8 and float photographs. After
    ``transform_sqrt`` exact ties are no longer exact in floating point:
    a gradient on a bin edge such as (√3, 1) at 60°, or two channels of
    equal magnitude, can be resolved the other way than in skimage's
    float64 (uint8 input) or float32 (float32 input) arithmetic.
  """
  image = _images.check_image(image, fn="hog")
  orientations = _positive_int("hog", "orientations", orientations)
  cy, cx = _pair("hog", "pixels_per_cell", pixels_per_cell)
  by, bx = _pair("hog", "cells_per_block", cells_per_block)
  if block_norm not in BLOCK_NORMS:
    raise ValueError(f"hog: block_norm={block_norm!r} is not one of {BLOCK_NORMS}")
  x, _ = _images.as_batch(image)
  n, h, w, _ = x.shape
  rows, cols = h // cy, w // cx
  blocks_y, blocks_x = rows - by + 1, cols - bx + 1
  if blocks_y < 1 or blocks_x < 1:
    raise ValueError(f"hog: image of {h}×{w} pixels is too small for blocks of {by}×{bx} "
                     f"cells of {cy}×{cx} pixels; it needs at least {by * cy}×{bx * cx}")
  x = x.astype(jnp.float32)
  if transform_sqrt:
    x = jnp.sqrt(x)
  g_row, g_col = _hog_gradients(x)
  magnitude = _safe_sqrt(g_row * g_row + g_col * g_col)
  bins = _orientation_bins(g_row, g_col, orientations, signed=False)
  votes = jax.nn.one_hot(bins, orientations, dtype=jnp.float32) * magnitude[..., None]
  votes = votes[:, :rows * cy, :cols * cx].reshape(n, rows, cy, cols, cx, orientations)
  cells = votes.sum(axis=(2, 4)) / (cy * cx)
  blocks = jnp.stack([jnp.stack([cells[:, i:i + blocks_y, j:j + blocks_x] for j in range(bx)],
                                axis=3) for i in range(by)], axis=3)
  out = _normalize_blocks(blocks, block_norm)
  if feature_vector:
    return _flatten(out, image)
  return out if image.ndim == 4 else out[0]


def _bin_index(x: jax.Array, bins: int, top: float, uint8: bool) -> jax.Array:
  """Bin of each value in ``bins`` equal bins over [0, top].

  uint8 uses cv2.calcHist's table ⌊v · bins / top⌋ (float64); float values
  equal to ``top`` (S = V = 1) count in the last bin.
  """
  a = bins / top
  if uint8:
    return jnp.asarray(np.floor(np.arange(256) * a).astype(np.int32))[x]
  return jnp.clip(jnp.floor(x * a).astype(jnp.int32), 0, bins - 1)


def color_histogram(image, bins: int = 32, value_range=None,
                    normalize: bool = False) -> jax.Array:
  """Per-channel histograms, concatenated: ``cv2.calcHist`` of each channel.

  Args:
    image: H×W, H×W×C or N×H×W×C, uint8 or float.
    bins: bins per channel over ``value_range``.
    value_range: [low, high); default (0, 256) for uint8, (0, 1) for float.
    normalize: divide by the number of pixels (each channel then sums to 1).

  Returns:
    float32 (C·bins,) per image, channel-major; exact counts on uint8.
  """
  image = _images.check_image(image, fn="color_histogram")
  x, _ = _images.as_batch(image)
  hist = ops.calc_hist(x, bins, value_range)  # N×C×bins
  if normalize:
    hist = hist / (x.shape[1] * x.shape[2])
  return _flatten(hist, image)


def hsv_histogram(image, bins=(8, 8, 8), normalize: bool = False) -> jax.Array:
  """Joint H×S×V histogram of an RGB image, flattened (H slowest).

  uint8 images go through :func:`cvx.ops.rgb_to_hsv` (H 0..179) and equal
  ``cv2.calcHist([hsv], [0, 1, 2], None, bins, [0, 180, 0, 256, 0, 256])``
  exactly; float images use H in [0, 360) and S, V in [0, 1] (1 in the last
  bin).

  Args:
    image: H×W×3 or N×H×W×3 RGB, uint8 or float.
    bins: (hue, saturation, value) bins, or one int for all three.
    normalize: divide by the number of pixels (the histogram sums to 1).

  Returns:
    float32 (bins_h·bins_s·bins_v,) per image, (N, D) for a batch.
  """
  image = _images.check_image(image, fn="hsv_histogram")
  if image.ndim == 2 or image.shape[-1] != 3:
    raise ValueError(f"hsv_histogram: image must be RGB (…×H×W×3), got shape {image.shape}")
  nb = (bins,) * 3 if isinstance(bins, (int, np.integer)) else tuple(bins)
  if len(nb) != 3 or not all(isinstance(b, (int, np.integer)) and b >= 1 for b in nb):
    raise ValueError(f"hsv_histogram: bins must be a positive int or three of them, "
                     f"got {bins!r}")
  uint8 = image.dtype == jnp.uint8
  tops = (180, 256, 256) if uint8 else (360.0, 1.0, 1.0)  # H, S, V: all values in range
  x, _ = _images.as_batch(ops.rgb_to_hsv(image))
  idx = [_bin_index(x[..., c], nb[c], tops[c], uint8) for c in range(3)]
  joint = ((idx[0] * nb[1] + idx[1]) * nb[2] + idx[2]).reshape(x.shape[0], -1)
  count = lambda j: jnp.zeros(math.prod(nb), jnp.float32).at[j].add(1.0)
  hist = jax.vmap(count)(joint)
  if normalize:
    hist = hist / joint.shape[1]
  return hist if image.ndim == 4 else hist[0]


def _sobel_gradients(image: jax.Array, ksize: int) -> tuple[jax.Array, jax.Array]:
  """Sobel (dy, dx) of the channel with the largest magnitude, N×H×W float32."""
  x, _ = _images.as_batch(image)
  dx = ops.sobel(x, 1, 0, ksize)
  dy = ops.sobel(x, 0, 1, ksize)
  return _pick_channel(dy, dx)


def _grid_onehots(h: int, w: int, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
  """Row → grid row and column → grid column one-hot matrices (H×gy, W×gx).

  Grid cell (i, j) holds rows ⌊r·gy/H⌋ = i and columns ⌊c·gx/W⌋ = j, so the
  cells tile the whole image and differ in size by at most one pixel.
  """
  rows = np.eye(grid[0], dtype=np.float32)[np.arange(h) * grid[0] // h]
  cols = np.eye(grid[1], dtype=np.float32)[np.arange(w) * grid[1] // w]
  return rows, cols


def _orientations(fn: str, dy: jax.Array, dx: jax.Array, orientations: int, grid,
                  signed: bool, normalize: bool) -> jax.Array:
  """N×(rows · cols · orientations) histograms of N×H×W gradients."""
  orientations = _positive_int(fn, "orientations", orientations)
  grid = _pair(fn, "grid", grid)
  n, h, w = dy.shape
  if grid[0] > h or grid[1] > w:
    raise ValueError(f"{fn}: grid {grid} has more cells than the {h}×{w} image has pixels")
  magnitude = _safe_sqrt(dx * dx + dy * dy)
  votes = jax.nn.one_hot(_orientation_bins(dy, dx, orientations, signed), orientations,
                         dtype=jnp.float32) * magnitude[..., None]
  rows, cols = _grid_onehots(h, w, grid)
  hist = jnp.einsum("hy,nhwb->nywb", rows, votes, precision=jax.lax.Precision.HIGHEST)
  hist = jnp.einsum("wx,nywb->nyxb", cols, hist, precision=jax.lax.Precision.HIGHEST)
  hist = hist.reshape(n, -1)
  if normalize:
    total = hist.sum(axis=1, keepdims=True)
    hist = hist / jnp.where(total > 0, total, 1.0)
  return hist


def orientation_histogram(image, orientations: int = 9, grid=(4, 4), signed: bool = False,
                          ksize: int = 3, normalize: bool = True) -> jax.Array:
  """Sobel-magnitude-weighted direction histograms on a grid of cells.

  Directions atan2(dy, dx) of :func:`cvx.ops.sobel` derivatives (y down) fall
  in ``orientations`` equal bins over [0°, 180°) or, if ``signed``,
  [0°, 360°); colour pixels use their channel of largest magnitude.

  Args:
    image: H×W, H×W×C or N×H×W×C, uint8 or float.
    orientations: direction bins per cell.
    grid: (rows, cols) of cells tiling the image (cells differ by ≤ 1 pixel).
    signed: directions modulo 360° instead of 180°.
    ksize: Sobel aperture (1, 3, 5, 7).
    normalize: divide by the image's total magnitude (the vector sums to 1;
      all zeros for a flat image).

  Returns:
    float32 (rows · cols · orientations,) per image, cell-major.
  """
  image = _images.check_image(image, fn="orientation_histogram")
  dy, dx = _sobel_gradients(image, ksize)
  hist = _orientations("orientation_histogram", dy, dx, orientations, grid, signed, normalize)
  return hist if image.ndim == 4 else hist[0]


def _max_sobel_magnitude(ksize: int, uint8: bool) -> float:
  """√2 · the largest |dx| (half of Σ|kx ⊗ ky| times 255 or 1): a bound on
  the L2 Sobel magnitude."""
  kx, ky = ops.get_deriv_kernels(1, 0, ksize)
  return math.sqrt(2.0) * np.abs(kx).sum() * np.abs(ky).sum() / 2 * (255.0 if uint8 else 1.0)


def _magnitudes(fn: str, dy: jax.Array, dx: jax.Array, bins: int, top: float) -> jax.Array:
  """N×bins fractions of pixels per magnitude bin over [0, top]."""
  bins = _positive_int(fn, "bins", bins)
  if top <= 0:
    raise ValueError(f"{fn}: max_magnitude must be > 0, got {top!r}")
  magnitude = jnp.sqrt(dx * dx + dy * dy).reshape(dx.shape[0], -1)
  index = jnp.minimum(jnp.floor(magnitude * np.float32(bins / top)).astype(jnp.int32), bins - 1)
  return jax.nn.one_hot(index, bins, dtype=jnp.float32).mean(axis=1)


def magnitude_histogram(image, bins: int = 8, max_magnitude: float | None = None,
                        ksize: int = 3) -> jax.Array:
  """Fraction of pixels per Sobel gradient magnitude bin.

  Args:
    image: H×W, H×W×C or N×H×W×C, uint8 or float.
    bins: equal bins over [0, max_magnitude]; larger magnitudes count in the
      last bin.
    max_magnitude: upper end; default √2 × the largest possible |dx| of
      the dtype (1442.5 for uint8 and ksize 3).
    ksize: Sobel aperture (1, 3, 5, 7).

  Returns:
    float32 (bins,) per image, summing to 1.
  """
  image = _images.check_image(image, fn="magnitude_histogram")
  top = max_magnitude or _max_sobel_magnitude(ksize, image.dtype == jnp.uint8)
  dy, dx = _sobel_gradients(image, ksize)
  hist = _magnitudes("magnitude_histogram", dy, dx, bins, top)
  return hist if image.ndim == 4 else hist[0]


def gradient_histogram(image, orientations: int = 9, grid=(4, 4), magnitude_bins: int = 8,
                       signed: bool = False, ksize: int = 3) -> jax.Array:
  """:func:`orientation_histogram` (normalised) followed by
  :func:`magnitude_histogram`, from one Sobel pass.

  Returns:
    float32 (rows · cols · orientations + magnitude_bins,) per image.
  """
  image = _images.check_image(image, fn="gradient_histogram")
  dy, dx = _sobel_gradients(image, ksize)
  top = _max_sobel_magnitude(ksize, image.dtype == jnp.uint8)
  hist = jnp.concatenate([
      _orientations("gradient_histogram", dy, dx, orientations, grid, signed, True),
      _magnitudes("gradient_histogram", dy, dx, magnitude_bins, top)], axis=-1)
  return hist if image.ndim == 4 else hist[0]
