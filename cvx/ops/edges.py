"""Edges: gradient magnitude and orientation, Canny, LoG zero crossings.

Canny reproduces ``cv2.Canny`` step by step: Sobel with BORDER_REPLICATE,
integer L1 or L2 magnitude, OpenCV's tangent-based non-maximum suppression
(with its asymmetric ties), then hysteresis as a ``lax.while_loop`` that
grows edges from the strong pixels, on bit-packed planes, until no pixel
changes.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from cvx.ops import _images
from cvx.ops import borders
from cvx.ops import filters

_CANNY_SHIFT = 15
_TG22 = int(0.4142135623730950488016887242097 * (1 << _CANNY_SHIFT) + 0.5)


def _safe_sqrt(x):
  """sqrt with gradient 0 (not NaN) at 0."""
  positive = x > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def gradient_magnitude(image, ksize: int = 3, l2_gradient: bool = True,
                       border: int = borders.BORDER_DEFAULT) -> jax.Array:
  """√(dx² + dy²) (or |dx| + |dy|) of Sobel derivatives, per channel, float32.

  Equals ``cv2.magnitude(Sobel dx, Sobel dy)`` with CV_32F derivatives; in
  the input's units (0..255 for uint8). Differentiable (0 gradient at 0).
  """
  dx = filters.sobel(image, 1, 0, ksize, border=border)
  dy = filters.sobel(image, 0, 1, ksize, border=border)
  return _safe_sqrt(dx * dx + dy * dy) if l2_gradient else jnp.abs(dx) + jnp.abs(dy)


def gradient_orientation(image, ksize: int = 3,
                         border: int = borders.BORDER_DEFAULT) -> jax.Array:
  """Gradient direction atan2(dy, dx) in degrees [0, 360), float32, per channel.

  Like ``cv2.phase(dx, dy, angleInDegrees=True)`` (y points down); OpenCV
  uses a fast approximation good to ~0.3°, we use exact atan2. 0 where the
  gradient is 0.
  """
  dx = filters.sobel(image, 1, 0, ksize, border=border)
  dy = filters.sobel(image, 0, 1, ksize, border=border)
  angle = jnp.degrees(jnp.arctan2(dy, dx))
  return jnp.where(angle < 0, angle + 360.0, angle)


def _pack_rows(x: jax.Array, bit: int) -> jax.Array:
  """Bit ``bit`` of an H×W uint8 plane → ⌈H/32⌉×W uint32; row 32·r + k is bit k of word r.

  An OR of 32 row slices: a ``reduce`` over the 32 rows would pull the
  producer (NMS) into an unvectorised reduction loop.
  """
  h, w = x.shape
  r = -(-h // 32)
  x = jnp.pad(x, ((0, 32 * r - h), (0, 0))).reshape(r, 32, w)
  words = [((x[:, k] >> bit) & 1).astype(jnp.uint32) << k for k in range(32)]
  return functools.reduce(jnp.bitwise_or, words)


def _unpack_rows(words: jax.Array, h: int) -> jax.Array:
  """Inverse of _pack_rows: R×W uint32 → h×W bool."""
  r, w = words.shape
  bits = (words[:, None] >> jnp.arange(32, dtype=jnp.uint32)[:, None]) & 1
  return bits.reshape(32 * r, w)[:h].astype(bool)


def _dilate3x3_packed(e: jax.Array) -> jax.Array:
  """Binary 3×3 dilation of an R×W plane packed by _pack_rows, outside = 0."""
  p = jnp.pad(e, ((1, 1), (0, 0)))
  v = e | (e << 1) | (e >> 1) | (p[:-2] >> 31) | (p[2:] << 31)
  q = jnp.pad(v, ((0, 0), (1, 1)))
  return q[:, :-2] | q[:, 1:-1] | q[:, 2:]


def _hysteresis(strong: jax.Array, candidates: jax.Array, steps: int = 8) -> jax.Array:
  """Candidates 8-connected to a strong pixel (H×W bool); loops to convergence.

  Planes are bit-packed 32 rows to a uint32 word (a 512×512 image is 32 KB), so
  one growth step (a 3×3 dilation masked by the candidates) is ~20 word ops.
  ``steps`` growth steps (a ``fori_loop``; unrolling them makes XLA
  recompute) run between checks for change, until an iteration changes
  nothing.
  """
  # One uint8 plane for both masks, so that NMS is computed once.
  code = candidates.astype(jnp.uint8) | (strong.astype(jnp.uint8) << 1)
  seeds, mask = _pack_rows(code, 1), _pack_rows(code, 0)

  def body(state):
    edges, _ = state
    new = jax.lax.fori_loop(0, steps, lambda _, e: mask & _dilate3x3_packed(e), edges)
    return new, jnp.any(new != edges)

  edges, _ = jax.lax.while_loop(lambda s: s[1], body, (seeds, jnp.array(True)))
  return _unpack_rows(edges, strong.shape[0])


def _nms(mag, dx, dy):
  """OpenCV's non-maximum suppression mask on N×H×W int32 magnitudes."""
  p = jnp.pad(mag, ((0, 0), (1, 1), (1, 1)))
  left, right = p[:, 1:-1, :-2], p[:, 1:-1, 2:]
  up, down = p[:, :-2, 1:-1], p[:, 2:, 1:-1]
  up_left, up_right = p[:, :-2, :-2], p[:, :-2, 2:]
  down_left, down_right = p[:, 2:, :-2], p[:, 2:, 2:]
  x = jnp.abs(dx)
  y = jnp.abs(dy) << _CANNY_SHIFT
  tg22x = x * _TG22
  tg67x = tg22x + (x << (_CANNY_SHIFT + 1))
  horizontal = y < tg22x
  vertical = ~horizontal & (y > tg67x)
  same_sign = (dx ^ dy) >= 0
  diag_a = jnp.where(same_sign, up_left, up_right)
  diag_b = jnp.where(same_sign, down_right, down_left)
  keep = jnp.where(horizontal, (mag > left) & (mag >= right),
                   jnp.where(vertical, (mag > up) & (mag >= down),
                             (mag > diag_a) & (mag > diag_b)))
  return keep


def _largest_channel(mag, dx, dy):
  """Per pixel, (mag, dx, dy) of the first channel of largest ``mag``, as OpenCV.

  …×C planes → … planes, by a chain of per-channel selects (an argmax and
  gathers on the short minor axis were ~3× slower on XLA:CPU).
  """
  best = (mag[..., 0], dx[..., 0], dy[..., 0])
  for c in range(1, mag.shape[-1]):
    larger = mag[..., c] > best[0]  # strictly: ties keep the first channel
    best = tuple(jnp.where(larger, a[..., c], b) for a, b in zip((mag, dx, dy), best))
  return best


def canny(image, threshold1: float, threshold2: float, aperture_size: int = 3,
          l2_gradient: bool = False) -> jax.Array:
  """Canny edge map, bit-exact with ``cv2.Canny`` on uint8 input.

  Args:
    image: H×W, H×W×C or N×H×W×C. uint8 as OpenCV; float images in [0, 1]
      are first quantised to uint8 (round(255·x)) so thresholds keep
      OpenCV's 0..255-based meaning. With C > 1 each pixel uses the channel
      of largest magnitude, as OpenCV.
    threshold1, threshold2: hysteresis thresholds (either order) on the
      Sobel magnitude; L2 thresholds are squared and compared with dx²+dy².
    aperture_size: Sobel ksize, 3, 5 or 7 (7: derivatives and thresholds
      scaled by 1/16 and rounded, as OpenCV).
    l2_gradient: L2 magnitude instead of |dx| + |dy|.

  Returns:
    uint8 0/255 edges with one channel: H×W, H×W×1 or N×H×W×1.
  """
  image = _images.check_image(image, fn="canny")
  if aperture_size not in (3, 5, 7):
    raise ValueError(f"canny: aperture_size must be 3, 5 or 7, got {aperture_size!r}")
  if image.dtype != jnp.uint8:
    image = _images.saturate_uint8(image * 255.0)
  low, high = sorted((float(threshold1), float(threshold2)))
  # OpenCV scales 7×7 derivatives (and thresholds) by 1/16 to fit int16.
  scale = 1 / 16 if aperture_size == 7 else 1.0
  low, high = low * scale, high * scale
  if l2_gradient:
    low, high = (min(32767.0, t) ** 2 if t > 0 else t for t in (low, high))
  low, high = int(np.floor(low)), int(np.floor(high))
  x, restore = _images.as_batch(image)

  def one(image):
    """Edges of one H×W×C image as H×W bool."""
    x = image[None]

    def derivative(order_x, order_y):
      """OpenCV's int16 (CV_16S) Sobel derivative, as int32."""
      return filters.sobel(x, order_x, order_y, aperture_size, scale,
                           border=borders.BORDER_REPLICATE, ddepth=np.int16).astype(jnp.int32)

    dx, dy = derivative(1, 0), derivative(0, 1)
    mag = dx * dx + dy * dy if l2_gradient else jnp.abs(dx) + jnp.abs(dy)
    mag, dx, dy = _largest_channel(mag, dx, dy)
    candidates = ((mag > low) & _nms(mag, dx, dy))[0]
    return _hysteresis(candidates & (mag[0] > high), candidates)

  # One image at a time: its int32 planes stay in cache (2× faster than the batch at once).
  edges = jax.lax.map(one, x)
  return restore(jnp.where(edges, np.uint8(255), np.uint8(0))[..., None])


def log_zero_crossings(image, sigma: float, ksize: int = 0, threshold: float = 0.0,
                       border: int = borders.BORDER_DEFAULT) -> jax.Array:
  """Marr–Hildreth edges: zero crossings of the Laplacian of Gaussian.

  A pixel is marked when one of its 4-neighbours has the opposite LoG sign,
  it is the one of the pair nearer to zero (|L(p)| <= |L(q)|, so contours are
  one pixel thick) and |L(p) − L(q)| > ``threshold`` (in LoG units of the
  input: 0..255 scale for uint8). No OpenCV counterpart.

  Returns:
    uint8 0/255, same shape as the input (per channel).
  """
  lap = filters.laplacian_of_gaussian(image, sigma, ksize, border)
  x, restore = _images.as_batch(lap)
  p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  h, w = x.shape[1:3]
  neighbours = [p[:, 1:h + 1, :w], p[:, 1:h + 1, 2:], p[:, :h, 1:w + 1], p[:, 2:, 1:w + 1]]
  inside = jnp.pad(jnp.ones((h, w), bool), 1)[..., None]
  valid = [inside[1:h + 1, :w], inside[1:h + 1, 2:], inside[:h, 1:w + 1], inside[2:, 1:w + 1]]
  edge = jnp.zeros(x.shape, bool)
  for q, ok in zip(neighbours, valid):
    crossing = (x * q < 0) & (jnp.abs(x) <= jnp.abs(q)) & (jnp.abs(x - q) > threshold)
    edge = edge | (crossing & ok)
  return restore(jnp.where(edge, np.uint8(255), np.uint8(0)))
