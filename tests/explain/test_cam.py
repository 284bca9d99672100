"""Grad-CAM against CAM (its closed form for GAP → Dense networks), per-example
targets, seed 000's binary rule, and jit."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvx import models
from cvx.explain import cam
from cvx.models.features import tap


class GapNet(nn.Module):
  """conv → ReLU → conv → ReLU ("last_conv") → GAP → Dense: CAM's setting."""
  num_classes: int

  @nn.compact
  def __call__(self, x, train=False):
    features = {}
    x = nn.relu(nn.Conv(8, (3, 3))(x))
    x = tap(self, features, "last_conv", nn.relu(nn.Conv(6, (3, 3))(x)))
    logits = nn.Dense(self.num_classes, name="head")(x.mean(axis=(1, 2)))
    return logits, features


IMAGES = jax.random.uniform(jax.random.PRNGKey(1), (5, 12, 12, 3))


def _init(model):
  return {"params": model.init(jax.random.PRNGKey(0), IMAGES)["params"]}


def test_grad_cam_is_cam_over_hw_for_gap_dense():
  model = GapNet(num_classes=4)
  variables = _init(model)
  target = jnp.array([0, 3, 1, 1, 2])
  maps = cam.grad_cam(model, variables, IMAGES, target=target, relu=False)
  (_, features) = model.apply(variables, IMAGES)
  want = cam.cam(features["last_conv"], variables["params"]["head"]["kernel"], target)
  np.testing.assert_allclose(maps, want / (12 * 12), rtol=1e-5, atol=1e-7)


def test_each_example_is_explained_for_its_own_target():
  model = models.create("lenet5", num_classes=10)
  images = jax.random.uniform(jax.random.PRNGKey(2), (4, 28, 28, 1))
  variables = _init_lenet(model, images)
  target = jnp.array([7, 2, 2, 9])
  batched = cam.grad_cam(model, variables, images, target=target)
  for i in range(4):
    single = cam.grad_cam(model, variables, images[i:i + 1], target=target[i:i + 1])
    np.testing.assert_allclose(batched[i], single[0], rtol=1e-5, atol=1e-8)
  default = cam.grad_cam(model, variables, images)  # Each example's prediction.
  logits, _ = model.apply(variables, images)
  np.testing.assert_allclose(
      default, cam.grad_cam(model, variables, images, target=logits.argmax(-1)))


def _init_lenet(model, images):
  return {"params": model.init(jax.random.PRNGKey(0), images)["params"]}


def test_binary_rule_negates_gradients_below_one_half():
  model = GapNet(num_classes=1)
  variables = _init(model)
  logits, _ = model.apply(variables, IMAGES)
  # Centre the bias so that the batch holds both predictions.
  variables["params"]["head"]["bias"] -= jnp.mean(logits[:, 0])
  logits, features = model.apply(variables, IMAGES)
  z = np.asarray(logits[:, 0])
  assert (z >= 0).any() and (z < 0).any(), "want both predictions in the batch"
  maps = cam.grad_cam(model, variables, IMAGES, relu=False)
  closed = cam.cam(features["last_conv"], variables["params"]["head"]["kernel"],
                   jnp.zeros(5, int)) / 144
  sign = np.where(z >= 0, 1.0, -1.0)[:, None, None]
  np.testing.assert_allclose(maps, sign * closed, rtol=1e-5,
                             atol=1e-7)


def test_jit_matches_eager_and_maps_normalize_and_upsample():
  model = models.create("lenet5", num_classes=10)
  images = jax.random.uniform(jax.random.PRNGKey(3), (2, 28, 28, 1))
  variables = _init_lenet(model, images)
  eager = cam.grad_cam(model, variables, images, layer="stage1")
  jitted = jax.jit(lambda v, x: cam.grad_cam(model, v, x, layer="stage1"))(variables, images)
  np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-8)
  maps = cam.upsample(cam.normalize(eager), (28, 28))
  assert maps.shape == (2, 28, 28)
  assert float(maps.min()) >= -1e-6 and float(maps.max()) <= 1 + 1e-6


def test_unknown_layer_lists_the_tapped_ones():
  model = models.create("lenet5", num_classes=10)
  images = jnp.zeros((1, 28, 28, 1))
  with pytest.raises(ValueError, match=r"layer 'conv9'.*'last_conv'.*'stage1'"):
    cam.grad_cam(model, _init_lenet(model, images), images, layer="conv9")


def test_grad_cam_plus_plus_closed_form_for_gap_dense():
  # With GAP → Dense the gradient is cₖ = w[k, t]/(h·w) everywhere, so the
  # weights reduce to wₖ = h·w·cₖ/(2 + Sₖ·cₖ) for cₖ > 0 (Sₖ = Σᵢⱼ Aₖ), else 0.
  model = GapNet(num_classes=4)
  variables = _init(model)
  target = jnp.array([0, 3, 1, 1, 2])
  maps = cam.grad_cam_plus_plus(model, variables, IMAGES, target=target)
  _, features = model.apply(variables, IMAGES)
  a = np.asarray(features["last_conv"])
  c = np.asarray(variables["params"]["head"]["kernel"])[:, np.asarray(target)].T / 144
  s = a.sum(axis=(1, 2))
  weights = np.where(c > 0, 144 * c / (2 + s * c), 0.0)
  want = np.maximum(np.einsum("nhwk,nk->nhw", a, weights), 0)
  np.testing.assert_allclose(maps, want, rtol=1e-4, atol=1e-7)


# Zoo models (BatchNorm in inference mode): any tapped feature, a target per
# example, under jit; their heads are GAP → Dense, so Grad-CAM of last_conv is CAM.
ZOO = [("resnet18", {"stem": "cifar"}, 32, "stage3"),
       ("mobilenet_v1", {"alpha": 0.25}, 64, "block11")]


@pytest.mark.parametrize("name, kwargs, size, layer", ZOO, ids=[z[0] for z in ZOO])
def test_zoo_models_explain_any_feature_per_example_under_jit(name, kwargs, size, layer):
  model = models.create(name, num_classes=10, **kwargs)
  images = jax.random.uniform(jax.random.PRNGKey(4), (3, size, size, 3))
  variables = jax.jit(model.init)(jax.random.PRNGKey(5), images)
  variables = {k: variables[k] for k in ("params", "batch_stats")}

  @jax.jit  # Arguments, not constants: XLA would fold the convolutions.
  def explain(variables, images, target):
    return (cam.grad_cam(model, variables, images, layer, target),
            cam.grad_cam(model, variables, images, "last_conv", target, relu=False),
            model.apply(variables, images)[1])

  target = jnp.array([4, 0, 9])
  maps, last_maps, features = explain(variables, images, target)
  assert maps.shape == features[layer].shape[:3] and float(maps.max()) > 0
  # Changing the first example's target changes only its map.
  other, _, _ = explain(variables, images, target.at[0].set(7))
  assert not np.allclose(other[0], maps[0])
  np.testing.assert_allclose(other[1:], maps[1:], rtol=1e-5, atol=1e-7)
  # last_conv feeds GAP → Dense: Grad-CAM is CAM/(h·w).
  a = features["last_conv"]
  want = cam.cam(a, variables["params"]["head"]["kernel"], target) / (a.shape[1] * a.shape[2])
  np.testing.assert_allclose(last_maps, want, rtol=1e-4, atol=1e-6 * float(jnp.abs(want).max()))
