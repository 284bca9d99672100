"""Keras applications (JAX backend) with random weights, BatchNorm statistics
and input normalization give the same logits and pre-logits as the cvx models
they are converted into, each fed the same raw images through its own
preprocessing (``keras.applications.*.preprocess_input`` for Keras)."""
import functools

import jax
import keras
import numpy as np
import pytest

from cvx import analysis, transfer
from tests.transfer import parity

NUM_CLASSES = 10
A = keras.applications
# (cvx name, Keras keywords): (constructor, smallest comfortable input, preprocess_input).
MODELS = {
    ("vgg16", ()): (A.VGG16, 32, A.vgg16.preprocess_input),
    ("vgg19", ()): (A.VGG19, 32, A.vgg19.preprocess_input),
    **{(f"resnet{d}", ()): (getattr(A, f"ResNet{d}"), 32, A.resnet.preprocess_input)
       for d in (50, 101, 152)},
    ("mobilenet_v1", ()): (A.MobileNet, 32, A.mobilenet.preprocess_input),
    ("mobilenet_v1", (("alpha", 0.5),)): (A.MobileNet, 35, A.mobilenet.preprocess_input),
    ("densenet121", ()): (A.DenseNet121, 32, A.densenet.preprocess_input),
    ("xception", ()): (A.Xception, 71, A.xception.preprocess_input),
    ("efficientnet_b0", ()): (A.EfficientNetB0, 32, A.efficientnet.preprocess_input),
}
HEADS = {"mobilenet_v1": "conv_preds"}  # else 'predictions'
pytestmark = pytest.mark.usefixtures("host_initializers")


def _randomize_statistics(model, seed):
  """Random BatchNorm parameters/statistics and input Normalization (EfficientNet)."""
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      n = layer.gamma.shape[0]
      layer.moving_mean.assign(rng.normal(0, 0.2, n))
      layer.moving_variance.assign(rng.uniform(0.5, 2.0, n))
      layer.gamma.assign(rng.uniform(0.5, 1.5, n))
      layer.beta.assign(rng.normal(0, 0.2, n))
    elif isinstance(layer, keras.layers.Normalization):
      layer.adapt_mean.assign(rng.uniform(0.3, 0.6, 3))
      layer.adapt_variance.assign(rng.uniform(0.03, 0.1, 3))
      layer.finalize_state()


def _forward(model, outputs, x):
  """Eval-mode outputs of a Keras model, compiled once (eager Keras compiles per op)."""
  sub = keras.Model(model.inputs, outputs)
  call = jax.jit(lambda trainable, other, x: sub.stateless_call(trainable, other, x)[0])
  return [np.asarray(y) for y in call([v.value for v in sub.trainable_variables],
                                      [v.value for v in sub.non_trainable_variables], x)]


@functools.lru_cache(maxsize=2)
def reference(name, options=(), classes=NUM_CLASSES):
  """(Keras model, raw images, logits, pre-logits)."""
  constructor, size, preprocess = MODELS[name, options]
  model = constructor(weights=None, input_shape=(size, size, 3), classes=classes,
                      classifier_activation=None, **dict(options))
  _randomize_statistics(model, 1)
  x = parity.images(0, size)
  head = model.get_layer(HEADS.get(name, "predictions"))
  logits, pre_logits = _forward(model, [model.output, head.input],
                                preprocess(x.astype(np.float32)))
  return model, x, logits, pre_logits


def _cvx_outputs(converted, x):
  logits, features = jax.jit(converted.model().apply)(converted.variables,
                                                      converted.preprocessing(x))
  return logits, features["pre_logits"]


def test_keras_runs_on_the_jax_backend():
  assert keras.backend.backend() == "jax"


@pytest.mark.parametrize("name,options", MODELS, ids=[f"{n}{dict(o) or ''}" for n, o in MODELS])
def test_logits_and_pre_logits_match_keras(name, options):
  model, x, logits, pre_logits = reference(name, options)
  converted = transfer.from_keras(name, model)
  assert converted.num_classes == NUM_CLASSES
  got_logits, got_pre_logits = _cvx_outputs(converted, x)
  parity.assert_close(got_logits, logits)
  parity.assert_close(got_pre_logits, pre_logits)


def test_resnet50_with_conv_bias_has_keras_parameter_count():
  model = A.ResNet50(weights=None, classifier_activation=None)
  converted = transfer.from_keras("resnet50", model)
  params = analysis.count_params(converted.variables["params"])
  statistics = analysis.count_params(converted.variables["batch_stats"])
  assert params == sum(int(np.prod(v.shape)) for v in model.trainable_weights) == 25_583_592
  assert params + statistics == model.count_params() == 25_636_712


def test_keras_file_round_trip(tmp_path):
  model = reference("mobilenet_v1", (("alpha", 0.5),))[0]
  path = tmp_path / "mobilenet.keras"
  model.save(path)
  from_file = transfer.from_keras("mobilenet_v1", str(path))
  from_model = transfer.from_keras("mobilenet_v1", model)
  assert from_file.model_kwargs == from_model.model_kwargs == {"alpha": 0.5}
  jax.tree.map(np.testing.assert_array_equal, from_file.variables, from_model.variables)


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras' own layers, no weights
def test_weights_only_h5_loads_into_the_application(tmp_path):
  model = A.MobileNet(weights=None, input_shape=(32, 32, 3), alpha=0.25)  # 1000 classes
  path = tmp_path / "mobilenet.weights.h5"
  model.save_weights(path)
  from_file = transfer.from_keras("mobilenet_v1", str(path), alpha=0.25)
  jax.tree.map(np.testing.assert_array_equal, from_file.variables,
               transfer.from_keras("mobilenet_v1", model).variables)
  with pytest.raises(ValueError, match=r"cannot load Keras weights '.*mobilenet\.weights\.h5' "
                                       r"as MobileNet: "):
    transfer.from_keras("mobilenet_v1", str(path), alpha=0.5)


def test_efficientnet_preprocessing_comes_from_the_models_normalization_layer():
  model = reference("efficientnet_b0")[0]
  (layer,) = [x for x in model.layers if isinstance(x, keras.layers.Normalization)]
  prep = transfer.from_keras("efficientnet_b0", model).preprocessing
  np.testing.assert_allclose(prep.mean, np.ravel(layer.mean), rtol=1e-6)
  np.testing.assert_allclose(prep.std, np.sqrt(np.ravel(layer.variance)), rtol=1e-6)


def test_wrong_architecture_names_the_first_mismatch():
  model = reference("mobilenet_v1", (("alpha", 0.5),))[0]
  with pytest.raises(ValueError, match=(
      r"^Keras 'mobilenet_v1' weights do not fit: first mismatching layer 'conv1/kernel' has "
      r"shape \(3, 3, 3, 16\) \(\(3, 3, 3, 16\) in cvx layout\), cvx "
      r"'params/conv1/conv/kernel' needs \(3, 3, 3, 32\)")):
    transfer.from_keras("mobilenet_v1", model, alpha=1.0)


def test_another_application_fails_with_missing_and_unexpected_layers():
  model = reference("resnet50")[0]
  with pytest.raises(ValueError, match=(
      r"^Keras 'densenet121' weights do not fit: first mismatching layer "
      r"'conv2_block1_1_conv/kernel' .*; missing keys: .*; unexpected keys: 'conv1_conv/bias'")):
    transfer.from_keras("densenet121", model)


def test_headless_models_are_refused():
  model = A.MobileNet(weights=None, input_shape=(32, 32, 3), alpha=0.25, include_top=False)
  with pytest.raises(ValueError, match="has no 'conv_preds' layer: convert a model built with "
                                       "include_top=True"):
    transfer.from_keras("mobilenet_v1", model)


@pytest.mark.parametrize("weights", ["imagenet", "/no/such/resnet50.h5"])
def test_weights_that_are_not_a_file_must_be_downloaded_first(weights):
  with pytest.raises(FileNotFoundError, match="must be downloaded by the user first"):
    transfer.from_keras("resnet50", weights)
