"""Train and eval step functions (pure; compiled by :mod:`cvx.train.parallel`).

The step key is ``fold_in(state.rng, state.step)``, so augmentation and dropout
depend only on the step: a resumed run repeats an uninterrupted one exactly.
With ``axis_name`` (the pmap path) gradients, metrics and BatchNorm statistics
are averaged over the named axis; under jit the batch is already global.
BatchNorm modules listed in ``frozen`` run in inference mode during training
(:func:`cvx.transfer.freeze.frozen_batch_norm`), so their statistics stay put.
"""
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections

from cvx.data import preprocess
from cvx.train import optim
from cvx.train.state import TrainState
from cvx.transfer import freeze


def _variables(state: TrainState, params):
  variables = {"params": params}
  if state.batch_stats:
    variables["batch_stats"] = state.batch_stats
  return variables


def make_train_step(model, task, tx, config: ml_collections.ConfigDict,
                    augment: Callable | None, axis_name: str | None = None,
                    frozen: frozenset = frozenset()):
  """Returns ``step(state, batch) -> (state, metrics)``; ``frozen`` are the
  module paths of a :class:`cvx.transfer.freeze.Plan`."""
  data, reg = config.data, config.regularization

  def step(state: TrainState, batch):
    task.check_batch(batch)
    aug_key, dropout_key = jax.random.split(jax.random.fold_in(state.rng, state.step))
    x = preprocess.to_unit(batch["image"], data.image_size)
    if augment is not None:
      first = 0 if axis_name is None else jax.lax.axis_index(axis_name) * x.shape[0]
      x = augment(aug_key, x, first)
    x = preprocess.normalize(x, data.normalize, data.mean, data.std, data.channel_order)
    if axis_name is not None:
      dropout_key = jax.random.fold_in(dropout_key, jax.lax.axis_index(axis_name))

    def loss_fn(params):
      with freeze.frozen_batch_norm(frozen):
        (logits, features), updates = model.apply(
            _variables(state, params), x, train=True,
            rngs={"dropout": dropout_key}, mutable=["batch_stats"])
      loss, metrics = task.loss(logits, features, batch)
      loss = loss + optim.penalty(params, reg.l1, reg.l2)
      return loss, (metrics, updates)

    grads, (metrics, updates) = jax.grad(loss_fn, has_aux=True)(state.params)
    if axis_name is not None:
      grads, metrics = jax.lax.pmean((grads, metrics), axis_name)
    param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = jax.tree.map(jnp.add, state.params, param_updates)
    new_state = state.replace(step=state.step + 1, params=params,
                              batch_stats=updates.get("batch_stats", {}),
                              opt_state=opt_state)
    return new_state, metrics

  return step


def eval_inputs(images, config: ml_collections.ConfigDict):
  """uint8 N×H×W×C → the model's input, preprocessed as in training without
  augmentation."""
  data = config.data
  return preprocess.normalize(preprocess.to_unit(images, data.image_size),
                              data.normalize, data.mean, data.std, data.channel_order)


def inference_variables(state: TrainState) -> dict:
  """The variables ``model.apply(..., train=False)`` needs."""
  return _variables(state, state.params)


def make_predict(model, config: ml_collections.ConfigDict):
  """Returns ``predict(state, images) -> (logits, features)`` in inference mode
  for uint8 N×H×W×C images."""

  def predict(state: TrainState, images):
    return model.apply(inference_variables(state), eval_inputs(images, config),
                       train=False)

  return predict


def make_eval_step(model, task, config: ml_collections.ConfigDict,
                   axis_name: str | None = None):
  """Returns ``step(state, batch) -> sums`` (masked; added up by the loop)."""
  predict = make_predict(model, config)

  def step(state: TrainState, batch):
    task.check_batch(batch)
    logits, _ = predict(state, batch["image"])
    sums = task.eval_sums(logits, batch)
    return sums if axis_name is None else jax.lax.psum(sums, axis_name)

  return step


def make_outputs_step(model, config: ml_collections.ConfigDict):
  """Returns ``step(state, batch) -> {logits, label, mask}`` per example, for
  reports that need every score (ROC curves)."""
  predict = make_predict(model, config)

  def step(state: TrainState, batch):
    logits, _ = predict(state, batch["image"])
    return {"logits": logits, "label": batch["label"], "mask": batch["mask"]}

  return step
