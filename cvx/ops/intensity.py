"""Pixel (point) operations: negative, contrast, gamma, histograms, thresholds.

uint8 images stay uint8 with OpenCV's rounding; float images are in [0, 1].
Per-image statistics (min/max, percentiles, histograms, Otsu) are computed
per image of a batch.
"""
import jax
import jax.numpy as jnp
import numpy as np

from cvx.ops import _images
from cvx.ops import borders
from cvx.ops import filters

THRESH_BINARY = 0
THRESH_BINARY_INV = 1
THRESH_TRUNC = 2
THRESH_TOZERO = 3
THRESH_TOZERO_INV = 4
THRESH_OTSU = 8
THRESH_TRIANGLE = 16
_THRESH_TYPES = {"THRESH_BINARY": 0, "THRESH_BINARY_INV": 1, "THRESH_TRUNC": 2,
                 "THRESH_TOZERO": 3, "THRESH_TOZERO_INV": 4}

ADAPTIVE_THRESH_MEAN_C = 0
ADAPTIVE_THRESH_GAUSSIAN_C = 1
_ADAPTIVE = {"ADAPTIVE_THRESH_MEAN_C": 0, "ADAPTIVE_THRESH_GAUSSIAN_C": 1}


def _per_image(stat: jax.Array, image: jax.Array) -> jax.Array:
  """Broadcasts an (N,) or () statistic against ``image``."""
  return stat.reshape(stat.shape + (1,) * (image.ndim - stat.ndim))


def negative(image) -> jax.Array:
  """255 − x for uint8 (``cv2.bitwise_not``), 1 − x for float."""
  image = _images.check_image(image, fn="negative")
  return ~image if image.dtype == jnp.uint8 else 1.0 - image


def convert_scale_abs(image, alpha: float = 1.0, beta: float = 0.0) -> jax.Array:
  """Contrast (``alpha``) and brightness (``beta``): |alpha·x + beta|.

  uint8 → uint8 saturated and rounded half to even, bit-exact with
  ``cv2.convertScaleAbs`` (alpha and beta must then be Python numbers).
  Float images stay float: beta is in [0, 1] units and the result is clipped
  to [0, 1] (OpenCV always returns uint8).
  """
  image = _images.check_image(image, fn="convert_scale_abs")
  if image.dtype == jnp.uint8:
    # A 256-entry table of OpenCV's fused float32 multiply-add, rounded once.
    levels = np.arange(256, dtype=np.float64)
    y = np.abs((levels * np.float32(alpha) + np.float32(beta)).astype(np.float32))
    return jnp.asarray(np.clip(np.rint(y), 0, 255).astype(np.uint8))[image]
  return jnp.clip(jnp.abs(image * alpha + beta), 0.0, 1.0)


def contrast_stretch(image, low_percentile: float = 0.0,
                     high_percentile: float = 100.0) -> jax.Array:
  """Maps the [low, high] percentiles of each image linearly onto the full range.

  With the defaults this is min-max stretching, equal to
  ``cv2.normalize(x, None, 0, 255, cv2.NORM_MINMAX)`` on uint8 (±1 where
  OpenCV's float rounding ties); values outside the percentiles saturate.
  Percentiles interpolate linearly like ``np.percentile``. A constant image
  maps to 0. Output has the input dtype (float in [0, 1]).
  """
  image = _images.check_image(image, fn="contrast_stretch")
  if not 0 <= low_percentile < high_percentile <= 100:
    raise ValueError(f"contrast_stretch: need 0 <= low_percentile < high_percentile "
                     f"<= 100, got {low_percentile}, {high_percentile}")
  x = image.astype(jnp.float32)
  flat = x.reshape(x.shape[0], -1) if image.ndim == 4 else x.reshape(-1)
  lo = jnp.percentile(flat, low_percentile, axis=-1)
  hi = jnp.percentile(flat, high_percentile, axis=-1)
  top = 255.0 if image.dtype == jnp.uint8 else 1.0
  scale = jnp.where(hi > lo, top / jnp.where(hi > lo, hi - lo, 1.0), 0.0)
  y = (x - _per_image(lo, x)) * _per_image(scale, x)
  if image.dtype == jnp.uint8:
    return _images.saturate_uint8(y)
  return jnp.clip(y, 0.0, 1.0)


def adjust_gamma(image, gamma: float = 1.0, gain: float = 1.0) -> jax.Array:
  """gain · x^gamma on [0, 1]; uint8 via 255·gain·(x/255)^gamma.

  Matches ``skimage.exposure.adjust_gamma`` (which truncates uint8 results
  and does not saturate; we round half to even and saturate, so results may
  be 1 higher).
  """
  image = _images.check_image(image, fn="adjust_gamma")
  if gamma < 0:
    raise ValueError(f"adjust_gamma: gamma must be non-negative, got {gamma}")
  if image.dtype == jnp.uint8:
    lut = 255.0 * gain * (np.arange(256) / 255.0) ** gamma
    return jnp.asarray(np.clip(np.round(lut), 0, 255).astype(np.uint8))[image]
  return gain * jnp.power(jnp.clip(image, 0.0, None), gamma)


def calc_hist(image, bins: int = 256, value_range: tuple[float, float] | None = None,
              mask=None) -> jax.Array:
  """Per-channel histogram as float32 counts, like ``cv2.calcHist``.

  Args:
    image: H×W, H×W×C or N×H×W×C, uint8 or float.
    bins: number of equal bins over ``value_range``.
    value_range: [low, high) of the bins; default (0, 256) for uint8 and
      (0, 1) for float (float 1.0 falls in the last bin).
    mask: optional H×W (or N×H×W) array; only pixels where it is non-zero count.

  Returns:
    (bins,) for H×W, (C, bins) for H×W×C, (N, C, bins) for a batch.
  """
  image = _images.check_image(image, fn="calc_hist")
  if not isinstance(bins, int) or bins < 1:
    raise ValueError(f"calc_hist: bins must be a positive int, got {bins!r}")
  lo, hi = value_range or ((0.0, 256.0) if image.dtype == jnp.uint8 else (0.0, 1.0))
  if not hi > lo:
    raise ValueError(f"calc_hist: value_range must have high > low, got {value_range}")
  x, _ = _images.as_batch(image)
  a = bins / (hi - lo)
  if image.dtype == jnp.uint8:  # OpenCV's table: ⌊v·a − lo·a⌋ in float64
    lut = np.floor(np.arange(256) * a - lo * a).clip(-1, bins).astype(np.int32)
    idx = jnp.asarray(lut)[x]
  else:
    idx = jnp.floor((x - lo) * a).astype(jnp.int32)
    if value_range is None:
      idx = jnp.minimum(idx, bins - 1)
  valid = (idx >= 0) & (idx < bins)
  if mask is not None:
    m = jnp.asarray(mask) != 0
    m, _ = _images.as_batch(m if m.ndim != 3 or image.ndim == 3 else m[..., None])
    valid = valid & m
  onehot = (idx[..., None] == jnp.arange(bins)) & valid[..., None]
  hist = onehot.sum(axis=(1, 2), dtype=jnp.float32)  # N×C×bins
  if image.ndim == 2:
    return hist[0, 0]
  return hist[0] if image.ndim == 3 else hist


def _equalize_plane_uint8(plane: jax.Array) -> jax.Array:
  """cv2.equalizeHist on one H×W uint8 plane."""
  hist = jnp.zeros(256, jnp.int32).at[plane.reshape(-1)].add(1)
  total = plane.size
  first = jnp.argmax(hist > 0)
  first_count = hist[first]
  cdf = jnp.cumsum(hist) - first_count
  scale = np.float32(255.0) / jnp.maximum(total - first_count, 1).astype(jnp.float32)
  lut = _images.saturate_uint8(cdf.astype(jnp.float32) * scale)
  lut = jnp.where(jnp.arange(256) <= first, 0, lut).astype(jnp.uint8)
  lut = jnp.where(first_count == total, first.astype(jnp.uint8), lut)
  return lut[plane]


def equalize_hist(image) -> jax.Array:
  """Histogram equalisation, bit-exact with ``cv2.equalizeHist`` on uint8.

  Each channel of each image is equalised on its own (OpenCV takes one
  channel only). Float images are quantised to 256 levels (round(255·x)),
  equalised and returned as float32 in [0, 1].
  """
  image = _images.check_image(image, fn="equalize_hist")
  x = image if image.dtype == jnp.uint8 else _images.saturate_uint8(image * 255.0)
  x4, restore = _images.as_batch(x)
  planes = jnp.moveaxis(x4, -1, 1)  # N×C×H×W
  out = jax.vmap(jax.vmap(_equalize_plane_uint8))(planes)
  out = restore(jnp.moveaxis(out, 1, -1))
  return out if image.dtype == jnp.uint8 else out.astype(jnp.float32) / 255.0


def _otsu_uint8(x: jax.Array) -> jax.Array:
  """Otsu's threshold of one uint8 image (all channels pooled), as float32.

  Between-class variance q1·q2·(μ1 − μ2)², first maximum over t = 0..255,
  skipping t where either class is (nearly) empty, as OpenCV does.
  """
  hist = jnp.zeros(256, jnp.float32).at[x.reshape(-1)].add(1.0)
  p = hist / x.size
  levels = jnp.arange(256, dtype=jnp.float32)
  q1 = jnp.cumsum(p)
  q2 = 1.0 - q1
  mu = jnp.sum(levels * p)
  m1 = jnp.cumsum(levels * p)
  eps = np.finfo(np.float32).eps
  valid = (jnp.minimum(q1, q2) >= eps) & (jnp.maximum(q1, q2) <= 1.0 - eps)
  mu1 = m1 / jnp.where(valid, q1, 1.0)
  mu2 = (mu - m1) / jnp.where(valid, q2, 1.0)
  sigma = jnp.where(valid, q1 * q2 * (mu1 - mu2) ** 2, 0.0)
  return jnp.argmax(sigma).astype(jnp.float32)


def _triangle_uint8(x: jax.Array) -> jax.Array:
  """OpenCV's triangle threshold of one uint8 image (all channels pooled), float32.

  A line joins the histogram's peak to the far end of its support (one level
  past the last non-empty one, mirrored when the long side is on the right);
  the threshold is one below the level farthest below that line, the first
  one on ties. Distances are int32 as OpenCV's exact doubles as long as the
  peak level holds fewer than 2^31 / 255 ≈ 8.4 M pixels.
  """
  hist = jnp.zeros(256, jnp.int32).at[x.reshape(-1)].add(1)
  nonzero = hist > 0
  left = jnp.maximum(jnp.argmax(nonzero) - 1, 0)
  right = jnp.minimum(256 - jnp.argmax(nonzero[::-1]), 255)
  peak = jnp.argmax(hist).astype(jnp.int32)
  flip = peak - left < right - peak
  hist = jnp.where(flip, hist[::-1], hist)
  left = jnp.where(flip, 255 - right, left)
  peak = jnp.where(flip, 255 - peak, peak)
  levels = jnp.arange(256, dtype=jnp.int32)
  dist = hist[peak] * levels + (left - peak) * hist
  dist = jnp.where((levels > left) & (levels <= peak), dist, 0)
  best = jnp.argmax(dist).astype(jnp.int32)
  thresh = jnp.where(dist[best] > 0, best, left) - 1
  return jnp.where(flip, 255 - thresh, thresh).astype(jnp.float32)


def _apply_threshold(x, thresh, maxval, kind):
  above = x > thresh
  zero = jnp.zeros_like(x)
  if kind == THRESH_BINARY:
    return jnp.where(above, maxval, zero)
  if kind == THRESH_BINARY_INV:
    return jnp.where(above, zero, maxval)
  if kind == THRESH_TRUNC:
    return jnp.where(above, thresh, x)
  if kind == THRESH_TOZERO:
    return jnp.where(above, x, zero)
  return jnp.where(above, zero, x)


def threshold(image, thresh: float, maxval: float, type: int = THRESH_BINARY):  # pylint: disable=redefined-builtin
  """Fixed, Otsu or triangle threshold, like ``cv2.threshold``; returns (retval, image).

  Args:
    image: uint8 or float image (or batch).
    thresh: threshold; a pixel is "above" when x > thresh.
    maxval: value for BINARY / BINARY_INV.
    type: one of THRESH_BINARY, _INV, TRUNC, TOZERO, TOZERO_INV, optionally
      ``| THRESH_OTSU`` or ``| THRESH_TRIANGLE`` (uint8 only) to compute
      ``thresh`` per image.

  Returns:
    retval: float32 threshold used, () for one image and (N,) for a batch.
      For uint8 it is ⌊thresh⌋ as in OpenCV. Otsu and triangle pool all
      channels of an image (OpenCV accepts one channel only).
    image: thresholded, same dtype; uint8 maxval is rounded and saturated.
  """
  image = _images.check_image(image, fn="threshold")
  auto = type & (THRESH_OTSU | THRESH_TRIANGLE) if isinstance(type, (int, np.integer)) else 0
  if auto == THRESH_OTSU | THRESH_TRIANGLE:
    raise ValueError(f"threshold: type={type!r} combines THRESH_OTSU and THRESH_TRIANGLE; "
                     "choose one")
  kind = type & ~auto if auto else type
  _images.check_choice("threshold", "type", kind, _THRESH_TYPES)
  is_uint8 = image.dtype == jnp.uint8
  if auto and not is_uint8:
    method = "THRESH_OTSU" if auto == THRESH_OTSU else "THRESH_TRIANGLE"
    raise TypeError(f"threshold: {method} needs a uint8 image, got dtype {image.dtype}")
  batch = image.ndim == 4
  if auto:
    find = _otsu_uint8 if auto == THRESH_OTSU else _triangle_uint8
    t = jax.vmap(find)(image) if batch else find(image)
  else:
    t = jnp.asarray(np.floor(thresh) if is_uint8 else thresh, jnp.float32)
    t = jnp.broadcast_to(t, image.shape[:1]) if batch else t
  x = image.astype(jnp.float32)
  maxv = np.float32(np.clip(np.round(maxval), 0, 255) if is_uint8 else maxval)
  y = _apply_threshold(x, _per_image(t, x), maxv, kind)
  return t, (y.astype(jnp.uint8) if is_uint8 else y)


def soft_threshold(image, thresh: float, maxval: float = 1.0,
                   temperature: float = 0.02) -> jax.Array:
  """Differentiable THRESH_BINARY: maxval · sigmoid((x − thresh) / temperature).

  No OpenCV counterpart; tends to ``threshold(..., THRESH_BINARY)`` as
  ``temperature`` → 0. Float images only; returns float32.
  """
  image = _images.check_image(image, fn="soft_threshold")
  if image.dtype == jnp.uint8:
    raise TypeError("soft_threshold: image must be float (it is differentiable), got uint8")
  if temperature <= 0:
    raise ValueError(f"soft_threshold: temperature must be > 0, got {temperature}")
  return maxval * jax.nn.sigmoid((image - thresh) / temperature)


def adaptive_threshold(image, max_value: float, adaptive_method: int,
                       threshold_type: int, block_size: int, c: float) -> jax.Array:
  """Local threshold, bit-exact with ``cv2.adaptiveThreshold`` on uint8.

  The local mean is ``blur`` (MEAN_C) or a float Gaussian with sigma from
  the block size (GAUSSIAN_C), both with BORDER_REPLICATE and rounded to
  uint8 as in OpenCV; a pixel is "above" when x − mean > −c (with ⌈c⌉ for
  BINARY, ⌊c⌋ for BINARY_INV, as OpenCV rounds c). uint8 only, any channels.
  """
  image = _images.check_image(image, fn="adaptive_threshold")
  if image.dtype != jnp.uint8:
    raise TypeError(f"adaptive_threshold: image must be uint8, got dtype {image.dtype}")
  _images.check_choice("adaptive_threshold", "adaptive_method", adaptive_method, _ADAPTIVE)
  _images.check_choice("adaptive_threshold", "threshold_type", threshold_type,
                       {"THRESH_BINARY": 0, "THRESH_BINARY_INV": 1})
  if not isinstance(block_size, int) or block_size < 3 or block_size % 2 == 0:
    raise ValueError(f"adaptive_threshold: block_size must be odd and >= 3, got {block_size!r}")
  if adaptive_method == ADAPTIVE_THRESH_MEAN_C:
    mean = filters.blur(image, block_size, border=borders.BORDER_REPLICATE)
  else:
    # OpenCV 5 filters with the float kernel here, not GaussianBlur's fixed point.
    mean = _images.saturate_uint8(filters.gaussian_blur(
        _images.to_float(image), block_size, 0.0, border=borders.BORDER_REPLICATE))
  delta = int(np.ceil(c)) if threshold_type == THRESH_BINARY else int(np.floor(c))
  above = image.astype(jnp.int32) - mean.astype(jnp.int32) > -delta
  if threshold_type == THRESH_BINARY_INV:
    above = ~above
  maxv = np.uint8(np.clip(np.round(max_value), 0, 255))
  return jnp.where(above, maxv, np.uint8(0))


def _bitwise(name, op, a, b, mask):
  a, b = jnp.asarray(a), jnp.asarray(b)
  if a.dtype != b.dtype and b.ndim:
    raise TypeError(f"{name}: src1 and src2 must have the same dtype, got {a.dtype} "
                    f"and {b.dtype}")
  for arg, x in (("src1", a), ("src2", b)):
    if not (jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == jnp.bool_):
      raise TypeError(f"{name}: {arg} must be an integer or bool array, got {x.dtype}")
  out = op(a, b.astype(a.dtype))
  return _masked(out, mask)


def _masked(out, mask):
  """OpenCV's mask: output is 0 where the H×W mask is 0."""
  if mask is None:
    return out
  m = jnp.asarray(mask) != 0
  if m.ndim == out.ndim - 1 and out.ndim >= 3:
    m = m[..., None]
  return jnp.where(m, out, jnp.zeros_like(out))


def bitwise_and(src1, src2, mask=None) -> jax.Array:
  """src1 & src2 (integer/bool arrays); 0 outside ``mask`` (H×W) if given."""
  return _bitwise("bitwise_and", jnp.bitwise_and, src1, src2, mask)


def bitwise_or(src1, src2, mask=None) -> jax.Array:
  """src1 | src2; 0 outside ``mask`` if given."""
  return _bitwise("bitwise_or", jnp.bitwise_or, src1, src2, mask)


def bitwise_xor(src1, src2, mask=None) -> jax.Array:
  """src1 ^ src2; 0 outside ``mask`` if given."""
  return _bitwise("bitwise_xor", jnp.bitwise_xor, src1, src2, mask)


def bitwise_not(src, mask=None) -> jax.Array:
  """~src (255 − x for uint8); 0 outside ``mask`` if given."""
  src = jnp.asarray(src)
  if not (jnp.issubdtype(src.dtype, jnp.integer) or src.dtype == jnp.bool_):
    raise TypeError(f"bitwise_not: src must be an integer or bool array, got {src.dtype}")
  return _masked(~src, mask)
