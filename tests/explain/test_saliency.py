"""Saliency of a linear model is its weights; deletion/insertion rank a map that
points at the evidence above one that points away from it."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvx import models
from cvx.explain import saliency as sal

SHAPE = (2, 8, 8, 3)


def _linear(num_classes, kernel, bias):
  model = models.create("mlp", num_classes=num_classes, hidden=())
  params = {"head": {"kernel": jnp.asarray(kernel, jnp.float32),
                     "bias": jnp.asarray(bias, jnp.float32)}}
  return model, {"params": params}


def test_saliency_of_a_linear_model_is_the_target_weights():
  rng = np.random.default_rng(0)
  kernel = rng.normal(size=(8 * 8 * 3, 5))
  model, variables = _linear(5, kernel, np.zeros(5))
  images = jnp.asarray(rng.random(SHAPE), jnp.float32)
  target = jnp.array([1, 4])
  maps = sal.saliency(model, variables, images, target)
  for i, t in enumerate([1, 4]):
    want = np.abs(kernel[:, t]).reshape(8, 8, 3).max(-1)
    np.testing.assert_allclose(maps[i], want, rtol=1e-6)


def test_deletion_and_insertion_reward_the_true_evidence():
  # Class 0's logit is 2·(sum of the top-left 4×4 quadrant) − 24: only there.
  quadrant = np.zeros((8, 8, 3))
  quadrant[:4, :4] = 1
  kernel = np.stack([2 * quadrant.ravel(), np.zeros(192)], axis=1)
  model, variables = _linear(2, kernel, [-24.0, 0.0])
  images = jnp.asarray(np.random.default_rng(1).uniform(0.5, 1, SHAPE), jnp.float32)
  noise = np.random.default_rng(2).random((2, 8, 8)) * 1e-3
  right = jnp.asarray(quadrant[..., 0] + noise)
  wrong = jnp.asarray(1 - quadrant[..., 0] + noise)
  target = jnp.zeros(2, int)
  del_right, ins_right, (curve, _) = sal.deletion_insertion(model, variables, images,
                                                            right, target)
  del_wrong, ins_wrong, _ = sal.deletion_insertion(model, variables, images, wrong, target)
  assert np.all(del_right < del_wrong - 0.2) and np.all(ins_right > ins_wrong + 0.2)
  assert curve.shape == (2, 21)
  np.testing.assert_allclose(curve[:, -1], jax.nn.softmax(jnp.array([-24.0, 0.0]))[0],
                             rtol=1e-5)  # All pixels at the baseline 0.


def test_maps_must_match_images():
  model, variables = _linear(2, np.zeros((192, 2)), np.zeros(2))
  with pytest.raises(ValueError, match=r"maps \(2, 4, 4\) must match images"):
    sal.deletion_insertion(model, variables, jnp.zeros(SHAPE), jnp.zeros((2, 4, 4)))
