"""Colour conversions (RGB order), bit-exact with ``cv2.cvtColor`` on uint8.

uint8 images keep OpenCV's fixed-point arithmetic and ranges (HSV: H 0..179,
S and V 0..255). Float images are in [0, 1] except float hue, in degrees
[0, 360) as OpenCV's float HSV; float conversions are differentiable.
"""
import jax
import jax.numpy as jnp
import numpy as np

from cvx.ops import _images

# cv2 RGB2Gray for 8U: Y = (9798 R + 19235 G + 3735 B + 2^14) >> 15.
_GRAY_FIXED = (9798, 19235, 3735)
_GRAY_FLOAT = (0.299, 0.587, 0.114)
# cv2 RGB2HSV_b fixed point, shift 12 (color_hsv.simd.hpp).
_HSV_SHIFT = 12


def _check_channels(image, fn: str, channels: int) -> jax.Array:
  image = _images.check_image(image, fn=fn)
  if image.ndim == 2 or image.shape[-1] != channels:
    raise ValueError(f"{fn}: image must have {channels} channels (…×H×W×{channels}), "
                     f"got shape {image.shape}")
  return image


def rgb_to_gray(image) -> jax.Array:
  """RGB (…×3) → gray (…×1), weights 0.299, 0.587, 0.114.

  uint8 uses OpenCV's 15-bit fixed point and equals ``cv2.COLOR_RGB2GRAY``;
  float is the weighted sum. Unlike OpenCV the channel axis is kept (…×1) so
  that a batch stays N×H×W×C.
  """
  image = _check_channels(image, "rgb_to_gray", 3)
  if image.dtype == jnp.uint8:
    x = image.astype(jnp.int32)
    y = (x[..., 0] * _GRAY_FIXED[0] + x[..., 1] * _GRAY_FIXED[1]
         + x[..., 2] * _GRAY_FIXED[2] + (1 << 14)) >> 15
    return y[..., None].astype(jnp.uint8)
  w = jnp.asarray(_GRAY_FLOAT, jnp.float32)
  return (image.astype(jnp.float32) @ w)[..., None]


def gray_to_rgb(image) -> jax.Array:
  """Gray H×W or …×1 → …×3 by repeating the channel (``cv2.COLOR_GRAY2RGB``)."""
  image = _images.check_image(image, fn="gray_to_rgb")
  if image.ndim == 2:
    image = image[..., None]
  if image.shape[-1] != 1:
    raise ValueError(f"gray_to_rgb: image must be H×W or have 1 channel, got shape "
                     f"{image.shape}")
  return jnp.repeat(image, 3, axis=-1)


def rgb_to_bgr(image) -> jax.Array:
  """Reverses the channel order (…×3 or …×4 keeps alpha last)."""
  image = _images.check_image(image, fn="rgb_to_bgr")
  if image.ndim == 2 or image.shape[-1] not in (3, 4):
    raise ValueError(f"rgb_to_bgr: image must have 3 or 4 channels, got shape "
                     f"{image.shape}")
  return jnp.concatenate([image[..., 2::-1], image[..., 3:]], axis=-1)


bgr_to_rgb = rgb_to_bgr


def split(image) -> tuple[jax.Array, ...]:
  """Channels of …×C as a tuple of C planes (…), like ``cv2.split``."""
  image = jnp.asarray(image)
  if image.ndim < 3:
    raise ValueError(f"split: image must have a channel axis, got shape {image.shape}")
  return tuple(image[..., c] for c in range(image.shape[-1]))


def merge(channels) -> jax.Array:
  """Stacks same-shape planes on a new last axis, like ``cv2.merge``."""
  channels = [jnp.asarray(c) for c in channels]
  shapes = {c.shape for c in channels}
  if not channels or len(shapes) != 1:
    raise ValueError(f"merge: channels must be a non-empty sequence of equal shapes, "
                     f"got shapes {[c.shape for c in channels]}")
  return jnp.stack(channels, axis=-1)


def _division_table(numerator: jax.Array, d: jax.Array) -> jax.Array:
  """OpenCV's table entry round(numerator / d) (0 for d = 0), int32.

  Computed rather than looked up (XLA's CPU gathers are slow): the float32
  quotient rounds to the same integers for every d in 1..255 (no ties), which
  a test checks on all 2^24 RGB triples.
  """
  q = jnp.round(numerator / jnp.maximum(d, 1).astype(jnp.float32))
  return jnp.where(d > 0, q, 0.0).astype(jnp.int32)


def _rgb_to_hsv_uint8(image: jax.Array) -> jax.Array:
  """OpenCV's RGB2HSV_b, evaluated per element of the …×3 result.

  Each element takes its pixel's r, g, b (…×1 slices, broadcast) and selects
  H, S or V by its channel index, so XLA's CPU loop runs over the interleaved
  output and vectorises; stacking three planes on the last axis instead is
  ~5× slower. H and S share one division: numerator and divisor (max − min
  for H, max for S) are picked per channel.
  """
  r, g, b = (image[..., c:c + 1].astype(jnp.int32) for c in range(3))
  channel = jax.lax.broadcasted_iota(jnp.int32, (1,) * (image.ndim - 1) + (3,), image.ndim - 1)
  is_h = channel == 0
  v = jnp.maximum(jnp.maximum(r, g), b)
  diff = v - jnp.minimum(jnp.minimum(r, g), b)
  h = jnp.where(v == r, g - b, jnp.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
  numerator = jnp.where(is_h, np.float32((180 << _HSV_SHIFT) // 6), np.float32(255 << _HSV_SHIFT))
  table = _division_table(numerator, jnp.where(is_h, diff, v))
  hs = (jnp.where(is_h, h, diff) * table + (1 << (_HSV_SHIFT - 1))) >> _HSV_SHIFT
  hs = jnp.where(hs < 0, hs + 180, hs)  # only H is ever negative
  return jnp.where(channel == 2, v, hs).astype(jnp.uint8)


def _safe_div(a, b):
  """a / b, 0 where b == 0, with finite gradients."""
  nonzero = b != 0
  return jnp.where(nonzero, a / jnp.where(nonzero, b, 1.0), 0.0)


def _rgb_to_hsv_float(image: jax.Array) -> jax.Array:
  x = image.astype(jnp.float32)
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  v = jnp.max(x, axis=-1)
  diff = v - jnp.min(x, axis=-1)
  s = _safe_div(diff, v)
  h = jnp.where(v == r, g - b, jnp.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
  h = 60.0 * _safe_div(h, diff)
  h = jnp.where(h < 0, h + 360.0, h)
  return jnp.stack([h, s, v], axis=-1)


def rgb_to_hsv(image) -> jax.Array:
  """RGB → HSV (…×3), as ``cv2.COLOR_RGB2HSV``.

  uint8: H in 0..179 (degrees / 2), S and V in 0..255, bit-exact with OpenCV.
  float in [0, 1]: H in degrees [0, 360), S and V in [0, 1]; gray pixels get
  H = 0 (and S = 0 for black), with zero gradient there instead of NaN.
  """
  image = _check_channels(image, "rgb_to_hsv", 3)
  if image.dtype == jnp.uint8:
    return _rgb_to_hsv_uint8(image)
  return _rgb_to_hsv_float(image)


def _hsv_to_rgb_float(h, s, v):
  """Sector-free form: c_n = v − v·s·clip(min(k, 4 − k), 0, 1), k = (n + h/60) mod 6."""
  def channel(n):
    k = jnp.mod(n + h / 60.0, 6.0)
    return v - v * s * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)
  return jnp.stack([channel(5.0), channel(3.0), channel(1.0)], axis=-1)


def _fma_tables() -> np.ndarray:
  """1 − s·f and 1 − s·(1 − f) for every uint8 (H, S), rounded once like an FMA.

  OpenCV's HSV2RGB_b is compiled with fused multiply-add; float32 arithmetic
  without it rounds differently on ~400 of the 11.8 M inputs. The values only
  depend on (H, S), so they are tabulated in float64 and rounded to float32.
  """
  f32 = np.float32
  h = np.arange(180, dtype=f32) * f32(6.0 / 180.0)
  frac = (h - np.floor(h)).astype(f32)
  s = (np.arange(256, dtype=f32) * f32(1.0 / 255.0)).astype(np.float64)
  one_minus = lambda t: (1.0 - s[None, :] * t.astype(np.float64)[:, None]).astype(f32)
  return np.stack([one_minus(frac), one_minus((f32(1.0) - frac).astype(f32))], -1)


_HSV2RGB_FMA = _fma_tables()  # 180×256×2


_LEVELS = np.arange(256, dtype=np.float32) * np.float32(1.0 / 255.0)  # x / 255
_ONE_MINUS = (np.float32(1.0) - _LEVELS).astype(np.float32)


def _hsv_to_rgb_uint8(image: jax.Array) -> jax.Array:
  """cv2's vectorised HSV2RGB_b: float32 sector arithmetic, truncated to uint8.

  OpenCV truncates in its SIMD loop but rounds in the scalar loop that ends
  each row (the last W mod 32 pixels with AVX2); we truncate everywhere, so
  those tail pixels can differ by one. Every factor is looked up in a table
  computed in numpy, so XLA cannot contract ``1 − S/255`` into an FMA under
  jit and change the rounding.
  """
  hi = image[..., 0].astype(jnp.int32)
  si = image[..., 1].astype(jnp.int32)
  v = jnp.asarray(_LEVELS)[image[..., 2]]
  sector = jnp.asarray(np.floor(np.arange(180) * np.float32(6.0 / 180.0)).astype(np.int32))
  sector = sector[jnp.clip(hi, 0, 179)]
  fma = jnp.asarray(_HSV2RGB_FMA)[jnp.clip(hi, 0, 179), si]
  one_minus_s = jnp.asarray(_ONE_MINUS)[si]
  tab = jnp.stack([v, v * one_minus_s, v * fma[..., 0], v * fma[..., 1]], axis=-1)
  # Rows pick (b, g, r) from tab per sector, as OpenCV's sector_data.
  sector_data = jnp.asarray([[1, 3, 0], [1, 0, 2], [3, 0, 1],
                             [0, 2, 1], [0, 1, 3], [2, 1, 0]])
  bgr = jnp.take_along_axis(tab, sector_data[sector], axis=-1)
  return jnp.clip(jnp.trunc(bgr[..., ::-1] * np.float32(255.0)), 0, 255).astype(jnp.uint8)


def hsv_to_rgb(image) -> jax.Array:
  """HSV → RGB, the inverse of :func:`rgb_to_hsv` for both dtypes.

  uint8 follows ``cv2.COLOR_HSV2RGB`` (H 0..179; H ≥ 180 is clamped to 179
  where OpenCV wraps it), bit-exact for widths that are a multiple of 32;
  float takes H in degrees
  (any real value, taken modulo 360) and S, V in [0, 1].
  """
  image = _check_channels(image, "hsv_to_rgb", 3)
  if image.dtype == jnp.uint8:
    return _hsv_to_rgb_uint8(image)
  x = image.astype(jnp.float32)
  return _hsv_to_rgb_float(x[..., 0], x[..., 1], x[..., 2])
