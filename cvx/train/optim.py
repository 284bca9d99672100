"""Optimizers, learning-rate schedules and weight penalties from the config.

Schedules are built in steps; epoch-valued config fields are converted with
``steps_per_epoch``. Weight decay and the L1/L2 penalties apply to weights
(leaves named ``kernel``), never to biases or BatchNorm parameters. A
fine-tuning :class:`cvx.transfer.freeze.Plan` zeroes the updates of frozen
leaves (they get no optimizer state) and multiplies the others by their
learning-rate scale.
"""
import jax
import jax.numpy as jnp
import ml_collections
import optax

from cvx.transfer import freeze

SCHEDULES = ("constant", "piecewise", "exponential", "cosine", "warmup_cosine",
             "onecycle")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")
_FLOAT32_MAX = float(jnp.finfo(jnp.float32).max)


def make_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int,
                  total_steps: int) -> optax.Schedule:
  """``config.schedule`` → a function of the step."""
  s, lr = config.schedule, config.optimizer.learning_rate
  if not 0 <= lr <= _FLOAT32_MAX:  # also False for NaN
    raise ValueError(f"optimizer.learning_rate must be ≥ 0 and finite in float32 "
                     f"(≤ {_FLOAT32_MAX:.4g}), got {lr}")
  warmup = int(round(s.warmup_epochs * steps_per_epoch))
  if warmup >= total_steps and s.name == "warmup_cosine":
    raise ValueError(f"schedule.warmup_epochs={s.warmup_epochs} ({warmup} steps) "
                     f"must be shorter than the {total_steps} training steps")
  if s.name == "constant":
    return optax.constant_schedule(lr)
  if s.name == "piecewise":
    if len(s.boundaries_epochs) != len(s.scales):
      raise ValueError(f"schedule.boundaries_epochs {s.boundaries_epochs} and "
                       f"schedule.scales {s.scales} must have equal lengths")
    bounds = {int(round(b * steps_per_epoch)): float(f)
              for b, f in zip(s.boundaries_epochs, s.scales)}
    return optax.piecewise_constant_schedule(lr, bounds)
  if s.name == "exponential":
    return optax.exponential_decay(
        lr, transition_steps=max(1, int(round(s.decay_epochs * steps_per_epoch))),
        decay_rate=s.decay_rate)
  if s.name == "cosine":
    return optax.cosine_decay_schedule(lr, total_steps, alpha=s.end_value / lr if lr else 0.0)
  if s.name == "warmup_cosine":
    return optax.warmup_cosine_decay_schedule(
        0.0, lr, max(warmup, 1), total_steps, end_value=s.end_value)
  if s.name == "onecycle":
    return optax.cosine_onecycle_schedule(total_steps, lr)
  raise ValueError(f"unknown schedule {s.name!r}; allowed: {SCHEDULES}")


def make_optimizer(config: ml_collections.ConfigDict, schedule: optax.Schedule,
                   plan: freeze.Plan | None = None) -> optax.GradientTransformation:
  """``config.optimizer`` (+ gradient clipping, + ``plan``) → an optax
  transformation."""
  o = config.optimizer
  if o.name in ("sgd", "momentum", "nesterov"):
    tx = optax.sgd(schedule, momentum=None if o.name == "sgd" else o.momentum,
                   nesterov=o.name == "nesterov")
    if o.weight_decay:  # Coupled (L2-style) decay, as in classic SGD recipes.
      tx = optax.chain(optax.add_decayed_weights(o.weight_decay, mask=weight_mask), tx)
  elif o.name == "adam":
    tx = optax.adam(schedule, b1=o.b1, b2=o.b2, eps=o.eps)
  elif o.name == "adamw":
    tx = optax.adamw(schedule, b1=o.b1, b2=o.b2, eps=o.eps,
                     weight_decay=o.weight_decay, mask=weight_mask)
  elif o.name == "rmsprop":
    tx = optax.rmsprop(schedule, decay=o.decay, eps=o.eps, momentum=o.momentum)
  else:
    raise ValueError(f"unknown optimizer {o.name!r}; allowed: {OPTIMIZERS}")
  if config.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), tx)
  return tx if plan is None else apply_plan(tx, plan)


def apply_plan(tx: optax.GradientTransformation,
               plan: freeze.Plan) -> optax.GradientTransformation:
  """``tx`` on the trainable leaves, zero on the frozen ones, then each update
  × its leaf's lr scale. Scaling the final update equals scaling the learning
  rate for every optimizer here (their updates are linear in it), weight decay
  included. Gradient clipping sees only the trainable leaves."""
  if plan.frozen:
    tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()},
                               plan.labels)
  if plan.scaled:
    tx = optax.chain(tx, optax.stateless(
        lambda updates, params: jax.tree.map(jnp.multiply, updates,
                                             plan.scales(updates))))
  return tx


def is_weight(path) -> bool:
  """True for multiplicative weights (conv/dense kernels), not biases or BN."""
  return getattr(path[-1], "key", None) == "kernel"


def weight_mask(params):
  return jax.tree_util.tree_map_with_path(lambda p, _: is_weight(p), params)


def penalty(params, l1: float, l2: float) -> jax.Array:
  """``l1·Σ|w| + l2/2·Σw²`` over weights (elastic net when both are set)."""
  total = jnp.zeros(())
  for path, w in jax.tree_util.tree_leaves_with_path(params):
    if is_weight(path):
      if l1:
        total += l1 * jnp.abs(w).sum()
      if l2:
        total += 0.5 * l2 * jnp.square(w).sum()
  return total
