"""Overlays blend exactly: alpha 0 is the image, alpha 1 matplotlib's colours."""
import matplotlib
import numpy as np
from PIL import Image

from cvx import plots


def test_overlay_blends_image_and_colormap():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
  heat = rng.random((5, 6))
  np.testing.assert_array_equal(plots.overlay(image, heat, alpha=0.0), image)
  colours = matplotlib.colormaps["jet"](heat)[..., :3]
  np.testing.assert_array_equal(plots.overlay(image, heat, alpha=1.0),
                                np.round(255 * colours).astype(np.uint8))
  gray = plots.overlay(image[..., :1], heat, alpha=0.0)
  np.testing.assert_array_equal(gray, np.repeat(image[..., :1], 3, axis=-1))


def test_grid_and_curves_write_pngs(tmp_path):
  tiles = [np.zeros((8, 8, 3), np.uint8)] * 3
  plots.image_grid(tiles, ["a", "b", "c"], str(tmp_path / "grid.png"), columns=2)
  plots.roc_curves({0: (np.array([0, 1]), np.array([0, 1]))}, [0.5],
                   str(tmp_path / "roc.png"))
  plots.pr_curves({0: (np.array([0, 1]), np.array([1, 0.5]))}, [0.75],
                  str(tmp_path / "pr.png"))
  plots.confusion_matrix(np.eye(3) * 5, str(tmp_path / "cm.png"))
  for name in ("grid.png", "roc.png", "pr.png", "cm.png"):
    assert Image.open(tmp_path / name).size[0] >= 100
