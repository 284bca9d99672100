"""cvx.ops.color against cv2.cvtColor on photographs (bit-exact for uint8)."""
import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from cvx import ops
from tests.ops.photos import COLOR, MODES, photo, run


def _colors():
  return [photo(name) for name in COLOR]


@pytest.mark.parametrize("mode", MODES)
def test_rgb_to_gray_uint8_exact(mode):
  images = _colors()
  for image, out in zip(images, run(mode, ops.rgb_to_gray, images)):
    assert out.shape == image.shape[:2] + (1,) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))


def test_rgb_to_gray_all_uint8_triples_exact():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
  np.testing.assert_array_equal(ops.rgb_to_gray(image)[..., 0],
                                cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))


def test_rgb_to_gray_float():
  image = photo("astronaut").astype(np.float32) / 255
  np.testing.assert_allclose(ops.rgb_to_gray(image)[..., 0],
                             cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_rgb_to_hsv_uint8_exact(mode):
  images = _colors()
  for image, out in zip(images, run(mode, ops.rgb_to_hsv, images)):
    np.testing.assert_array_equal(out, cv2.cvtColor(image, cv2.COLOR_RGB2HSV))
    assert out[..., 0].max() <= 179


def test_rgb_to_hsv_uint8_random_exact():
  image = np.random.default_rng(1).integers(0, 256, (200, 256, 3), dtype=np.uint8)
  np.testing.assert_array_equal(ops.rgb_to_hsv(image), cv2.cvtColor(image, cv2.COLOR_RGB2HSV))


def test_rgb_to_hsv_uint8_exact_on_every_rgb_triple():
  rgb = np.stack(np.meshgrid(*[np.arange(256)] * 3, indexing="ij"), -1)
  rgb = rgb.astype(np.uint8).reshape(4096, 4096, 3)
  np.testing.assert_array_equal(jax.jit(ops.rgb_to_hsv)(rgb), cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV))


@pytest.mark.parametrize("mode", MODES)
def test_rgb_to_hsv_float(mode):
  images = [im.astype(np.float32) / 255 for im in _colors()]
  for image, out in zip(images, run(mode, ops.rgb_to_hsv, images)):
    ref = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    # OpenCV adds FLT_EPSILON to the divisors (max − min for H, max for S):
    # on dark pixels that shifts hue by < 0.002° and saturation by < 5e-5.
    np.testing.assert_allclose(out[..., 0], ref[..., 0], atol=2e-3)
    np.testing.assert_allclose(out[..., 1], ref[..., 1], atol=5e-5)
    np.testing.assert_array_equal(out[..., 2], ref[..., 2])
    assert out[..., 0].min() >= 0 and out[..., 0].max() < 360


def test_hsv_to_rgb_uint8_exact_on_every_hsv_triple():
  # Every (H, S) with H < 180 and every even V, rows of width 128 (see the docstring on OpenCV's
  # rounding of the last W mod 32 pixels of a row).
  hsv = np.stack(np.meshgrid(np.arange(180), np.arange(256), np.arange(0, 256, 2), indexing="ij"),
                 -1).astype(np.uint8).reshape(-1, 128, 3)
  out = jax.jit(ops.hsv_to_rgb)(hsv)
  np.testing.assert_array_equal(out, cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))


@pytest.mark.parametrize("mode", MODES)
def test_hsv_round_trip_uint8_matches_opencv(mode):
  hsv = [cv2.cvtColor(im, cv2.COLOR_RGB2HSV) for im in _colors()]
  for h, out in zip(hsv, run(mode, ops.hsv_to_rgb, hsv)):
    np.testing.assert_array_equal(out, cv2.cvtColor(h, cv2.COLOR_HSV2RGB))


def test_hsv_to_rgb_float_inverts_and_matches_opencv():
  image = photo("chelsea").astype(np.float32) / 255
  hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
  np.testing.assert_allclose(ops.hsv_to_rgb(hsv), cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), atol=1e-6)
  np.testing.assert_allclose(ops.hsv_to_rgb(ops.rgb_to_hsv(image)), image, atol=1e-5)


def test_bgr_split_merge_match_opencv():
  image = photo("coffee")
  np.testing.assert_array_equal(ops.rgb_to_bgr(image), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
  np.testing.assert_array_equal(ops.bgr_to_rgb(ops.rgb_to_bgr(image)), image)
  planes = ops.split(image)
  for ours, theirs in zip(planes, cv2.split(image)):
    np.testing.assert_array_equal(ours, theirs)
  np.testing.assert_array_equal(ops.merge(planes), cv2.merge(cv2.split(image)))
  red = np.asarray(planes[0])
  np.testing.assert_array_equal(ops.gray_to_rgb(red), cv2.cvtColor(red, cv2.COLOR_GRAY2RGB))


def test_float_conversions_are_differentiable():
  x = jnp.asarray(photo("astronaut")[40:42, 40:42].astype(np.float32) / 255)
  check_grads(lambda v: ops.rgb_to_gray(v).sum(), (x,), order=1, modes=["rev"])
  hsv = ops.rgb_to_hsv(x)
  check_grads(lambda v: ops.hsv_to_rgb(v), (hsv,), order=1, modes=["rev"], atol=1e-2, rtol=1e-2)
  g = jax.grad(lambda v: ops.rgb_to_hsv(v)[..., 1:].sum())(jnp.full((2, 2, 3), 0.5))
  assert np.isfinite(g).all()  # gray pixels: no NaN from 0/0


@pytest.mark.parametrize("fn, image, error, match", [
    (ops.rgb_to_hsv, np.zeros((4, 4, 4), np.uint8), ValueError, "3 channels"),
    (ops.rgb_to_gray, np.zeros((4, 4), np.uint8), ValueError, "3 channels"),
    (ops.rgb_to_gray, np.zeros((4, 4, 3), np.int32), TypeError, "int32"),
    (ops.gray_to_rgb, np.zeros((4, 4, 2), np.uint8), ValueError, "1 channel"),
    (ops.rgb_to_hsv, np.zeros((4,), np.uint8), ValueError, "shape"),
])
def test_bad_input(fn, image, error, match):
  with pytest.raises(error, match=match):
    fn(image)
