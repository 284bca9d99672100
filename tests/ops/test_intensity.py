"""cvx.ops.intensity against cv2 (bit-exact) and scikit-image on photographs."""
import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data, exposure

from cvx import ops
from tests.ops.photos import GRAY, MODES, photo, run

THRESH_TYPES = [ops.THRESH_BINARY, ops.THRESH_BINARY_INV, ops.THRESH_TRUNC,
                ops.THRESH_TOZERO, ops.THRESH_TOZERO_INV]


def _grays():
  return [photo(name, gray=True) for name in GRAY]


@pytest.mark.parametrize("mode", MODES)
def test_threshold_every_type_exact(mode):
  images = _grays()[:2]
  for kind in THRESH_TYPES:
    for thresh in (127, 100.7, -3, 300):
      fn = lambda x, t=thresh, k=kind: ops.threshold(x, t, 200.6, k)
      for image, (ret, out) in zip(images, run(mode, fn, images)):
        ref_ret, ref = cv2.threshold(image, thresh, 200.6, kind)
        assert float(ret) == ref_ret  # ⌊thresh⌋ for uint8, as OpenCV
        np.testing.assert_array_equal(out, ref)


def test_threshold_float_matches_opencv():
  image = photo("camera", gray=True).astype(np.float32) / 255
  for kind in THRESH_TYPES:
    ret, out = ops.threshold(image, 0.4, 0.9, kind)
    ref_ret, ref = cv2.threshold(image, 0.4, 0.9, kind)
    np.testing.assert_allclose(float(ret), ref_ret, rtol=1e-7)
    np.testing.assert_array_equal(out, ref)


OTSU_PHOTOS = ("camera", "coins", "moon", "page", "text", "astronaut", "chelsea", "coffee",
               "hubble_deep_field", "rocket", "horse")


@pytest.mark.parametrize("name", OTSU_PHOTOS)
def test_otsu_threshold_equals_opencv(name):
  full = photo(name, size=None, gray=True)
  if full.dtype != np.uint8:  # horse is boolean
    full = full.astype(np.uint8) * 255
  for image in (full, cv2.resize(full, (128, 96), interpolation=cv2.INTER_AREA)):
    ret, out = ops.threshold(image, 0, 255, ops.THRESH_BINARY | ops.THRESH_OTSU)
    ref_ret, ref = cv2.threshold(image, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    assert float(ret) == ref_ret
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("mode", MODES)
def test_otsu_per_image_in_a_batch(mode):
  images = _grays()
  fn = lambda x: ops.threshold(x, 0, 255, ops.THRESH_BINARY_INV | ops.THRESH_OTSU)
  rets = []
  for image, (ret, out) in zip(images, run(mode, fn, images)):
    ref_ret, ref = cv2.threshold(image, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    assert float(ret) == ref_ret
    np.testing.assert_array_equal(out, ref)
    rets.append(float(ret))
  assert len(set(rets)) > 1  # the images really have different thresholds


TRIANGLE_PHOTOS = OTSU_PHOTOS + ("brick", "grass", "gravel", "clock")


@pytest.mark.parametrize("name", TRIANGLE_PHOTOS)
def test_triangle_threshold_equals_opencv(name):
  full = photo(name, size=None, gray=True)
  if full.dtype != np.uint8:  # horse is boolean
    full = full.astype(np.uint8) * 255
  for image in (full, cv2.resize(full, (128, 96), interpolation=cv2.INTER_AREA)):
    ret, out = ops.threshold(image, 0, 255, ops.THRESH_BINARY | ops.THRESH_TRIANGLE)
    ref_ret, ref = cv2.threshold(image, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_TRIANGLE)
    assert float(ret) == ref_ret
    np.testing.assert_array_equal(out, ref)


def test_triangle_threshold_edge_histograms():
  one_level = np.full((8, 8), 200, np.uint8)
  two_levels = np.zeros((8, 8), np.uint8)
  two_levels[:2] = 255
  ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
  for image in (one_level, two_levels, ramp, 255 - ramp[:, :7], np.zeros((4, 4), np.uint8)):
    ret, out = ops.threshold(image, 0, 255, ops.THRESH_BINARY_INV | ops.THRESH_TRIANGLE)
    ref_ret, ref = cv2.threshold(image, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_TRIANGLE)
    assert float(ret) == ref_ret
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("mode", MODES)
def test_triangle_per_image_in_a_batch(mode):
  images = _grays()
  fn = lambda x: ops.threshold(x, 0, 255, ops.THRESH_TOZERO | ops.THRESH_TRIANGLE)
  rets = []
  for image, (ret, out) in zip(images, run(mode, fn, images)):
    ref_ret, ref = cv2.threshold(image, 0, 255, cv2.THRESH_TOZERO | cv2.THRESH_TRIANGLE)
    assert float(ret) == ref_ret
    np.testing.assert_array_equal(out, ref)
    rets.append(float(ret))
  assert len(set(rets)) > 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", [ops.ADAPTIVE_THRESH_MEAN_C, ops.ADAPTIVE_THRESH_GAUSSIAN_C])
def test_adaptive_threshold_exact(mode, method):
  images = _grays()[:2]
  for kind in (ops.THRESH_BINARY, ops.THRESH_BINARY_INV):
    for block, c in ((11, 2), (25, -3.5), (3, 0.5)):
      fn = lambda x, b=block, c=c, k=kind: ops.adaptive_threshold(x, 255, method, k, b, c)
      for image, out in zip(images, run(mode, fn, images)):
        np.testing.assert_array_equal(out, cv2.adaptiveThreshold(image, 255, method, kind,
                                                                 block, c))


@pytest.mark.parametrize("mode", MODES)
def test_equalize_hist_exact(mode):
  images = _grays()
  for image, out in zip(images, run(mode, ops.equalize_hist, images)):
    np.testing.assert_array_equal(out, cv2.equalizeHist(image))


def test_equalize_hist_constant_and_full_size():
  const = np.full((8, 8), 77, np.uint8)
  np.testing.assert_array_equal(ops.equalize_hist(const), cv2.equalizeHist(const))
  full = data.camera()
  equalize = jax.jit(ops.equalize_hist)
  np.testing.assert_array_equal(equalize(full), cv2.equalizeHist(full))
  image = photo("astronaut")  # each channel on its own
  out = equalize(image)
  for c in range(3):
    np.testing.assert_array_equal(out[..., c], cv2.equalizeHist(np.ascontiguousarray(image[..., c])))
  flt = equalize(photo("moon", gray=True).astype(np.float32) / 255)
  np.testing.assert_allclose(flt * 255, cv2.equalizeHist(photo("moon", gray=True)), atol=1e-3)


@pytest.mark.parametrize("mode", MODES)
def test_calc_hist_exact(mode):
  images = [photo("astronaut"), photo("coffee")]
  mask = (np.add.outer(np.arange(96), np.arange(128)) > 100).astype(np.uint8)
  fn = lambda x: (ops.calc_hist(x), ops.calc_hist(x, 10, (20, 200)), ops.calc_hist(x, 16, mask=mask))
  for image, (full, ranged, masked) in zip(images, run(mode, fn, images)):
    for c in range(3):
      np.testing.assert_array_equal(full[c], cv2.calcHist([image], [c], None, [256], [0, 256]).ravel())
      np.testing.assert_array_equal(ranged[c], cv2.calcHist([image], [c], None, [10], [20, 200]).ravel())
      np.testing.assert_array_equal(masked[c], cv2.calcHist([image], [c], mask, [16], [0, 256]).ravel())


def test_calc_hist_float_matches_numpy():
  image = photo("camera", gray=True).astype(np.float32) / 255
  np.testing.assert_array_equal(ops.calc_hist(image, 10), np.histogram(image, 10, (0, 1))[0])


@pytest.mark.parametrize("mode", MODES)
def test_convert_scale_abs_exact(mode):
  images = _grays()[:2]
  for alpha, beta in ((1.5, 10), (0.7, -20.5), (-1, 0)):
    fn = lambda x, a=alpha, b=beta: ops.convert_scale_abs(x, a, b)
    for image, out in zip(images, run(mode, fn, images)):
      np.testing.assert_array_equal(out, cv2.convertScaleAbs(image, alpha=alpha, beta=beta))


@pytest.mark.parametrize("mode", MODES)
def test_contrast_stretch_min_max_matches_normalize(mode):
  images = [photo(n, gray=True) for n in ("page", "moon", "camera")]
  for image, out in zip(images, run(mode, ops.contrast_stretch, images)):
    ref = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX)
    diff = np.abs(out.astype(int) - ref)
    # OpenCV scales with a fused float multiply-add; exact .5 ties round either way.
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99


def test_contrast_stretch_percentile():
  image = photo("moon", gray=True)
  lo, hi = np.percentile(image, (2, 98))
  ref = np.clip(np.rint((image - lo) * (255 / (hi - lo))), 0, 255)
  out = ops.contrast_stretch(image, 2, 98)
  assert np.abs(np.asarray(out, int) - ref).max() <= 1
  ref_sk = exposure.rescale_intensity(image, in_range=(lo, hi), out_range=(0, 255))
  assert np.abs(np.asarray(out, float) - ref_sk).max() <= 1
  flt = ops.contrast_stretch(image.astype(np.float32) / 255)
  assert float(flt.min()) == 0 and float(flt.max()) == 1


def test_gamma_negative_and_bitwise():
  image = photo("camera", gray=True)
  for gamma in (0.5, 2.2):
    ref = exposure.adjust_gamma(image, gamma)
    assert np.abs(np.asarray(ops.adjust_gamma(image, gamma), int) - ref).max() <= 1
  np.testing.assert_array_equal(ops.negative(image), cv2.bitwise_not(image))
  np.testing.assert_allclose(ops.negative(image / 255.0), 1 - image / 255.0)
  other = photo("coins", gray=True)
  mask = (image > 100).astype(np.uint8)
  for ours, theirs in ((ops.bitwise_and, cv2.bitwise_and), (ops.bitwise_or, cv2.bitwise_or),
                       (ops.bitwise_xor, cv2.bitwise_xor)):
    np.testing.assert_array_equal(ours(image, other), theirs(image, other))
    np.testing.assert_array_equal(ours(image, other, mask), theirs(image, other, mask=mask))
  np.testing.assert_array_equal(ops.bitwise_not(image, mask), cv2.bitwise_not(image, mask=mask))
  rgb = photo("astronaut")
  np.testing.assert_array_equal(ops.bitwise_and(rgb, rgb[::-1], mask),
                                cv2.bitwise_and(rgb, np.ascontiguousarray(rgb[::-1]), mask=mask))


def test_soft_threshold_is_differentiable_and_tends_to_binary():
  x = jnp.linspace(0.0, 1.0, 101)[:, None]
  hard = ops.threshold(x, 0.5, 1.0, ops.THRESH_BINARY)[1]
  soft = ops.soft_threshold(x, 0.5, 1.0, temperature=1e-4)
  np.testing.assert_allclose(soft[np.abs(x - 0.5) > 0.01], hard[np.abs(x - 0.5) > 0.01], atol=1e-6)
  grad = jax.jit(jax.grad(lambda t: ops.soft_threshold(x, t, 1.0, 0.05).sum()))(0.5)
  assert float(grad) < 0  # raising the threshold removes foreground


@pytest.mark.parametrize("call, error, match", [
    (lambda x: ops.threshold(x, 1, 255, 7), ValueError, "type=7"),
    (lambda x: ops.threshold(x / 255.0, 0, 1, ops.THRESH_OTSU), TypeError, "uint8"),
    (lambda x: ops.threshold(x / 255.0, 0, 1, ops.THRESH_TRIANGLE), TypeError,
     "THRESH_TRIANGLE needs a uint8"),
    (lambda x: ops.threshold(x, 0, 255, ops.THRESH_OTSU | ops.THRESH_TRIANGLE), ValueError,
     "choose one"),
    (lambda x: ops.adaptive_threshold(x, 255, 0, 0, 4, 2), ValueError, "block_size"),
    (lambda x: ops.adaptive_threshold(x, 255, 2, 0, 5, 2), ValueError, "adaptive_method=2"),
    (lambda x: ops.contrast_stretch(x, 50, 10), ValueError, "percentile"),
    (lambda x: ops.calc_hist(x, 0), ValueError, "bins"),
    (lambda x: ops.bitwise_and(x, x / 2.0), TypeError, "src2"),
])
def test_bad_arguments(call, error, match):
  with pytest.raises(error, match=match):
    call(photo("camera", gray=True))
