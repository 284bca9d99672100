"""Contours against cv2.findContours: same contours, points, order and hierarchy."""
import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data

from cvx.ops import contours as C

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


def rectangles():
  """Two rectangles; the first has two holes, one holding an island with a hole."""
  image = np.zeros((48, 64), np.uint8)
  image[4:40, 4:36] = 255
  image[8:30, 8:28] = 0
  image[12:26, 12:24] = 255
  image[16:20, 16:20] = 0
  image[33:37, 20:30] = 0
  image[10:20, 44:60] = 255
  return image


@pytest.fixture(scope="module")
def masks():
  """96×96 Otsu masks of coins and camera, and seeded noise (> 126 contours,
  where OpenCV's border marks wrap around)."""
  noise = np.zeros((96, 96), np.uint8)
  noise[16:80, 16:80] = np.random.default_rng(1).random((64, 64)) < 0.4
  return [otsu(data.coins()[10:106, 110:206]), otsu(data.camera()[250:346, 200:296]),
          noise]


def assert_same(out, image, mode, method=C.CHAIN_APPROX_NONE):
  ref, hierarchy = cv2.findContours(image, mode, method)
  n = int(out.count)
  assert n == len(ref)
  for i, contour in enumerate(ref):
    length = int(out.lengths[i])
    assert length == len(contour), i
    np.testing.assert_array_equal(out.points[i, :length], contour[:, 0])
  if n:
    np.testing.assert_array_equal(out.hierarchy[:n], hierarchy[0])
  assert not np.any(out.lengths[n:]) and np.all(out.hierarchy[n:] == -1)


@pytest.mark.parametrize("how", HOW)
def test_photo_masks_match_opencv_tree(masks, how):
  fn = lambda m: C.find_contours(m, C.RETR_TREE, max_contours=256, max_points=1024)
  for out, mask in zip(apply(how, fn, masks), masks):
    assert_same(out, mask, C.RETR_TREE)


@pytest.mark.parametrize("mode,method", [
    (C.RETR_EXTERNAL, C.CHAIN_APPROX_NONE), (C.RETR_LIST, C.CHAIN_APPROX_NONE),
    (C.RETR_CCOMP, C.CHAIN_APPROX_NONE), (C.RETR_TREE, C.CHAIN_APPROX_SIMPLE)])
def test_modes_and_methods_match_opencv(masks, mode, method):
  image = np.concatenate([masks[0][:48, :64], rectangles()])
  assert_same(C.find_contours(image, mode, method, 256, 1024), image, mode, method)


def test_rectangles_hierarchy_known_answer():
  out = C.find_contours(rectangles(), C.RETR_TREE, max_contours=8, max_points=256)
  assert int(out.count) == 6
  # Pre-order, newest sibling first: right rectangle, then the big one's tree.
  holes = [bool(h) for h in out.is_hole[:6]]
  parents = [int(p) for p in out.hierarchy[:6, 3]]
  assert holes == [False, False, True, True, False, True]
  assert parents == [-1, -1, 1, 1, 3, 4]
  right = out.points[0, :int(out.lengths[0])]
  assert right[0].tolist() == [44, 10]  # first pixel in raster order
  assert C.bounding_rect(out.points[0], out.lengths[0]).tolist() == [44, 10, 16, 10]
  assert float(C.contour_area(out.points[0], out.lengths[0])) == 15 * 9
  assert int(out.lengths[0]) == 2 * (15 + 9)
  assert_same(out, rectangles(), C.RETR_TREE)


def test_edge_cases_match_opencv():
  cases = [np.zeros((9, 9), np.uint8), np.ones((9, 9), np.uint8),
           np.pad(np.ones((1, 1), np.uint8), 4), np.eye(9, dtype=np.uint8)]
  for image in cases:
    assert_same(C.find_contours(image, max_contours=8, max_points=64), image, C.RETR_TREE)


@pytest.mark.parametrize("how", ["eager", "jit", "vmap"])
def test_area_perimeter_box_match_opencv(masks, how):
  image = masks[0]
  out = C.find_contours(image, C.RETR_LIST, C.CHAIN_APPROX_NONE, 64, 1024)
  ref, _ = cv2.findContours(image, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
  n = int(out.count)

  def measures(points, length):
    return (C.contour_area(points, length), C.arc_length(points, length),
            C.bounding_rect(points, length), C.contour_area(points, length, oriented=True))

  if how == "vmap":
    area, perimeter, box, signed = jax.vmap(measures)(out.points[:n], out.lengths[:n])
  else:
    f = jax.jit(measures) if how == "jit" else measures
    area, perimeter, box, signed = map(np.stack, zip(*[
        f(out.points[i], out.lengths[i]) for i in range(n)]))
  np.testing.assert_array_equal(area, [cv2.contourArea(c) for c in ref])
  np.testing.assert_array_equal(signed, [cv2.contourArea(c, oriented=True) for c in ref])
  # float32 sums of √2 and 1 steps against OpenCV's float64.
  np.testing.assert_allclose(perimeter, [cv2.arcLength(c, True) for c in ref], rtol=1e-6)
  np.testing.assert_array_equal(box, [cv2.boundingRect(c) for c in ref])


def test_open_arc_length():
  points = np.array([[0, 0], [3, 4], [3, 0], [9, 9]], np.int32)
  assert float(C.arc_length(points, 3, closed=False)) == 9.0
  assert float(C.arc_length(points, 3)) == 12.0
  assert np.isclose(float(C.arc_length(points, closed=False)), 9 + np.hypot(6, 9))


def test_batch_input_and_overflow(masks):
  batch = np.stack(masks)[..., None]
  out = C.find_contours(batch, C.RETR_TREE, max_contours=4, max_points=16)
  assert out.points.shape == (3, 4, 16, 2)
  for i, mask in enumerate(masks):
    ref, _ = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_NONE)
    assert int(out.count[i]) == len(ref) > 4  # the count shows the overflow
  assert int(out.lengths.max()) > 16  # so do the lengths


def test_bad_arguments():
  image = np.zeros((8, 8), np.uint8)
  with pytest.raises(ValueError, match="mode"):
    C.find_contours(image, mode=7)
  with pytest.raises(ValueError, match="method"):
    C.find_contours(image, method=3)
  with pytest.raises(ValueError, match="max_points"):
    C.find_contours(image, max_points=0)
  with pytest.raises(ValueError, match="one channel"):
    C.find_contours(np.zeros((8, 8, 3), np.uint8))
  with pytest.raises(ValueError, match="P×2"):
    C.contour_area(np.zeros((4, 3)))
