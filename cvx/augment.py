"""Random augmentations for the train step: PRNG key first, one image each.

Every function maps ``(key, image) -> image`` for one H×W×C float image in
[0, 1]; :func:`build` vmaps a comma-separated list of them over a batch with one
key per example, so it runs inside the jitted train step. Geometric warps
(``affine``, ``rotate``, ``translate``) are :func:`cvx.ops.warp_affine`
(bilinear, zero fill, as ``cv2.warpAffine``); colour jitter uses dm_pix's
random brightness/contrast/saturation/hue.
"""
import math
from typing import Callable

import dm_pix
import jax
import jax.numpy as jnp

from cvx.ops import geometry

Augment = Callable[[jax.Array, jax.Array], jax.Array]


def flip(key, image, p: float = 0.5):
  """Horizontal flip with probability ``p``."""
  return jnp.where(jax.random.uniform(key) < p, image[:, ::-1], image)


def crop(key, image, padding: int | None = None):
  """Pads by ``padding`` (default H/8) with reflection, crops back to H×W."""
  h, w = image.shape[:2]
  pad = max(1, h // 8) if padding is None else padding
  padded = jnp.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
  dy, dx = jax.random.randint(key, (2,), 0, 2 * pad + 1)
  return jax.lax.dynamic_slice(padded, (dy, dx, 0), image.shape)


def resized_crop(key, image, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
  """Inception-style crop: a random box, resized (bilinear) back to H×W.

  The box covers a fraction in ``scale`` of the image area with aspect ratio
  (w/h) log-uniform in ``ratio``, clipped to the image; box corners and sizes
  are whole pixels, as in torchvision's ``RandomResizedCrop``. Sampling uses
  pixel centres and replicates the border, as ``cv2.resize`` (INTER_LINEAR).
  """
  h, w = image.shape[:2]
  y0, x0, ch, cw = resized_crop_box(key, h, w, scale, ratio)
  ys = jnp.clip(y0 + (jnp.arange(h) + 0.5) * (ch / h) - 0.5, y0, y0 + ch - 1)
  xs = jnp.clip(x0 + (jnp.arange(w) + 0.5) * (cw / w) - 0.5, x0, x0 + cw - 1)
  grid = jnp.meshgrid(ys, xs, indexing="ij")
  channels = [jax.scipy.ndimage.map_coordinates(image[..., c], grid, order=1)
              for c in range(image.shape[-1])]
  return jnp.stack(channels, axis=-1)


def resized_crop_box(key, h: int, w: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
  """The box :func:`resized_crop` draws: (top, left, height, width) in pixels."""
  k_area, k_ratio, k_y, k_x = jax.random.split(key, 4)
  area = h * w * jax.random.uniform(k_area, minval=scale[0], maxval=scale[1])
  aspect = jnp.exp(jax.random.uniform(k_ratio, minval=math.log(ratio[0]),
                                      maxval=math.log(ratio[1])))
  cw = jnp.clip(jnp.round(jnp.sqrt(area * aspect)), 1, w).astype(jnp.int32)
  ch = jnp.clip(jnp.round(jnp.sqrt(area / aspect)), 1, h).astype(jnp.int32)
  y0 = jax.random.randint(k_y, (), 0, h - ch + 1)
  x0 = jax.random.randint(k_x, (), 0, w - cw + 1)
  return y0, x0, ch, cw


def affine(key, image, degrees: float = 15.0, scale: float = 0.15,
           shear: float = 0.2, translate: float = 0.1):
  """Random rotation (±degrees), zoom (1±scale), shear and shift (±translate·size).

  The warp is about the image centre; pixels from outside are 0.
  """
  h, w = image.shape[:2]
  k_rot, k_scale, k_shear, k_shift = jax.random.split(key, 4)
  angle = jax.random.uniform(k_rot, minval=-degrees, maxval=degrees) * math.pi / 180
  zoom = jax.random.uniform(k_scale, minval=1 - scale, maxval=1 + scale)
  sh = jax.random.uniform(k_shear, minval=-shear, maxval=shear)
  shift = jax.random.uniform(k_shift, (2,), minval=-translate, maxval=translate)
  c, s = jnp.cos(angle), jnp.sin(angle)
  # Output (x, y) samples the input at A @ (x, y) + offset.
  a = jnp.array([[c, s], [-s, c]]) @ jnp.array([[1.0, 0.0], [sh, 1.0]]) / zoom
  centre = jnp.array([(w - 1) / 2, (h - 1) / 2])
  offset = centre - a @ centre + shift[::-1] * jnp.array([w, h])
  inverse = jnp.concatenate([a, offset[:, None]], axis=1)
  return geometry.warp_affine(image, inverse,
                              flags=geometry.INTER_LINEAR | geometry.WARP_INVERSE_MAP)


def rotate(key, image, degrees: float = 15.0):
  """Rotation by a uniform angle in ±degrees about the centre, zero fill."""
  angle = jax.random.uniform(key, minval=-degrees, maxval=degrees)
  return geometry.rotate_about_center(image, angle)


def translate(key, image, fraction: float = 0.1):
  """Shift by up to ±fraction of the width and height (sub-pixel), zero fill."""
  h, w = image.shape[:2]
  tx, ty = jax.random.uniform(key, (2,), minval=-fraction, maxval=fraction) * jnp.array([w, h])
  return geometry.translate(image, tx, ty)


def jitter(key, image, brightness: float = 0.2, contrast: float = 0.2,
           saturation: float = 0.2, hue: float = 0.05):
  """Colour jitter (dm_pix); saturation and hue only for 3-channel images."""
  kb, kc, ks, kh = jax.random.split(key, 4)
  image = dm_pix.random_brightness(kb, image, brightness)
  image = dm_pix.random_contrast(kc, image, 1 - contrast, 1 + contrast)
  if image.shape[-1] == 3:
    image = dm_pix.random_saturation(ks, image, 1 - saturation, 1 + saturation)
    image = dm_pix.random_hue(kh, image, hue)
  return jnp.clip(image, 0.0, 1.0)


def noise(key, image, sigma: float = 0.05):
  """Additive Gaussian noise, clipped to [0, 1]."""
  return jnp.clip(image + sigma * jax.random.normal(key, image.shape), 0.0, 1.0)


AUGMENTATIONS: dict[str, Augment] = {
    "flip": flip, "crop": crop, "resized_crop": resized_crop, "affine": affine,
    "rotate": rotate, "translate": translate, "jitter": jitter, "noise": noise}


def build(spec: str) -> Callable[..., jax.Array] | None:
  """``"flip,crop"`` → ``fn(key, images, first_index=0)``; None if empty.

  ``images`` is N×H×W×C float in [0, 1]. Example ``i`` of the batch uses
  ``fold_in(key, first_index + i)``, so a global batch gets the same
  augmentation however it is split over devices.
  """
  names = [n.strip() for n in spec.split(",") if n.strip()]
  unknown = [n for n in names if n not in AUGMENTATIONS]
  if unknown:
    raise ValueError(f"unknown augmentation(s) {unknown} in {spec!r}; "
                     f"available: {sorted(AUGMENTATIONS)}")
  if not names:
    return None
  fns = [AUGMENTATIONS[n] for n in names]

  def one(key, image):
    for fn, k in zip(fns, jax.random.split(key, len(fns))):
      image = fn(k, image)
    return image

  def batch(key, images, first_index=0):
    index = first_index + jnp.arange(images.shape[0])
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(index)
    return jax.vmap(one)(keys, images)

  return batch
