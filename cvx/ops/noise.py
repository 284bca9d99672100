"""Noise models for corrupting images: Gaussian, salt-and-pepper, speckle.

Key first, any image shape (H×W, H×W×C, N×H×W×C). Parameters follow
``skimage.util.random_noise``: ``mean``/``var`` on the [0, 1] scale, every
element (pixel and channel) drawn independently, results clipped to the valid
range. uint8 in → uint8 out (rounded); float in [0, 1] → float32.
"""
import jax
import jax.numpy as jnp

from cvx.ops import _images


def _unit(image, fn: str) -> tuple[jax.Array, jax.Array]:
  """(checked image, float32 copy on the [0, 1] scale)."""
  image = _images.check_image(image, "image", fn)
  scale = 255.0 if image.dtype == jnp.uint8 else 1.0
  return image, image.astype(jnp.float32) / scale


def _back(x: jax.Array, image: jax.Array) -> jax.Array:
  """Clips to [0, 1] and returns ``image``'s dtype (uint8: rounded)."""
  x = jnp.clip(x, 0.0, 1.0)
  return _images.cast_like(x * 255.0, image) if image.dtype == jnp.uint8 else x


def _check_var(fn: str, var):
  if isinstance(var, (int, float)) and var < 0:
    raise ValueError(f"{fn}: var must be >= 0, got {var!r}")


def gaussian_noise(key, image, mean: float = 0.0, var: float = 0.01):
  """Adds N(mean, var) noise (on the [0, 1] scale) to every element.

  Args:
    key: a ``jax.random`` key.
    image: H×W, H×W×C or N×H×W×C, uint8 (0..255) or float in [0, 1].
    mean, var: of the noise on the [0, 1] scale (var=0.01 is σ≈25.5 on uint8).

  Returns:
    The noisy image, clipped, same shape and dtype (uint8 rounded).
  """
  _check_var("gaussian_noise", var)
  image, x = _unit(image, "gaussian_noise")
  noise = mean + jnp.sqrt(var) * jax.random.normal(key, x.shape)
  return _back(x + noise, image)


def salt_and_pepper(key, image, amount: float = 0.05, salt_vs_pepper: float = 0.5):
  """Replaces a fraction ``amount`` of elements by 0 (pepper) or max (salt).

  Each element is corrupted with probability ``amount``; a corrupted element
  is salt (255 or 1.0) with probability ``salt_vs_pepper``. As in scikit-image
  channels are corrupted independently (not whole pixels).
  """
  for name, value in (("amount", amount), ("salt_vs_pepper", salt_vs_pepper)):
    if isinstance(value, (int, float)) and not 0 <= value <= 1:
      raise ValueError(f"salt_and_pepper: {name} must be in [0, 1], got {value!r}")
  image, x = _unit(image, "salt_and_pepper")
  k_flip, k_salt = jax.random.split(key)
  flipped = jax.random.uniform(k_flip, x.shape) < amount
  salted = jax.random.uniform(k_salt, x.shape) < salt_vs_pepper
  return _back(jnp.where(flipped, salted.astype(jnp.float32), x), image)


def speckle(key, image, mean: float = 0.0, var: float = 0.01):
  """Multiplicative noise ``x + x·n`` with n ~ N(mean, var) per element."""
  _check_var("speckle", var)
  image, x = _unit(image, "speckle")
  noise = mean + jnp.sqrt(var) * jax.random.normal(key, x.shape)
  return _back(x + x * noise, image)
