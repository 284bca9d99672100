"""OpenCV border modes and the padding every neighbourhood op uses.

Border names and values equal OpenCV's (``cv2.BORDER_*``); the default is
``BORDER_REFLECT_101`` (``gfedcb|abcdefgh|gfedcba``) as in OpenCV.
"""
import jax
import jax.numpy as jnp
import numpy as np

from cvx.ops import _images

BORDER_CONSTANT = 0      # iiiiii|abcdefgh|iiiiiii with value i
BORDER_REPLICATE = 1     # aaaaaa|abcdefgh|hhhhhhh
BORDER_REFLECT = 2       # fedcba|abcdefgh|hgfedcb
BORDER_WRAP = 3          # cdefgh|abcdefgh|abcdefg
BORDER_REFLECT_101 = 4   # gfedcb|abcdefgh|gfedcba
BORDER_REFLECT101 = BORDER_REFLECT_101
BORDER_DEFAULT = BORDER_REFLECT_101

BORDERS = {"BORDER_CONSTANT": BORDER_CONSTANT, "BORDER_REPLICATE": BORDER_REPLICATE,
           "BORDER_REFLECT": BORDER_REFLECT, "BORDER_WRAP": BORDER_WRAP,
           "BORDER_REFLECT_101": BORDER_REFLECT_101}
_NUMPY_MODE = {BORDER_CONSTANT: "constant", BORDER_REPLICATE: "edge",
               BORDER_REFLECT: "symmetric", BORDER_WRAP: "wrap",
               BORDER_REFLECT_101: "reflect"}


def check_border(border, fn: str = "copy_make_border") -> int:
  """Returns ``border`` if it is an OpenCV border mode, else ValueError."""
  _images.check_choice(fn, "border", border, BORDERS)
  return int(border)


def pad_hw(x: jax.Array, top: int, bottom: int, left: int, right: int,
           border: int = BORDER_DEFAULT, value=0, channel_axis: bool = True) -> jax.Array:
  """Pads H and W of an (N×)H×W×C array, or of (N×)H×W planes if not
  ``channel_axis``; see copy_make_border."""
  hw = [(top, bottom), (left, right)]
  widths = [(0, 0)] * (x.ndim - 3) + hw + [(0, 0)] if channel_axis else [(0, 0)] * (x.ndim - 2) + hw
  mode = _NUMPY_MODE[border]
  if border != BORDER_CONSTANT:
    return jnp.pad(x, widths, mode=mode)
  value = jnp.asarray(value, x.dtype)
  if value.ndim == 0:
    return jnp.pad(x, widths, constant_values=value)
  # A per-channel value: pad with zeros, then fill the frame.
  padded = jnp.pad(x, widths)
  hw_axes = slice(-3, -1) if channel_axis else slice(-2, None)
  inside = jnp.pad(jnp.ones(x.shape[hw_axes], bool), widths[hw_axes])
  return jnp.where(inside[..., None] if channel_axis else inside, padded, value)


def _take(x: jax.Array, index, axis: int, step: int) -> jax.Array:
  """Blocks of ``step`` elements along ``axis`` in the static order ``index``,
  as one concatenation of ascending runs of slices."""
  parts, start = [], 0
  for i in range(1, len(index) + 1):
    if i == len(index) or index[i] != index[i - 1] + 1:
      parts.append(jax.lax.slice_in_dim(x, int(index[start]) * step,
                                        (int(index[i - 1]) + 1) * step, axis=axis))
      start = i
  return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis)


def pad_merged(x: jax.Array, channels: int, top: int, bottom: int, left: int, right: int,
               border: int = BORDER_DEFAULT) -> jax.Array:
  """Pads N×H×(W·C) images whose last axis holds each pixel's ``channels``
  values in turn; modes as :func:`pad_hw`, CONSTANT with zeros.

  Concatenated slices, which XLA fuses into one loop over the merged minor
  axis (jnp.pad of N×H×W×C takes a pass per axis over a minor axis of C).
  """
  h, w = x.shape[1], x.shape[2] // channels
  if border == BORDER_CONSTANT:
    return jnp.pad(x, [(0, 0), (top, bottom), (left * channels, right * channels)])
  rows = source_indices(h, top, bottom, border)
  cols = source_indices(w, left, right, border)
  return _take(_take(x, rows, 1, 1), cols, 2, channels)


def source_indices(n: int, before: int, after: int, border: int) -> np.ndarray:
  """For each index of an axis of ``n`` padded by ``before`` and ``after``,
  the index it copies (int64, before + n + after), −1 for CONSTANT's fill."""
  if border == BORDER_CONSTANT:
    return np.pad(np.arange(n), (before, after), constant_values=-1)
  return np.pad(np.arange(n), (before, after), mode=_NUMPY_MODE[border])


def window_maps(height: int, width: int, kh: int, kw: int, border: int,
                anchor: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, int]:
  """(rows, cols, left) for a kh × kw window anchored at ``anchor`` (row,
  column; default the centre) on a height × width image: the padded-to-source
  index maps of :func:`source_indices` for both axes, and the columns left of
  the image in a padded row (cvx.ops._native's kernels take these)."""
  top, left = anchor or (kh // 2, kw // 2)
  return (source_indices(height, top, kh - 1 - top, border),
          source_indices(width, left, kw - 1 - left, border), left)


def copy_make_border(image, top: int, bottom: int, left: int, right: int,
                     border_type: int = BORDER_CONSTANT, value=0) -> jax.Array:
  """Pads the image like ``cv2.copyMakeBorder``.

  Args:
    image: H×W, H×W×C or N×H×W×C, any dtype.
    top, bottom, left, right: non-negative pixel counts.
    border_type: a ``BORDER_*`` mode (OpenCV's default here is CONSTANT too).
    value: CONSTANT fill, a scalar or one value per channel.

  Returns:
    The padded image, same dtype and rank. For REFLECT/REFLECT_101 the pad
    must be smaller than the side (OpenCV reflects again; numpy repeats).
  """
  image = jnp.asarray(image)
  if image.ndim not in (2, 3, 4):
    raise ValueError(f"copy_make_border: image must be H×W, H×W×C or N×H×W×C, got "
                     f"shape {image.shape}")
  check_border(border_type)
  for name, n in (("top", top), ("bottom", bottom), ("left", left), ("right", right)):
    if not isinstance(n, int) or n < 0:
      raise ValueError(f"copy_make_border: {name} must be a non-negative int, got {n!r}")
  x, restore = _images.as_batch(image)
  return restore(pad_hw(x, top, bottom, left, right, border_type, value))
