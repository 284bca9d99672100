"""Schedules, optimizers and penalties against their textbook formulas."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cvx import config_lib
from cvx.train import optim


def _config(**schedule):
  c = config_lib.base_config()
  c.optimizer.learning_rate = 0.1
  c.schedule.update(**schedule)
  return c


def test_piecewise_boundaries_are_in_epochs():
  fn = optim.make_schedule(_config(name="piecewise", boundaries_epochs=(2, 3),
                                   scales=(0.1, 0.1)), steps_per_epoch=10,
                           total_steps=50)
  assert [float(fn(s)) for s in (0, 19, 20, 29, 30)] == pytest.approx(
      [0.1, 0.1, 0.01, 0.01, 0.001])


@pytest.mark.parametrize("lr", [-0.1, 1e39, math.inf, math.nan])
def test_learning_rate_must_be_nonnegative_and_finite_in_float32(lr):
  c = _config(name="constant")
  c.optimizer.learning_rate = lr
  with pytest.raises(ValueError, match="optimizer.learning_rate must be ≥ 0 and finite"):
    optim.make_schedule(c, 10, 50)


@pytest.mark.parametrize("name", optim.SCHEDULES)
def test_zero_learning_rate_gives_zero_steps_under_every_schedule(name):
  c = _config(name=name, warmup_epochs=1.0, end_value=0.0)
  c.optimizer.learning_rate = 0.0  # allowed: e.g. to evaluate a frozen model
  fn = optim.make_schedule(c, 10, 50)
  assert [float(fn(s)) for s in (0, 25, 49)] == [0.0, 0.0, 0.0]


def test_cosine_and_warmup_cosine():
  cos = optim.make_schedule(_config(name="cosine"), 10, 100)
  assert float(cos(50)) == pytest.approx(0.05)
  assert float(cos(100)) == pytest.approx(0.0, abs=1e-9)
  warm = optim.make_schedule(_config(name="warmup_cosine", warmup_epochs=1.0), 10, 110)
  assert float(warm(5)) == pytest.approx(0.05)  # Linear warm-up over 10 steps.
  assert float(warm(10)) == pytest.approx(0.1)
  assert float(warm(60)) == pytest.approx(0.05)  # Half-way through the cosine.


def test_exponential_and_onecycle():
  exp = optim.make_schedule(_config(name="exponential", decay_rate=0.5,
                                    decay_epochs=2.0), 10, 100)
  assert float(exp(20)) == pytest.approx(0.05)
  assert float(exp(30)) == pytest.approx(0.1 * 0.5 ** 1.5)
  one = optim.make_schedule(_config(name="onecycle"), 10, 100)
  peak = max(float(one(s)) for s in range(100))
  assert peak == pytest.approx(0.1, rel=1e-3) and float(one(0)) < 0.01


def test_unknown_names_list_the_allowed_ones():
  with pytest.raises(ValueError, match="unknown schedule 'cosin'.*warmup_cosine"):
    optim.make_schedule(_config(name="cosin"), 10, 100)
  c = _config()
  c.optimizer.name = "adamm"
  with pytest.raises(ValueError, match="unknown optimizer 'adamm'.*rmsprop"):
    optim.make_optimizer(c, 0.1)


PARAMS = {"conv": {"kernel": jnp.array([[1.0, -2.0]]), "bias": jnp.array([3.0])},
          "bn": {"scale": jnp.array([4.0])}}
GRADS = jax.tree.map(lambda p: 0.5 * jnp.ones_like(p), PARAMS)


def _one_step(name, **kw):
  c = _config()
  c.optimizer.update(name=name, **kw)
  tx = optim.make_optimizer(c, 0.1)
  updates, _ = tx.update(GRADS, tx.init(PARAMS), PARAMS)
  return optax.apply_updates(PARAMS, updates)


def test_sgd_with_weight_decay_decays_kernels_only():
  new = _one_step("sgd", weight_decay=0.01)
  np.testing.assert_allclose(new["conv"]["kernel"],
                             [[1 - 0.1 * (0.5 + 0.01), -2 - 0.1 * (0.5 - 0.02)]])
  np.testing.assert_allclose(new["conv"]["bias"], [3 - 0.05])
  np.testing.assert_allclose(new["bn"]["scale"], [4 - 0.05])


def test_adam_first_step_moves_each_weight_by_the_learning_rate():
  new = _one_step("adam")
  np.testing.assert_allclose(new["conv"]["kernel"], [[0.9, -2.1]], rtol=1e-6)


def test_gradient_clipping_bounds_the_global_norm():
  c = _config()
  c.grad_clip_norm = 0.1
  tx = optim.make_optimizer(c, 1.0)
  updates, _ = tx.update(GRADS, tx.init(PARAMS), PARAMS)
  norm = math.sqrt(sum(float(jnp.sum(u ** 2)) for u in jax.tree.leaves(updates)))
  assert norm == pytest.approx(0.1, rel=1e-5)


def test_penalties_cover_kernels_only():
  assert float(optim.penalty(PARAMS, l1=0.1, l2=0.0)) == pytest.approx(0.3)
  assert float(optim.penalty(PARAMS, l1=0.0, l2=0.2)) == pytest.approx(0.5)
  assert float(optim.penalty(PARAMS, l1=0.1, l2=0.2)) == pytest.approx(0.8)


def test_warmup_longer_than_training_is_an_error():
  with pytest.raises(ValueError, match=r"warmup_epochs=3.0 \(30 steps\) must be shorter"):
    optim.make_schedule(_config(name="warmup_cosine", warmup_epochs=3.0), 10, 20)
