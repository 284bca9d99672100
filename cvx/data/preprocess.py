"""On-device preprocessing: uint8 batches → float images, inside the jitted step.

``to_unit`` gives N×H×W×C float32 in [0, 1] (resized if asked); augmentations
work in that range; ``normalize`` then applies the config's normalization.
"""
import jax
import jax.numpy as jnp

NORMALIZATIONS = ("scale", "standardize", "minmax")
CHANNEL_ORDERS = ("RGB", "BGR")


def to_unit(images: jax.Array, image_size: tuple[int, int] | None = None) -> jax.Array:
  """uint8 N×H×W×C → float32 in [0, 1], bilinearly resized to ``image_size``."""
  x = images.astype(jnp.float32) / 255.0
  if image_size is not None and tuple(image_size) != x.shape[1:3]:
    x = jax.image.resize(x, (x.shape[0], *image_size, x.shape[3]), "bilinear")
  return x


def normalize(x: jax.Array, method: str, mean=None, std=None,
              channel_order: str = "RGB") -> jax.Array:
  """``scale``: as is; ``standardize``: (x − mean)/std per channel (in [0, 1]
  units), after reversing the channels for ``channel_order='BGR'`` (Keras'
  'caffe' weights); ``minmax``: each image stretched to [0, 1]."""
  if channel_order not in CHANNEL_ORDERS:
    raise ValueError(f"data.channel_order={channel_order!r}; allowed: {CHANNEL_ORDERS}")
  if method == "scale":
    return x
  if method == "standardize":
    if mean is None or std is None:
      raise ValueError("normalize='standardize' needs data.mean and data.std")
    if len(mean) != x.shape[-1] or len(std) != x.shape[-1]:
      raise ValueError(f"data.mean/std have {len(mean)}/{len(std)} entries; "
                       f"images have {x.shape[-1]} channels")
    if channel_order == "BGR":
      x = x[..., ::-1]
    return (x - jnp.asarray(mean)) / jnp.asarray(std)
  if method == "minmax":
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    hi = x.max(axis=(1, 2, 3), keepdims=True)
    return (x - lo) / jnp.maximum(hi - lo, 1e-6)
  if method == "init_from":
    raise ValueError("data.normalize='init_from' is resolved by the training loop's "
                     "setup (cvx.transfer.pretrained.normalization) from config.init_from")
  raise ValueError(f"unknown normalization {method!r}; allowed: {NORMALIZATIONS} "
                   f"or 'init_from'")
