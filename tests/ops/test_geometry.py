"""cvx.ops.geometry against cv2.resize, flip, rotate, getRotationMatrix2D and
warpAffine on photographs."""
import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from cvx import ops
from tests.ops.photos import MODES, photo, run

BORDERS = [ops.BORDER_CONSTANT, ops.BORDER_REPLICATE, ops.BORDER_REFLECT, ops.BORDER_WRAP,
           ops.BORDER_REFLECT_101]
# (width, height) from 128×96: shrink by 2 and by 2.6×3.7, enlarge, and mixed.
SIZES = [(64, 48), (49, 26), (200, 150), (77, 200)]


def _images():
  return [photo("astronaut"), photo("coffee")]


def _assert_uint8_within_one(got, want, max_fraction):
  """±1 everywhere, and at most ``max_fraction`` of the values off by one."""
  diff = np.abs(np.asarray(got, np.int32) - want)
  assert diff.max() <= 1, diff.max()
  assert (diff > 0).mean() <= max_fraction, (diff > 0).mean()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", MODES)
def test_resize_nearest_equals_cv2(size, mode):
  images = _images()
  for got, image in zip(run(mode, lambda x: ops.resize(x, size, interpolation=ops.INTER_NEAREST),
                            images), images):
    np.testing.assert_array_equal(got, cv2.resize(image, size, interpolation=cv2.INTER_NEAREST))


@pytest.mark.parametrize("interpolation", [ops.INTER_LINEAR, ops.INTER_AREA])
@pytest.mark.parametrize("size", SIZES)
def test_resize_linear_and_area_match_cv2(size, interpolation):
  images = _images()
  for mode in ("jit", "batch"):
    for got, image in zip(run(mode, lambda x: ops.resize(x, size, interpolation=interpolation),
                              images), images):
      want = cv2.resize(image, size, interpolation=interpolation)
      # OpenCV weights uint8 in fixed point; ~12% of values differ by one.
      _assert_uint8_within_one(got, want, 0.15)
  float_image = images[0].astype(np.float32)
  np.testing.assert_allclose(ops.resize(float_image, size, interpolation=interpolation),
                             cv2.resize(float_image, size, interpolation=interpolation),
                             atol=2e-3)


def test_resize_exact_where_opencv_rounds_like_cvx():
  image = photo("camera", gray=True)
  for size, interpolation in [((64, 48), cv2.INTER_LINEAR), ((32, 24), cv2.INTER_AREA),
                              ((128, 192), cv2.INTER_LINEAR), ((49, 26), cv2.INTER_AREA)]:
    np.testing.assert_array_equal(ops.resize(image, size, interpolation=interpolation),
                                  cv2.resize(image, size, interpolation=interpolation))


def test_resize_by_factors_equals_resize_to_the_rounded_size():
  image = photo("chelsea")
  np.testing.assert_array_equal(ops.resize(image, None, fx=0.5, fy=1.5),
                                ops.resize(image, (64, 144)))
  np.testing.assert_array_equal(ops.resize(image, (128, 96)), image)


def test_resize_is_differentiable():
  x = jnp.asarray(photo("camera", (12, 10), gray=True), jnp.float32) / 255
  check_grads(lambda x: ops.resize(x, (7, 15)), (x,), order=1, modes=["rev"])


@pytest.mark.parametrize("code", [0, 1, -1])
def test_flip_equals_cv2(code):
  image = photo("astronaut")
  for got in run("batch", lambda x: ops.flip(x, code), [image]):
    np.testing.assert_array_equal(got, cv2.flip(image, code))


@pytest.mark.parametrize("code", [ops.ROTATE_90_CLOCKWISE, ops.ROTATE_180,
                                  ops.ROTATE_90_COUNTERCLOCKWISE])
def test_rotate_by_right_angles_equals_cv2(code):
  image = photo("astronaut")
  for mode in ("eager", "vmap"):
    for got in run(mode, lambda x: ops.rotate(x, code), [image]):
      np.testing.assert_array_equal(got, cv2.rotate(image, code))


def test_rotation_matrix_equals_cv2():
  for center, angle, scale in [((63.5, 47.5), 30.0, 1.0), ((10, 20), -115.0, 0.7)]:
    np.testing.assert_allclose(ops.get_rotation_matrix_2d(center, angle, scale),
                               cv2.getRotationMatrix2D(center, angle, scale), atol=1e-4)


def _matrices(width, height):
  return {"rotation": cv2.getRotationMatrix2D((width / 2, height / 2), 30, 0.9),
          "shift": np.float64([[1, 0, 5.3], [0, 1, -7.77]]),
          # Not round numbers: whole-pixel inputs would land on ties (x.5) that
          # float rounding breaks either way.
          "shear": np.float64([[1.0731, 0.3127, -9.713], [-0.2093, 0.9521, 4.187]])}


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("inverse", [False, True])
def test_warp_affine_nearest_equals_cv2(border, inverse):
  image = photo("astronaut")
  flags = cv2.INTER_NEAREST | (cv2.WARP_INVERSE_MAP if inverse else 0)
  for m in _matrices(128, 96).values():
    want = cv2.warpAffine(image, m, (133, 93), flags=flags, borderMode=border,
                          borderValue=(10, 20, 30))
    got = jax.jit(lambda x, m: ops.warp_affine(x, m, (133, 93), flags, border, jnp.array(
        [10, 20, 30], jnp.uint8)))(image, m)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("inverse", [False, True])
def test_warp_affine_linear_matches_cv2(border, inverse):
  flags = cv2.INTER_LINEAR | (cv2.WARP_INVERSE_MAP if inverse else 0)
  for image in (photo("astronaut"), photo("camera", gray=True)):
    value = (10, 20, 30) if image.ndim == 3 else 77
    for m in _matrices(128, 96).values():
      want = cv2.warpAffine(image, m, (133, 93), flags=flags, borderMode=border,
                            borderValue=value)
      got = ops.warp_affine(image, m, (133, 93), flags, border, np.array(value, np.uint8))
      # float32 source points; OpenCV rounds some of them differently.
      _assert_uint8_within_one(got, want, 0.02)
      float_image = image.astype(np.float32)
      np.testing.assert_allclose(
          ops.warp_affine(float_image, m, (133, 93), flags, border, np.array(value, np.float32)),
          cv2.warpAffine(float_image, m, (133, 93), flags=flags, borderMode=border,
                         borderValue=value), atol=5e-3)


@pytest.mark.parametrize("mode", MODES)
def test_warp_affine_batches_like_single_images(mode):
  images = _images()
  m = _matrices(128, 96)["rotation"]
  for got, image in zip(run(mode, lambda x: ops.warp_affine(x, m), images), images):
    _assert_uint8_within_one(got, cv2.warpAffine(image, m, (128, 96)), 0.02)


def test_translate_by_whole_pixels_shifts_exactly():
  image = photo("coins", gray=True)
  got = jax.jit(ops.translate)(image, 5, -3)
  want = np.zeros_like(image)
  want[:-3, 5:] = image[3:, :-5]
  np.testing.assert_array_equal(got, want)


def test_rotate_about_center_equals_warp_affine_of_cv2_matrix():
  image = photo("chelsea")
  m = cv2.getRotationMatrix2D((127 / 2, 95 / 2), 20.0, 1.1)
  want = cv2.warpAffine(image, m, (128, 96), borderMode=cv2.BORDER_REFLECT_101)
  got = ops.rotate_about_center(image, 20.0, 1.1, border_mode=ops.BORDER_REFLECT_101)
  _assert_uint8_within_one(got, want, 0.02)


def test_warp_affine_is_differentiable_in_image_and_matrix():
  x = jnp.asarray(photo("camera", (12, 10), gray=True), jnp.float32) / 255
  m = jnp.asarray(_matrices(12, 10)["rotation"], jnp.float32)
  check_grads(lambda x: ops.warp_affine(x, m), (x,), order=1, modes=["rev"])
  grad = jax.grad(lambda m: ops.warp_affine(x, m).sum())(m)
  assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0


@pytest.mark.parametrize("call,message", [
    (lambda x: ops.resize(x, (0, 5)), r"dsize must be \(width, height\) of positive ints"),
    (lambda x: ops.resize(x), "give dsize=.* or positive fx and fy"),
    (lambda x: ops.resize(x, (4, 4), interpolation=2), "interpolation=2 is not one of"),
    (lambda x: ops.warp_affine(x, np.eye(3)),
     r"M must be a 2×3 affine matrix, got shape \(3, 3\)"),
    (lambda x: ops.warp_affine(x, np.eye(2, 3), flags=3), "flags & ~WARP_INVERSE_MAP=3"),
    (lambda x: ops.warp_affine(x, np.eye(2, 3), border_mode=7), "border=7 is not one of"),
    (lambda x: ops.rotate(x, 90), "rotate_code=90 is not one of"),
    (lambda x: ops.flip(x, "h"), "flip_code must be an int"),
])
def test_bad_arguments_are_clear_errors(call, message):
  with pytest.raises(ValueError, match=message):
    call(np.zeros((8, 8, 3), np.uint8))
