"""Grad-CAM overlays of any model, written as PNG, against OpenCV's resize and
matplotlib's colour map."""
import cv2
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest
from PIL import Image

from cvx import models
from cvx.explain import cam, overlay
from tests.explain.test_guided import ConvNet


def _reference(image, heat_map, alpha=0.4):
  """min–max scale, cv2.resize (bilinear), jet, blend: the usual recipe."""
  m = (heat_map - heat_map.min()) / (heat_map.max() - heat_map.min())
  heat = cv2.resize(m.astype(np.float32), image.shape[1::-1], interpolation=cv2.INTER_LINEAR)
  base = image / 255.0 if image.dtype == np.uint8 else image
  base = np.broadcast_to(base.reshape(*image.shape[:2], -1), (*image.shape[:2], 3))
  return (1 - alpha) * base + alpha * matplotlib.colormaps["jet"](heat)[..., :3]


def _cases():
  digits = jax.random.randint(jax.random.PRNGKey(0), (2, 28, 28, 1), 0, 256).astype(jnp.uint8)
  photos = jax.random.uniform(jax.random.PRNGKey(1), (2, 12, 12, 3))
  return [(models.create("lenet5", num_classes=10), digits, digits / 255.0, "last_conv"),
          (models.create("lenet5", num_classes=10), digits, digits / 255.0, "stage1"),
          (ConvNet(), photos, photos, "last_conv")]


@pytest.mark.parametrize("case", range(3))
def test_grad_cam_overlays_are_written_as_png(tmp_path, case):
  model, display, inputs, layer = _cases()[case]
  variables = {"params": model.init(jax.random.PRNGKey(2), inputs)["params"]}
  maps = cam.grad_cam(model, variables, inputs, layer, target=jnp.array([1, 2]), relu=False)
  tiles = overlay.overlays(display, maps)
  assert tiles.shape == (*display.shape[:3], 3) and tiles.dtype == np.uint8
  for i, tile in enumerate(tiles):
    want = _reference(np.asarray(display[i]), np.asarray(maps[i]))
    # Rounding (0.5) plus at most one step of jet's 256-entry table where the
    # heat differs by float error (a channel moves ≤ 0.018, 1.8 levels at α 0.4).
    assert np.abs(tile - 255 * want).max() <= 2.5
    assert np.mean(np.abs(tile - np.round(255 * want)) > 0.5) < 0.01
    path = tmp_path / f"{i}.png"
    overlay.write_png(str(path), tile)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), tile)


def test_bad_shapes():
  with pytest.raises(ValueError, match=r"N×h×w maps for N×H×W\[×C\] images"):
    overlay.overlays(np.zeros((2, 8, 8, 3)), np.zeros((3, 4, 4)))
  with pytest.raises(ValueError, match="H×W×3 uint8 image, got float64"):
    overlay.write_png("unused.png", np.zeros((4, 4, 3)))
