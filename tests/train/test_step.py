"""The train step: mixed precision keeps float32 params, BatchNorm state moves."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvx import config_lib, models, tasks
from cvx.train import optim, step as step_lib
from cvx.train import state as state_lib


def _setup(**model_kwargs):
  config = config_lib.base_config()
  config.optimizer.update(name="momentum", learning_rate=0.05)
  model = models.create("lenet5", num_classes=10, **model_kwargs)
  tx = optim.make_optimizer(config, 0.05)
  state = state_lib.create(model, tx, (28, 28, 1), seed=0)
  task = tasks.create("classification", num_classes=10)
  step = jax.jit(step_lib.make_train_step(model, task, tx, config, augment=None))
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (16, 28, 28, 1), dtype=np.uint8),
           "label": rng.integers(0, 10, 16).astype(np.int32)}
  return model, state, step, batch


def test_bfloat16_compute_keeps_float32_params_and_logits():
  model, state, step, batch = _setup(dtype=jnp.bfloat16, batch_norm=True)
  _, f32_state, f32_step, _ = _setup(batch_norm=True)
  logits, features = model.apply({"params": state.params,
                                  "batch_stats": state.batch_stats},
                                 batch["image"] / 255.0, train=False)
  assert logits.dtype == jnp.float32 and features["stage1"].dtype == jnp.bfloat16
  new, metrics = step(state, batch)
  _, f32_metrics = f32_step(f32_state, batch)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(new.params))
  assert float(metrics["loss"]) == pytest.approx(float(f32_metrics["loss"]), rel=2e-2)


def test_steps_reduce_the_loss_and_update_batch_stats():
  _, state, step, batch = _setup(batch_norm=True)
  losses = []
  for _ in range(20):
    new, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), new.batch_stats,
                         state.batch_stats)
    assert all(jax.tree.leaves(moved))
    state = new
  assert losses[-1] < 0.5 * losses[0]
  assert int(state.step) == 20
