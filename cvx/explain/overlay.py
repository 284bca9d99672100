"""Explanation maps as PNGs: each map colour-mapped over its image.

Works for the maps of any model and layer (Grad-CAM, Grad-CAM++, CAM, saliency):
a map is min–max scaled on its own and resized bilinearly (half-pixel
centres, as ``cv2.resize``) to its image before :func:`cvx.plots.overlay`.
"""
import jax.numpy as jnp
import numpy as np
from PIL import Image

from cvx import plots
from cvx.explain import cam


def overlays(images, maps, alpha: float = 0.4, colormap: str = "jet") -> np.ndarray:
  """N×H×W×3 uint8: ``maps`` (N×h×w, any scale) over ``images`` (N×H×W[×C],
  uint8 or float in [0, 1], as displayed — not as normalized for the model)."""
  images, maps = np.asarray(images), jnp.asarray(maps, jnp.float32)
  if maps.ndim != 3 or images.ndim not in (3, 4) or len(images) != len(maps):
    raise ValueError(f"want N×h×w maps for N×H×W[×C] images, got maps {maps.shape} "
                     f"and images {images.shape}")
  heat = np.asarray(cam.upsample(cam.normalize(maps), images.shape[1:3]))
  return np.stack([plots.overlay(im, h, alpha, colormap) for im, h in zip(images, heat)])


def write_png(path: str, image: np.ndarray) -> None:
  """Writes one H×W×3 uint8 image (an overlay) as a PNG file."""
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
    raise ValueError(f"want an H×W×3 uint8 image, got {image.dtype} {image.shape}")
  Image.fromarray(image).save(path, format="PNG")
