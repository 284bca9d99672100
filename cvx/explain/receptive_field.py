"""Receptive fields: analytic (per layer) and effective (by gradient), seed 001.

The analytic receptive field of a chain of layers with kernel kᵢ, stride sᵢ and
dilation dᵢ grows as rᵢ = rᵢ₋₁ + (kᵢ − 1)·dᵢ·jᵢ₋₁ with jump jᵢ = jᵢ₋₁·sᵢ
(r₀ = j₀ = 1). The effective receptive field (Luo et al., 2016) is the
gradient of one output unit with respect to the input: the pixels that actually
influence it, and how much.
"""
import jax
import jax.numpy as jnp


def step(rf: int, jump: int, kernel: int, stride: int, dilation: int = 1):
  """One layer: (rf, jump) → (rf + (kernel − 1)·dilation·jump, jump·stride)."""
  if kernel < 1 or stride < 1 or dilation < 1:
    raise ValueError("kernel and stride must be ≥ 1 (dilation too), got "
                     f"({kernel}, {stride}, {dilation})")
  return rf + (kernel - 1) * dilation * jump, jump * stride


def analytic(layers) -> list[tuple[int, int]]:
  """``[(kernel, stride[, dilation]), ...]`` → ``[(receptive field, jump), ...]``."""
  rf, jump, out = 1, 1, []
  for layer in layers:
    rf, jump = step(rf, jump, *layer)
    out.append((rf, jump))
  return out


def effective(model, variables, images, layer: str, position=None):
  """|∂ unit / ∂ input| summed over input channels: N×H×W float32.

  The unit is channel-sum of feature ``layer`` at ``position`` (row, col; the
  centre by default), for each image separately.
  """
  return effective_fields(model, variables, images, [layer], {layer: position})[layer]


def effective_fields(model, variables, images, layers, positions=None) -> dict:
  """:func:`effective` of several layers → ``{layer: N×H×W}``, each unit at
  ``positions[layer]`` if given, else the centre. One forward pass and one
  backward pass per layer: a single compilation under jit."""
  positions = positions or {}

  def tapped(x):
    _, features = model.apply(variables, x, train=False)
    missing = [name for name in layers if name not in features]
    if missing:
      raise ValueError(f"layer {missing[0]!r} is not a feature of {type(model).__name__}; "
                       f"available: {sorted(features)}")
    return {name: features[name] for name in layers}

  features, pullback = jax.vjp(tapped, images)
  fields = {}
  for name in layers:
    h, w = features[name].shape[1:3]
    row, col = positions.get(name) or (h // 2, w // 2)
    if not (0 <= row < h and 0 <= col < w):
      raise ValueError(f"position {(row, col)} is outside the {h}×{w} map of {name!r}")
    cotangent = {k: jnp.zeros_like(f) for k, f in features.items()}
    cotangent[name] = cotangent[name].at[:, row, col, :].set(1.0)
    fields[name] = jnp.abs(pullback(cotangent)[0]).sum(axis=-1)
  return fields


def support(erf) -> tuple[int, int]:
  """Height and width of the bounding box of the non-zero entries (H×W map)."""
  rows = jnp.flatnonzero(erf.any(axis=1))
  cols = jnp.flatnonzero(erf.any(axis=0))
  if rows.size == 0:
    return 0, 0
  return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
