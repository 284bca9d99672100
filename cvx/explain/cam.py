"""Class activation maps: CAM and Grad-CAM for any model that taps features.

Shapes: images N×H×W×C (as the model takes them), feature maps N×h×w×K, maps
N×h×w float32. ``target`` is one class index per example (the prediction by
default), so each map explains its own example — never a batch-wide maximum.
Binary models (one logit, sigmoid) follow seed 000's rule: when p ≥ 0.5 the
gradients of the logit are used as they are, otherwise negated, so the map
shows evidence for the predicted class.
"""
import jax
import jax.numpy as jnp



def feature_and_gradient(model, variables, images, layer: str, target=None):
  """(A, ∂s/∂A, logits): the tapped feature ``layer`` (N×h×w×K), the gradient
  of each example's target score with respect to it, and the logits.

  The score is the target logit (multiclass) or the signed logit (binary).
  """
  (_, features), perturbations = model.apply(variables, images, train=False,
                                             mutable=["perturbations"])
  if layer not in perturbations["perturbations"]:
    raise ValueError(f"layer {layer!r} is not a tapped feature of "
                     f"{type(model).__name__}; available: "
                     f"{sorted(perturbations['perturbations'])}")

  def score(perturb):
    logits, _ = model.apply({**variables, "perturbations": perturb}, images,
                            train=False)
    return target_scores(logits, target).sum(), logits

  grads, logits = jax.grad(score, has_aux=True)(perturbations["perturbations"])
  return features[layer], grads[layer], logits


def target_scores(logits, target):
  """Each example's score: its target logit, or for a binary model (one
  logit) the logit signed towards the predicted class."""
  if logits.shape[-1] == 1:  # Binary: the logit, signed towards the prediction.
    z = logits[:, 0]
    return jnp.where(z >= 0, z, -z)  # sigmoid(z) ≥ 0.5 ⇔ z ≥ 0
  if target is None:
    target = logits.argmax(-1)
  return jnp.take_along_axis(logits, jnp.asarray(target)[:, None], axis=-1)[:, 0]


def grad_cam(model, variables, images, layer: str = "last_conv", target=None,
             relu: bool = True):
  """Grad-CAM (Selvaraju et al.): ReLU(Σₖ αₖ Aₖ), αₖ = mean over h×w of ∂s/∂Aₖ.

  Returns un-normalized maps N×h×w (see :func:`normalize` and :func:`upsample`).
  """
  a, grads, _ = feature_and_gradient(model, variables, images, layer, target)
  alpha = grads.mean(axis=(1, 2))
  maps = jnp.einsum("nhwk,nk->nhw", a, alpha)
  return jax.nn.relu(maps) if relu else maps


def grad_cam_plus_plus(model, variables, images, layer: str = "last_conv",
                       target=None):
  """Grad-CAM++ (Chattopadhay et al., 2018), with the exponential-score
  approximation of the higher derivatives used by its reference code:

  aᵢⱼₖ = g² / (2g² + Σᵢⱼ Aₖ · g³),  wₖ = Σᵢⱼ aᵢⱼₖ ReLU(gᵢⱼₖ),  map = ReLU(Σₖ wₖ Aₖ).
  """
  a, g, _ = feature_and_gradient(model, variables, images, layer, target)
  sum_a = a.sum(axis=(1, 2), keepdims=True)
  denominator = 2 * g ** 2 + sum_a * g ** 3
  alpha = jnp.where(g != 0, g ** 2 / jnp.where(denominator != 0, denominator, 1.0), 0.0)
  weights = (alpha * jax.nn.relu(g)).sum(axis=(1, 2))
  return jax.nn.relu(jnp.einsum("nhwk,nk->nhw", a, weights))


def cam(feature_map, head_kernel, target):
  """CAM (Zhou et al.) for GAP → Dense models: Σₖ w[k, target] Aₖ.

  ``feature_map`` N×h×w×K is the map that is globally average-pooled,
  ``head_kernel`` K×classes the Dense kernel after the pooling.
  """
  weights = jnp.asarray(head_kernel)[:, jnp.asarray(target)].T  # N×K
  return jnp.einsum("nhwk,nk->nhw", feature_map, weights)


def normalize(maps, eps: float = 1e-8):
  """Each map scaled to [0, 1] by its own min and max."""
  lo = maps.min(axis=(1, 2), keepdims=True)
  hi = maps.max(axis=(1, 2), keepdims=True)
  return (maps - lo) / jnp.maximum(hi - lo, eps)


def upsample(maps, size: tuple[int, int]):
  """N×h×w maps → N×H×W, bilinear (to overlay on the input)."""
  return jax.image.resize(maps, (maps.shape[0], *size), "bilinear")
