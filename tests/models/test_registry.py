"""The registry, and the two models the research loop ships with (seed counts)."""
import jax
import jax.numpy as jnp
import pytest

from cvx import models


def _param_count(model, shape):
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape)))
  return sum(x.size for x in jax.tree.leaves(variables["params"]))


def test_mlp_224x224x3_512_128_1_has_seed_000s_77136641_parameters():
  model = models.create("mlp", num_classes=1, hidden=(512, 128))
  assert _param_count(model, (1, 224, 224, 3)) == 77_136_641


def test_lenet5_has_61706_parameters():
  assert _param_count(models.create("lenet5", num_classes=10), (1, 28, 28, 1)) == 61_706


def test_models_return_logits_and_named_features():
  x = jnp.zeros((2, 28, 28, 1))
  for name in ("lenet5", "mlp"):
    model = models.create(name, num_classes=7)
    variables = model.init(jax.random.PRNGKey(0), x)
    logits, features = model.apply(variables, x)
    assert logits.shape == (2, 7) and logits.dtype == jnp.float32
    assert "pre_logits" in features


def test_unknown_model_and_bad_arguments_are_clear():
  with pytest.raises(ValueError, match=r"unknown model 'lenet'\. Did you mean 'lenet5'"):
    models.create("lenet", num_classes=10)
  with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
    models.create("lenet5", num_classes=0)
  with pytest.raises(TypeError, match="model 'lenet5'.*width"):
    models.create("lenet5", num_classes=10, width=2)
  with pytest.raises(ValueError, match="registered twice"):
    models.register("lenet5")(object)
  assert {"lenet5", "mlp"} <= set(models.list_models())
