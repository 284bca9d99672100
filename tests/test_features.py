"""cvx.features against scikit-image and OpenCV on photographs; jit/vmap equal eager."""
import cv2
import jax
import numpy as np
import pytest
from skimage import feature

from cvx import features, ops
from tests.ops.photos import COLOR, GRAY, MODES, photo, run

HOG_SETTINGS = [
    dict(),
    dict(orientations=8, pixels_per_cell=(7, 8), cells_per_block=(2, 2), block_norm="L1"),
    dict(orientations=12, pixels_per_cell=(6, 10), cells_per_block=(2, 3), block_norm="L2"),
    dict(orientations=6, pixels_per_cell=(5, 5), cells_per_block=(1, 1), block_norm="L1-sqrt"),
]


def _images():
  return [(photo(n, gray=True), True) for n in GRAY] + [(photo(n), False) for n in COLOR]


@pytest.mark.parametrize("kwargs", HOG_SETTINGS, ids=lambda k: str(sorted(k.items())))
def test_hog_matches_skimage(kwargs):
  for image, gray in _images():
    ref = feature.hog(image, channel_axis=None if gray else -1, **kwargs)
    out = features.hog(image, **kwargs)
    assert out.shape == ref.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)


def test_hog_float_and_unflattened():
  image = photo("coffee").astype(np.float32) / 255
  ref = feature.hog(image, pixels_per_cell=(6, 6), cells_per_block=(2, 2),
                    channel_axis=-1, feature_vector=False)
  out = features.hog(image, pixels_per_cell=(6, 6), cells_per_block=(2, 2),
                     feature_vector=False)
  assert out.shape == ref.shape
  np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)


def test_hog_transform_sqrt_matches_skimage_float32():
  # skimage takes float32 input through float32 arithmetic, as we do.
  for name in GRAY:
    image = photo(name, gray=True).astype(np.float32)
    ref = feature.hog(image, transform_sqrt=True, cells_per_block=(2, 2))
    out = features.hog(image, transform_sqrt=True, cells_per_block=2)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)


def _every_feature(x):
  return (features.raw_pixels(x), features.hog(x, pixels_per_cell=(8, 8), cells_per_block=2),
          features.color_histogram(x, 16, normalize=True), features.hsv_histogram(x, (6, 4, 4)),
          features.gradient_histogram(x, grid=(3, 2)))


@pytest.mark.parametrize("mode", MODES)
def test_transforms_equal_eager(mode):
  images = [photo(n) for n in COLOR]
  for image, outs in zip(images, run(mode, _every_feature, images)):
    for out, ref in zip(outs, _every_feature(image)):
      np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-7)


def test_batch_shapes():
  one = jax.ShapeDtypeStruct(photo("coffee").shape, np.uint8)
  batch = jax.ShapeDtypeStruct((len(COLOR),) + one.shape, np.uint8)
  outs, ones = jax.eval_shape(_every_feature, batch), jax.eval_shape(_every_feature, one)
  for out, one in zip(outs, ones):
    assert out.shape == (len(COLOR),) + one.shape and out.dtype == np.float32
  gray = jax.ShapeDtypeStruct((4,) + photo("camera", gray=True).shape + (1,), np.uint8)
  assert jax.eval_shape(features.hog, gray).shape == (4, feature.hog(photo("camera", gray=True)).size)


def test_raw_pixels():
  image = photo("astronaut")
  np.testing.assert_allclose(features.raw_pixels(image),
                             (image.astype(np.float32) / 255).ravel(), rtol=1e-7)
  flt = image.astype(np.float32) / 255
  np.testing.assert_array_equal(features.raw_pixels(flt), flt.ravel())


@pytest.mark.parametrize("bins, value_range", [(256, None), (32, None), (10, (20, 200))])
def test_color_histogram_equals_calc_hist(bins, value_range):
  for image, gray in _images():
    out = np.asarray(features.color_histogram(image, bins, value_range))
    lo, hi = value_range or (0, 256)
    channels = [0] if gray else [0, 1, 2]
    ref = np.concatenate([cv2.calcHist([image], [c], None, [bins], [lo, hi]).ravel()
                          for c in channels])
    np.testing.assert_array_equal(out, ref)
  norm = features.color_histogram(photo("coffee"), 16, normalize=True).reshape(3, 16)
  np.testing.assert_allclose(norm.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("bins", [(8, 8, 8), (30, 7, 5), (180, 1, 1), 4])
def test_hsv_histogram_equals_calc_hist(bins):
  nb = [bins] * 3 if isinstance(bins, int) else list(bins)
  for name in COLOR + ("rocket", "hubble_deep_field"):
    image = photo(name)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    ref = cv2.calcHist([hsv], [0, 1, 2], None, nb, [0, 180, 0, 256, 0, 256]).ravel()
    np.testing.assert_array_equal(features.hsv_histogram(image, bins), ref)


def test_hsv_histogram_float_matches_numpy():
  # Float HSV (tested against cv2 in tests/ops) rounds S and H in its last
  # bits, so pixels on a rational bin edge (S = 1/2) may fall either way;
  # compare with numpy on our own HSV values.
  for name in COLOR:
    image = photo(name).astype(np.float32) / 255
    hsv = np.asarray(ops.rgb_to_hsv(image)).reshape(-1, 3)
    ref, _ = np.histogramdd(hsv, (8, 4, 4), ((0, 360), (0, 1), (0, 1)))
    out = np.asarray(features.hsv_histogram(image, (8, 4, 4)))
    assert out.sum() == len(hsv) and np.abs(out - ref.ravel()).sum() <= 2
    normalized = features.hsv_histogram(image, (8, 4, 4), normalize=True)
    np.testing.assert_allclose(normalized, out / len(hsv), rtol=1e-6)


def _sobel_reference(image, ksize=3):
  """Sobel (dy, dx) of the channel of largest magnitude, float64."""
  x = image if image.ndim == 3 else image[..., None]
  dx = np.stack([cv2.Sobel(x[..., c], cv2.CV_32F, 1, 0, ksize=ksize)
                 for c in range(x.shape[-1])], -1).astype(np.float64)
  dy = np.stack([cv2.Sobel(x[..., c], cv2.CV_32F, 0, 1, ksize=ksize)
                 for c in range(x.shape[-1])], -1).astype(np.float64)
  best = np.argmax(dx * dx + dy * dy, axis=-1)[..., None]
  pick = lambda g: np.take_along_axis(g, best, -1)[..., 0]
  return pick(dy), pick(dx)


def _orientation_reference(image, orientations, grid, signed, ksize=3):
  dy, dx = _sobel_reference(image, ksize)
  period = 360.0 if signed else 180.0
  angle = np.degrees(np.arctan2(dy, dx)) % period
  bins = np.minimum(np.floor(angle / (period / orientations)).astype(int), orientations - 1)
  h, w = dy.shape
  cell_y = np.arange(h)[:, None] * grid[0] // h
  cell_x = np.arange(w)[None, :] * grid[1] // w
  hist = np.zeros((*grid, orientations))
  np.add.at(hist, (np.broadcast_to(cell_y, (h, w)), np.broadcast_to(cell_x, (h, w)), bins),
            np.hypot(dx, dy))
  return (hist / hist.sum()).ravel()


@pytest.mark.parametrize("orientations, grid, signed, ksize",
                         [(9, (4, 4), False, 3), (8, (3, 5), False, 3), (8, (2, 2), True, 3),
                          (12, (1, 1), True, 5)])
def test_orientation_histogram_matches_opencv_sobel(orientations, grid, signed, ksize):
  for image, _ in _images():
    out = features.orientation_histogram(image, orientations, grid, signed, ksize)
    ref = _orientation_reference(image, orientations, grid, signed, ksize)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-7)


def test_magnitude_histogram_matches_opencv_sobel():
  for image, _ in _images():
    dy, dx = _sobel_reference(image)
    top = 4 * 255 * np.sqrt(2)
    index = np.minimum(np.floor(np.hypot(dx, dy) / top * 8).astype(int), 7)
    ref = np.bincount(index.ravel(), minlength=8) / index.size
    np.testing.assert_allclose(features.magnitude_histogram(image, 8), ref, atol=1e-6)
  out = features.gradient_histogram(photo("coffee"), 9, (4, 4), 8)
  assert out.shape == (4 * 4 * 9 + 8,)
  np.testing.assert_allclose(out[-8:], features.magnitude_histogram(photo("coffee"), 8))


def test_flat_image_gives_zero_orientations():
  flat = np.full(photo("camera", gray=True).shape, 7, np.uint8)
  np.testing.assert_array_equal(jax.jit(features.orientation_histogram)(flat), 0.0)
  np.testing.assert_array_equal(jax.jit(features.hog)(flat), 0.0)
  assert float(jax.jit(features.magnitude_histogram)(flat)[0]) == 1.0


def test_hog_is_differentiable_on_float_images():
  image = photo("camera", gray=True).astype(np.float32) / 255
  grad = jax.jit(jax.grad(lambda x: features.hog(x, cells_per_block=2).sum()))(image)
  assert np.isfinite(grad).all() and np.abs(grad).max() > 0


@pytest.mark.parametrize("call, match", [
    (lambda x: features.hog(x[:20, :20]), "too small"),
    (lambda x: features.hog(x, block_norm="L3"), "block_norm='L3'"),
    (lambda x: features.hog(x, orientations=0), "orientations"),
    (lambda x: features.hog(x, pixels_per_cell=(0, 8)), "pixels_per_cell"),
    (lambda x: features.hog(x[0]), "H×W"),
    (lambda x: features.hsv_histogram(x), "RGB"),
    (lambda x: features.hsv_histogram(np.dstack([x] * 3), (8, 8)), "bins"),
    (lambda x: features.color_histogram(x, 0), "bins"),
    (lambda x: features.orientation_histogram(x, grid=(200, 2)), "grid"),
    (lambda x: features.orientation_histogram(x, ksize=4), "ksize"),
    (lambda x: features.magnitude_histogram(x, bins=-1), "bins"),
    (lambda x: features.magnitude_histogram(x, max_magnitude=-1.0), "max_magnitude"),
])
def test_bad_arguments_raise_value_error(call, match):
  with pytest.raises(ValueError, match=match):
    call(photo("camera", gray=True))
