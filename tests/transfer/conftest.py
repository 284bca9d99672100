"""Parity tests run in eval mode at the highest matmul precision.

cvx models keep the CPU convolution lowering of ``cvx.layers.conv_lowering``
(the default on CPU), so the parity covers it too.
"""
import jax
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def highest_precision(monkeypatch):
  """'highest' matmul precision for this test only."""
  with jax.default_matmul_precision("highest"):
    yield


@pytest.fixture(scope="module")
def host_initializers():
  """Draws Keras' initial weights with NumPy (He-like scale): on the JAX backend
  Keras compiles one XLA random kernel per weight shape, ~0.5 s each on CPU."""
  import keras  # pylint: disable=import-outside-toplevel  (only for Keras tests)
  rng = np.random.default_rng(0)

  def initialize(self, shape, dtype=None):
    fan_in = max(1, int(np.prod(shape[:-1])))
    return rng.normal(0, np.sqrt(self.scale / fan_in), shape).astype(dtype or "float32")

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(keras.initializers.VarianceScaling, "__call__", initialize)
    yield
