"""What a CNN computes: feature maps, first-layer filters, activation maximization.

Feature maps and filters come back as lists of H×W×3 uint8 tiles (for
:func:`cvx.plots.image_grid`), each min–max scaled on its own.
"""
import jax
import jax.numpy as jnp
import numpy as np


def _to_tile(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float32)
  lo, hi = x.min(), x.max()
  x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
  x = np.repeat(x[..., None], 3, axis=-1) if x.ndim == 2 else x
  return np.round(255 * x).astype(np.uint8)


def feature_map_tiles(feature: np.ndarray, limit: int = 64) -> list[np.ndarray]:
  """One example's h×w×C feature map → up to ``limit`` channel tiles."""
  if feature.ndim != 3:
    raise ValueError(f"feature must be h×w×C (one example), got shape {feature.shape}")
  return [_to_tile(feature[..., c]) for c in range(min(limit, feature.shape[-1]))]


def filter_tiles(kernel: np.ndarray) -> list[np.ndarray]:
  """A first-layer conv kernel kh×kw×C_in×C_out → one tile per output channel
  (RGB when C_in is 3, else the mean over input channels)."""
  if kernel.ndim != 4:
    raise ValueError(f"kernel must be kh×kw×C_in×C_out, got shape {kernel.shape}")
  k = np.asarray(kernel)
  return [_to_tile(k[..., o] if k.shape[2] == 3 else k[..., o].mean(-1))
          for o in range(k.shape[-1])]


def maximize_activation(model, variables, layer: str, channel: int,
                        shape: tuple[int, ...], key, steps: int = 200,
                        learning_rate: float = 0.05, norm: float = 1.0):
  """Input (1×H×W×C) that maximizes the mean of ``layer``'s ``channel``,
  by projected gradient ascent on the ball ‖x‖₂ ≤ ``norm`` from a small
  random start. Returns (image, activation after each step)."""

  def activation(x):
    _, features = model.apply(variables, x, train=False)
    if layer not in features:
      raise ValueError(f"layer {layer!r} is not a feature; available: {sorted(features)}")
    return features[layer][..., channel].mean()

  def project(x):
    return x * jnp.minimum(1.0, norm / jnp.maximum(jnp.linalg.norm(x), 1e-12))

  def step(x, _):
    value, grad = jax.value_and_grad(activation)(x)
    x = project(x + learning_rate * grad / jnp.maximum(jnp.linalg.norm(grad), 1e-12))
    return x, value

  x0 = project(0.01 * jax.random.normal(key, (1, *shape)))
  x, values = jax.lax.scan(step, x0, None, length=steps)
  return x, values
