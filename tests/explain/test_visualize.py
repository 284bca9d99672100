"""Tiles show the real values; activation maximization finds the closed form."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvx.explain import visualize


class OneFilter(nn.Module):
  """A single linear 5×5 valid conv (no bias): its 1×1 output is w · x."""

  @nn.compact
  def __call__(self, x, train=False):
    y = nn.Conv(2, (5, 5), padding="VALID", use_bias=False, name="conv")(x)
    return y.reshape((x.shape[0], -1)), {"conv": y}


def test_activation_maximization_finds_the_filter_direction():
  # max w·x subject to ‖x‖ ≤ 1 is x = w/‖w‖ (Cauchy–Schwarz).
  model = OneFilter()
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 5, 5, 3)))
  x, values = visualize.maximize_activation(model, variables, "conv", channel=1,
                                            shape=(5, 5, 3), key=jax.random.PRNGKey(1))
  w = np.asarray(variables["params"]["conv"]["kernel"][..., 1])
  np.testing.assert_allclose(np.asarray(x[0]), w / np.linalg.norm(w), atol=1e-4)
  assert float(values[-1]) == pytest.approx(np.linalg.norm(w), rel=1e-3)
  assert np.all(np.diff(np.asarray(values)) >= -1e-6)  # Monotone ascent.


def test_tiles_are_min_max_scaled_channels():
  rng = np.random.default_rng(0)
  feature = rng.normal(size=(6, 7, 4)).astype(np.float32)
  tiles = visualize.feature_map_tiles(feature, limit=3)
  assert len(tiles) == 3 and tiles[0].shape == (6, 7, 3)
  c = feature[..., 2]
  np.testing.assert_array_equal(
      tiles[2][..., 0], np.round(255 * (c - c.min()) / (c.max() - c.min())).astype(np.uint8))
  kernel = rng.normal(size=(3, 3, 3, 5))
  filters = visualize.filter_tiles(kernel)
  assert len(filters) == 5 and filters[4].shape == (3, 3, 3)
  assert filters[4].min() == 0 and filters[4].max() == 255
  with pytest.raises(ValueError, match="h×w×C"):
    visualize.feature_map_tiles(feature[None])
