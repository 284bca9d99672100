"""Guided backprop against a NumPy reference, the plain gradient where there
is no ReLU, and every way a model can reach ``nn.relu``."""
import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvx import models
from cvx.explain import cam, guided

RNG = np.random.default_rng(0)
IMAGES = jnp.asarray(RNG.normal(size=(5, 3, 3, 2)), jnp.float32)
TARGET = jnp.array([0, 3, 1, 1, 2])


def _mlp(**kwargs):
  model = models.create("mlp", num_classes=4, hidden=(8, 6), **kwargs)
  return model, {"params": model.init(jax.random.PRNGKey(0), IMAGES)["params"]}


def _plain_gradient(model, variables, images, target):
  def total(x):
    return model.apply(variables, x)[0][jnp.arange(len(x)), target].sum()
  return jax.grad(total)(images)


def _numpy_guided(params, images, target):
  """Hand-written backward pass of Dense → ReLU → Dense → ReLU → Dense."""
  w = [np.asarray(params[k]["kernel"], np.float64) for k in ("dense0", "dense1", "head")]
  b = [np.asarray(params[k]["bias"], np.float64) for k in ("dense0", "dense1", "head")]
  x = np.asarray(images, np.float64).reshape(len(images), -1)
  z1 = x @ w[0] + b[0]
  z2 = np.maximum(z1, 0) @ w[1] + b[1]
  g = w[2][:, target].T  # ∂ logit_t / ∂ h2, N×6
  g = g * (z2 > 0) * (g > 0)
  g = g @ w[1].T
  g = g * (z1 > 0) * (g > 0)
  return (g @ w[0].T).reshape(images.shape)


def test_guided_backprop_matches_a_numpy_reference():
  model, variables = _mlp()
  ours = guided.guided_backprop(model, variables, IMAGES, TARGET)
  want = _numpy_guided(variables["params"], IMAGES, np.asarray(TARGET))
  np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-6)
  plain = _plain_gradient(model, variables, IMAGES, TARGET)
  assert not np.allclose(plain, want, atol=1e-3)  # The guidance matters here.


def test_without_relus_it_is_the_plain_gradient():
  model, variables = _mlp(activation=jnp.tanh)
  ours = guided.guided_backprop(model, variables, IMAGES, TARGET)
  plain = _plain_gradient(model, variables, IMAGES, TARGET)
  np.testing.assert_allclose(ours, plain, rtol=1e-6, atol=1e-7)


class ConvNet(nn.Module):
  """conv → act → conv → act ("last_conv") → GAP → Dense; ``act`` is a field,
  as in the zoo's ConvBN, so it is bound when the class is defined."""
  act: Callable = nn.relu

  @nn.compact
  def __call__(self, x, train=False):
    features = {}
    x = self.act(nn.Conv(4, (3, 3))(x))
    x = nn.Conv(6, (3, 3))(x)
    x = models.features.tap(self, features, "last_conv", jax.jit(self.act)(x))
    return nn.Dense(3, name="head")(x.mean(axis=(1, 2))), features


def test_relus_reached_through_fields_partials_and_jit_are_guided():
  images = jax.random.normal(jax.random.PRNGKey(1), (3, 8, 8, 2))
  target = jnp.array([2, 0, 1])
  model = ConvNet(act=functools.partial(nn.relu))
  variables = {"params": model.init(jax.random.PRNGKey(2), images)["params"]}
  ours = guided.guided_backprop(model, variables, images, target)
  explicit = ConvNet(act=guided.guided_relu)  # Guided by construction.
  want = _plain_gradient(explicit, variables, images, target)
  np.testing.assert_allclose(ours, want, rtol=1e-6, atol=1e-7)
  jitted = jax.jit(guided.guided_backprop, static_argnums=0)(model, variables, images,
                                                             target)
  np.testing.assert_allclose(jitted, ours, rtol=1e-5, atol=1e-7)
  for i in range(3):  # Each example for its own target.
    single = guided.guided_backprop(model, variables, images[i:i + 1], target[i:i + 1])
    np.testing.assert_allclose(single[0], ours[i], rtol=1e-5, atol=1e-7)


def test_guided_grad_cam_is_guided_backprop_times_upsampled_grad_cam():
  images = jax.random.normal(jax.random.PRNGKey(3), (2, 8, 8, 2))
  model = ConvNet()
  variables = {"params": model.init(jax.random.PRNGKey(4), images)["params"]}
  target = jnp.array([1, 2])
  product = guided.guided_grad_cam(model, variables, images, "last_conv", target)
  maps = cam.grad_cam(model, variables, images, "last_conv", target)
  heat = jax.image.resize(maps, (2, 8, 8), "bilinear")
  want = guided.guided_backprop(model, variables, images, target) * heat[..., None]
  np.testing.assert_allclose(product, want, rtol=1e-6, atol=1e-9)
  assert float(jnp.abs(product).max()) > 0


def test_relu_inside_scan_is_refused():
  def scanned(x):
    return jax.lax.scan(lambda c, _: (nn.relu(c) - 0.5, None), x, None, length=2)[0].sum()

  with pytest.raises(ValueError, match="ReLU inside 'scan' cannot be guided"):
    jax.grad(guided.guide_relus(scanned))(jnp.ones(3))
