"""cvx.ops.borders against cv2.copyMakeBorder."""
import cv2
import numpy as np
import pytest

from cvx import ops
from cvx.ops import borders
from tests.ops.photos import MODES, photo, run

BORDERS = [ops.BORDER_CONSTANT, ops.BORDER_REPLICATE, ops.BORDER_REFLECT,
           ops.BORDER_WRAP, ops.BORDER_REFLECT_101]


def test_constants_equal_opencv():
  for name in ("BORDER_CONSTANT", "BORDER_REPLICATE", "BORDER_REFLECT", "BORDER_WRAP",
               "BORDER_REFLECT_101", "BORDER_DEFAULT"):
    assert getattr(ops, name) == getattr(cv2, name)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("border", BORDERS)
def test_copy_make_border_matches_opencv(mode, border):
  images = [photo("astronaut"), photo("coffee")]
  fn = lambda x: ops.copy_make_border(x, 3, 1, 0, 5, border, value=(10, 20, 30))
  for image, out in zip(images, run(mode, fn, images)):
    ref = cv2.copyMakeBorder(image, 3, 1, 0, 5, border, value=(10, 20, 30))
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("border", BORDERS)
def test_pad_merged_matches_opencv(border):
  image = photo("coffee")[:40, :50]
  h, w, c = image.shape
  out = borders.pad_merged(image.reshape(1, h, w * c), c, 2, 3, 4, 1, border)
  ref = cv2.copyMakeBorder(image, 2, 3, 4, 1, border)
  np.testing.assert_array_equal(np.asarray(out).reshape(ref.shape), ref)


def test_gray_image_keeps_rank():
  image = photo("camera", gray=True)
  out = ops.copy_make_border(image, 2, 2, 2, 2, ops.BORDER_REFLECT_101)
  np.testing.assert_array_equal(out, cv2.copyMakeBorder(image, 2, 2, 2, 2, cv2.BORDER_REFLECT_101))


@pytest.mark.parametrize("kwargs, match", [
    (dict(border_type=7), "border=7"),
    (dict(border_type=ops.BORDER_CONSTANT, top=-1), "top"),
])
def test_bad_arguments(kwargs, match):
  args = dict(top=1, bottom=1, left=1, right=1) | kwargs
  with pytest.raises(ValueError, match=match):
    ops.copy_make_border(photo("camera", gray=True), **args)
