"""Connected components against cv2.connectedComponentsWithStats: exact labels and stats."""
import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data

from cvx.ops import labels

HOW = ["eager", "jit", "vmap"]


def apply(how, fn, images):
  """``fn`` on each image: eagerly, jitted, or vmapped over the stacked images."""
  if how == "vmap":
    out = jax.vmap(fn)(jnp.stack(images))
    return [jax.tree.map(lambda a, i=i: a[i], out) for i in range(len(images))]
  f = jax.jit(fn) if how == "jit" else fn
  return [f(im) for im in images]


def otsu(image):
  return cv2.threshold(image, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]


@pytest.fixture(scope="module")
def masks():
  """Otsu masks of two 128×128 photographs (and an inverted one) plus noise."""
  coins = otsu(data.coins()[:128, 100:228])
  camera = otsu(data.camera()[200:328, 100:228])
  noise = (np.random.default_rng(0).random((128, 128)) < 0.45).astype(np.uint8) * 255
  return [coins, 255 - camera, noise]


def assert_same(out, image, connectivity):
  n, lab, stats, centroids = cv2.connectedComponentsWithStats(image, connectivity=connectivity)
  count, got, got_stats, got_centroids = out
  assert int(count) == n
  np.testing.assert_array_equal(got, lab)
  np.testing.assert_array_equal(got_stats[:n], stats)
  assert not np.any(got_stats[n:])
  # float32 centroids against OpenCV's float64 (coordinates < 128).
  np.testing.assert_allclose(got_centroids[:n], centroids, rtol=0, atol=2e-5)


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("how", HOW)
def test_masks_match_opencv(masks, how, connectivity):
  fn = lambda m: labels.connected_components_with_stats(m, connectivity, max_components=2000)
  for out, mask in zip(apply(how, fn, masks), masks):
    assert_same(out, mask, connectivity)


@pytest.mark.parametrize("how", HOW)
def test_connected_components_labels(masks, how):
  fn = lambda m: labels.connected_components(m, 8)
  for (count, lab), mask in zip(apply(how, fn, masks), masks):
    n, ref = cv2.connectedComponents(mask, connectivity=8)
    assert int(count) == n
    np.testing.assert_array_equal(lab, ref)


def test_numbering_follows_opencv_blocks_for_8_and_pixels_for_4():
  # A starts at (row 1, col 0), B at (row 0, col 3): 2×2 block order puts A
  # first, pixel order puts B first; OpenCV uses the former for 8-connectivity.
  image = np.zeros((4, 6), np.uint8)
  image[1:3, 0] = 1
  image[0:3, 3] = 1
  for connectivity in (8, 4):
    _, lab = labels.connected_components(image, connectivity)
    np.testing.assert_array_equal(lab, cv2.connectedComponents(image, connectivity=connectivity)[1])
  assert labels.connected_components(image, 8)[1][1, 0] == 1
  assert labels.connected_components(image, 4)[1][1, 0] == 2


def test_long_spiral_converges():
  # One path 100s of pixels long: propagation must run to convergence.
  image = np.zeros((64, 64), np.uint8)
  lo, hi = 1, 62
  while hi - lo >= 4:
    image[lo, lo:hi + 1] = image[lo:hi + 1, hi] = image[hi, lo:hi + 1] = 1
    image[lo + 2:hi + 1, lo] = 1
    image[lo + 2, lo:lo + 3] = 1
    lo, hi = lo + 2, hi - 2
  for connectivity in (4, 8):
    out = labels.connected_components_with_stats(image, connectivity, max_components=8)
    assert_same(out, image, connectivity)


def test_batch_input(masks):
  count, lab, stats, _ = labels.connected_components_with_stats(
      np.stack(masks)[..., None], 8, max_components=2000)
  assert lab.shape == (3, 128, 128) and stats.shape == (3, 2001, 5)
  for i, mask in enumerate(masks):
    np.testing.assert_array_equal(lab[i], cv2.connectedComponents(mask, connectivity=8)[1])


def test_capacity_overflow_is_visible(masks):
  count, lab, stats, _ = labels.connected_components_with_stats(masks[2], 8, max_components=5)
  n, ref = cv2.connectedComponents(masks[2], connectivity=8)
  assert int(count) == n > 6  # more labels than rows: the count says so
  np.testing.assert_array_equal(lab, ref)  # labels themselves are complete
  assert stats.shape == (6, 5)


def test_bad_input():
  with pytest.raises(ValueError, match="connectivity"):
    labels.connected_components(np.zeros((4, 4), np.uint8), 6)
  with pytest.raises(ValueError, match="max_components"):
    labels.connected_components_with_stats(np.zeros((4, 4), np.uint8), 8, 0)
  with pytest.raises(ValueError, match="one channel"):
    labels.connected_components(np.zeros((4, 4, 3), np.uint8))
