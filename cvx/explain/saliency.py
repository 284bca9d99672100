"""Input-gradient saliency and the deletion/insertion faithfulness scores.

Saliency (Simonyan et al., 2014): max over channels of |∂s/∂x| for each
example's target score (seed 000's rule for binary models, as in Grad-CAM).
Deletion/insertion (Petsiuk et al., 2018): remove (or add back) pixels in
order of decreasing importance and track the target probability; the area
under that curve is low for deletion and high for insertion when the map
points at what the model uses.
"""
import jax
import jax.numpy as jnp

from cvx.explain.cam import target_scores


def saliency(model, variables, images, target=None):
  """N×H×W saliency maps for N×H×W×C inputs."""

  def total(x):
    logits, _ = model.apply(variables, x, train=False)
    return target_scores(logits, target).sum()

  return jnp.abs(jax.grad(total)(images)).max(axis=-1)


def _probability(logits, target):
  if logits.shape[-1] == 1:
    return jax.nn.sigmoid(logits[:, 0])
  return jnp.take_along_axis(jax.nn.softmax(logits), target[:, None], axis=-1)[:, 0]


def deletion_insertion(model, variables, images, maps, target=None,
                       steps: int = 20, baseline: float = 0.0):
  """(deletion AUC, insertion AUC), each N, and the curves N×(steps+1).

  At step t the ``t/steps`` most important pixels (by ``maps``, N×H×W) are
  set to ``baseline`` (deletion) or are the only ones kept (insertion). The
  AUC is the trapezoid rule over the fraction of pixels in [0, 1].
  """
  n, h, w = maps.shape
  if images.shape[:3] != (n, h, w):
    raise ValueError(f"maps {maps.shape} must match images {images.shape[:3]}")
  logits, _ = model.apply(variables, images, train=False)
  target = logits.argmax(-1) if target is None else jnp.asarray(target)
  rank = jnp.argsort(jnp.argsort(-maps.reshape(n, -1), axis=1), axis=1).reshape(n, h, w)
  fractions = jnp.linspace(0.0, 1.0, steps + 1)

  def curve(keep_important: bool):
    def at(fraction):
      chosen = (rank < jnp.round(fraction * h * w))[..., None]
      keep = chosen if keep_important else ~chosen
      x = jnp.where(keep, images, baseline)
      out, _ = model.apply(variables, x, train=False)
      return _probability(out, target)
    return jax.vmap(at)(fractions).T  # N×(steps+1)

  deletion, insertion = curve(False), curve(True)
  auc = lambda c: jnp.trapezoid(c, fractions, axis=1)
  return auc(deletion), auc(insertion), (deletion, insertion)
