"""Guided backpropagation (Springenberg et al., 2015) and Guided Grad-CAM.

Guided backpropagation is the input gradient of each example's target score
with every ReLU's backward pass changed to let through only positive
gradients at positive inputs: g_in = g_out · [x > 0] · [g_out > 0]. Guided
Grad-CAM (Selvaraju et al.) multiplies it by the Grad-CAM map upsampled to
the input.

How the ReLUs are swapped: :func:`guide_relus` traces a function to a jaxpr
and evaluates that jaxpr again, replacing each call of ``jax.nn.relu`` (which
``flax.linen.relu`` is) by :func:`guided_relu`, a ``jax.custom_vjp`` with the
same forward pass. Working on the traced program rather than patching
``nn.relu`` catches every ReLU however a model reaches it (``nn.relu(x)``,
``act=nn.relu`` defaults, ``functools.partial``), needs no change to the
models and leaves no global state behind. Other activations (ReLU6, SiLU,
tanh) keep their ordinary gradient; ReLUs inside ``jit`` are found, ReLUs
inside other control flow (``scan``, ``cond``, ``remat``) raise ValueError.
"""
import functools

import jax
import jax.extend.core as jex
import jax.numpy as jnp

from cvx.explain import cam
from cvx.explain.cam import target_scores

_PRIMITIVES = jex.primitives


@jax.custom_vjp
def guided_relu(x):
  """max(x, 0) whose gradient is g · [x > 0] · [g > 0]."""
  return jnp.maximum(x, 0)


def _guided_relu_fwd(x):
  return guided_relu(x), x


def _guided_relu_bwd(x, g):
  return (jnp.where((x > 0) & (g > 0), g, jnp.zeros_like(g)),)


guided_relu.defvjp(_guided_relu_fwd, _guided_relu_bwd)


def _is_relu(eqn) -> bool:
  """Whether ``eqn`` is a call of ``jax.nn.relu`` (a ``custom_jvp`` function)."""
  if eqn.primitive is not _PRIMITIVES.custom_jvp_call_p:
    return False
  info = eqn.params["call_jaxpr"].jaxpr.debug_info
  return info is not None and info.func_name == "relu"


def _has_relu(jaxpr) -> bool:
  return any(_is_relu(eqn) or _has_nested_relu(eqn) for eqn in jaxpr.eqns)


def _has_nested_relu(eqn) -> bool:
  return any(_has_relu(sub) for sub in jex.jaxprs_in_params(eqn.params))


def _evaluate(jaxpr, consts, args):
  """Evaluates ``jaxpr`` with guided ReLUs, inlining ``jit`` calls."""
  env = {}

  def read(var):
    return var.val if isinstance(var, jex.Literal) else env[var]

  env.update(zip(jaxpr.constvars, consts))
  env.update(zip(jaxpr.invars, args))
  for eqn in jaxpr.eqns:
    inputs = [read(v) for v in eqn.invars]
    if _is_relu(eqn):
      outputs = [guided_relu(*inputs)]
    elif eqn.primitive is _PRIMITIVES.jit_p:
      inner = eqn.params["jaxpr"]
      outputs = _evaluate(inner.jaxpr, inner.consts, inputs)
    else:
      if _has_nested_relu(eqn):
        raise ValueError(f"a ReLU inside {eqn.primitive.name!r} cannot be guided; "
                         "only ReLUs at top level or inside jit are")
      with eqn.ctx.manager:
        outputs = eqn.primitive.bind(*inputs, **eqn.primitive.get_bind_params(eqn.params))
      outputs = outputs if eqn.primitive.multiple_results else [outputs]
    env.update(zip(eqn.outvars, outputs))
  return [read(v) for v in jaxpr.outvars]


def guide_relus(fn):
  """``fn`` with the same outputs, but every ``jax.nn.relu`` it calls
  backpropagates as :func:`guided_relu`. Works under jit, grad and vmap."""

  @functools.wraps(fn)
  def guided(*args):
    closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args)
    outputs = _evaluate(closed.jaxpr, closed.consts, jax.tree.leaves(args))
    return jax.tree.unflatten(jax.tree.structure(shapes), outputs)

  return guided


def guided_backprop(model, variables, images, target=None):
  """N×H×W×C guided gradients of each example's target score (its target
  logit, or seed 000's signed logit for a binary model) w.r.t. N×H×W×C images."""

  def total(x):
    logits, _ = model.apply(variables, x, train=False)
    return target_scores(logits, target).sum()

  return jax.grad(guide_relus(total))(images)


def guided_grad_cam(model, variables, images, layer: str = "last_conv",
                    target=None):
  """N×H×W×C: guided backprop × the Grad-CAM map of ``layer`` upsampled
  (bilinear) to H×W, both un-normalized."""
  maps = cam.grad_cam(model, variables, images, layer, target)
  heat = cam.upsample(maps, images.shape[1:3])
  return guided_backprop(model, variables, images, target) * heat[..., None]
