"""The gradient footprint of a unit is exactly its analytic receptive field."""
import jax
import numpy as np
import pytest

from cvx import models
from cvx.explain import receptive_field as rf


def test_analytic_formula_on_lenet_and_vgg_blocks():
  # LeNet-5: conv5 → pool2 → conv5 → pool2.
  assert rf.analytic([(5, 1), (2, 2), (5, 1), (2, 2)]) == [(5, 1), (6, 2), (14, 2), (16, 4)]
  # Two 3×3 convs see 5×5, three see 7×7 (VGG's argument for stacking 3×3).
  assert rf.analytic([(3, 1)] * 2)[-1][0] == 5 and rf.analytic([(3, 1)] * 3)[-1][0] == 7
  with pytest.raises(ValueError, match="kernel and stride must be ≥ 1"):
    rf.analytic([(0, 1)])


@pytest.mark.parametrize("layer, size", [("stage1", 5), ("stage2", 14)])
def test_effective_field_fills_the_analytic_one_in_lenet(layer, size):
  model = models.create("lenet5", num_classes=10)
  images = jax.random.uniform(jax.random.PRNGKey(0), (16, 28, 28, 1))
  variables = {"params": model.init(jax.random.PRNGKey(1), images)["params"]}
  erf = np.asarray(rf.effective(model, variables, images, layer)).sum(0)
  # Max-pooling routes each gradient to one input of four; over 16 random
  # images the footprint covers the whole field and nothing outside it.
  assert rf.support(erf) == (size, size)


def test_bad_layer_and_position():
  model = models.create("lenet5", num_classes=10)
  images = np.zeros((1, 28, 28, 1), np.float32)
  variables = {"params": model.init(jax.random.PRNGKey(1), images)["params"]}
  with pytest.raises(ValueError, match="layer 'conv3'.*'stage1'"):
    rf.effective(model, variables, images, "conv3")
  with pytest.raises(ValueError, match=r"position \(10, 0\) is outside the 10×10"):
    rf.effective(model, variables, images, "stage2", position=(10, 0))


def test_dilation_grows_the_field_exponentially():
  # Yu & Koltun's context module: 3×3 convs dilated 1, 2, 4 see 3, 7, 15.
  assert rf.analytic([(3, 1, 1), (3, 1, 2), (3, 1, 4)]) == [(3, 1), (7, 1), (15, 1)]
  assert rf.step(5, 2, 3, 2, dilation=2) == (13, 4)
  with pytest.raises(ValueError, match="dilation too"):
    rf.step(1, 1, 3, 1, dilation=0)


def test_fields_of_several_layers_at_once_are_each_units_gradient():
  model = models.create("lenet5", num_classes=10)
  images = jax.random.uniform(jax.random.PRNGKey(2), (3, 28, 28, 1))
  variables = {"params": model.init(jax.random.PRNGKey(1), images)["params"]}
  fields = jax.jit(lambda v, x: rf.effective_fields(
      model, v, x, ["stage1", "stage2"], {"stage2": (2, 7)}))(variables, images)

  def gradient(layer, row, col):
    unit = lambda x: model.apply(variables, x)[1][layer][:, row, col, :].sum()
    return np.abs(jax.grad(unit)(images)).sum(-1)

  np.testing.assert_allclose(fields["stage1"], gradient("stage1", 14, 14), rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(fields["stage2"], gradient("stage2", 2, 7), rtol=1e-6, atol=1e-9)
  with pytest.raises(ValueError, match="layer 'conv3'"):
    rf.effective_fields(model, variables, images, ["stage1", "conv3"])
