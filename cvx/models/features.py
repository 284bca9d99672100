"""Named intermediate features that explanations can differentiate.

Models record each named feature with :func:`tap`, which also routes it through
``Module.perturb``: a no-op in ordinary ``apply`` calls, but when a
``perturbations`` collection is passed, the gradient with respect to that
collection is the gradient with respect to the feature (Grad-CAM, saliency)
— no hooks, no second model.
"""
import flax.linen as nn
import jax


def tap(module: nn.Module, features: dict, name: str, x: jax.Array) -> jax.Array:
  """Records ``x`` as ``features[name]`` and returns it (perturbable)."""
  x = module.perturb(name, x)
  features[name] = x
  return x
