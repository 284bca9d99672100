"""Grad-CAM, Grad-CAM++ and guided backprop against pytorch-grad-cam 1.5.7 on
LeNet-5 with the same weights in PyTorch, one target per example."""
import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.guided_backprop import GuidedBackpropReLUModel
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from cvx import models
from cvx.explain import cam, guided
from tests.explain import torch_lenet

N = 4
# Three rounds of per-example targets: each example asks for its own class.
TARGETS = np.array([[0, 3, 7, 9], [5, 5, 1, 2], [9, 0, 4, 6]])
LAYERS = {"stage1": 1, "last_conv": 4}  # cvx feature → index of the torch ReLU.


@pytest.fixture(scope="module")
def nets():
  model = models.create("lenet5", num_classes=10)
  images = jax.random.uniform(jax.random.PRNGKey(0), (N, 28, 28, 1))
  params = model.init(jax.random.PRNGKey(1), images)["params"]
  return model, {"params": params}, images


def _torch_model(variables):
  # A fresh one per use: GuidedBackpropReLUModel puts back one shared ReLU
  # instance for all four, so a hook on one of them would fire four times.
  return torch_lenet.lenet5(variables["params"])


def _raw_cam(method, torch_model, layer, images, target, scale=1.0):
  """pytorch-grad-cam's map before its normalization and resizing,
  ReLU(Σₖ wₖ Aₖ) N×h×w, from the activations A and gradients g it recorded
  for ``target``; with ``scale`` c it is given (A/c, c·g) instead."""
  with method(torch_model, [torch_model[LAYERS[layer]]]) as explainer:
    targets = [ClassifierOutputTarget(int(t)) for t in target]
    explainer(torch_lenet.nchw(images), targets)
    recorded = explainer.activations_and_grads
    a, g = recorded.activations[0].numpy(), recorded.gradients[0].numpy()
    return np.maximum(explainer.get_cam_image(None, None, None, a / scale, g * scale), 0)


@pytest.mark.parametrize("layer", sorted(LAYERS))
@pytest.mark.parametrize("round_", range(len(TARGETS)))
def test_grad_cam_matches_pytorch_grad_cam(nets, layer, round_):
  model, variables, images = nets
  target = TARGETS[round_]
  raw = _raw_cam(GradCAM, _torch_model(variables), layer, images, target)
  ours = np.asarray(cam.grad_cam(model, variables, images, layer, jnp.asarray(target)))
  assert ours.shape == raw.shape and raw.max() > 0
  np.testing.assert_allclose(ours, raw, rtol=1e-5, atol=1e-5 * raw.max())


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_grad_cam_plus_plus_matches_pytorch_grad_cam(nets, layer):
  # pytorch-grad-cam adds eps = 1e-6 to the denominator of
  # aᵢⱼₖ = g²/(2g² + Σᵢⱼ Aₖ·g³), which moves weights of small gradients by up
  # to ~1e-4; cvx has no eps (aᵢⱼₖ = 0 where g = 0, as in both). The eps-free
  # map is invariant under (A, g) → (A/c, c·g), which shrinks eps to eps/c²:
  # with c a power of two the rescaling is exact in float32, so its formula is
  # compared without the eps.
  model, variables, images = nets
  target = TARGETS[0]
  raw = _raw_cam(GradCAMPlusPlus, _torch_model(variables), layer, images, target,
                 scale=np.float32(2.0 ** 12))
  ours = np.asarray(cam.grad_cam_plus_plus(model, variables, images, layer,
                                           jnp.asarray(target)))
  assert raw.max() > 0
  np.testing.assert_allclose(ours, raw, rtol=1e-5, atol=1e-5 * raw.max())


def test_guided_backprop_and_guided_grad_cam_match_pytorch_grad_cam(nets):
  model, variables, images = nets
  target = TARGETS[1]
  reference = GuidedBackpropReLUModel(_torch_model(variables), device="cpu")
  want = np.stack([reference(torch_lenet.nchw(images[i:i + 1]), int(target[i]))
                   for i in range(N)])  # One example at a time, N×H×W×C.
  ours = np.asarray(guided.guided_backprop(model, variables, images, jnp.asarray(target)))
  scale = np.abs(want).max()
  np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-5 * scale)
  # Guided Grad-CAM = guided backprop × Grad-CAM resized to the input (cv2, bilinear).
  raw = _raw_cam(GradCAM, _torch_model(variables), "last_conv", images, target)
  heat = np.stack([cv2.resize(m, (28, 28), interpolation=cv2.INTER_LINEAR) for m in raw])
  product = want * heat[..., None]
  ours = np.asarray(guided.guided_grad_cam(model, variables, images, "last_conv",
                                           jnp.asarray(target)))
  np.testing.assert_allclose(ours, product, rtol=1e-5, atol=1e-5 * np.abs(product).max())
