"""cvx.ops.filters against cv2 on photographs, and the seeds' worked examples."""
import re

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from cvx import ops
from tests.ops.photos import MODES, photo, run

BORDERS = [ops.BORDER_CONSTANT, ops.BORDER_REPLICATE, ops.BORDER_REFLECT, ops.BORDER_REFLECT_101]


def _pair():
  return [photo("camera", gray=True), photo("astronaut")[..., 0].copy()]


# Seed 000: 5×5 image * [[1, 0, −1]]×3 (no padding) and the zero-padded sharpen example.
SEED_IMAGE = np.array([[7, 2, 3, 3, 8], [4, 5, 3, 8, 4], [3, 3, 2, 8, 4], [2, 8, 7, 2, 7],
                       [5, 4, 4, 5, 4]], np.float32)
SEED_KERNEL = np.array([[1, 0, -1]] * 3, np.float32)
SHARPEN_IMAGE = np.array([[60, 113, 56, 139, 85], [73, 121, 54, 84, 128], [131, 99, 70, 129, 127],
                          [80, 57, 115, 69, 124], [104, 126, 123, 95, 130]], np.float32)
# The seed prints the kernel as [[0,−1,0],[1,5,−1],[1,−1,0]], but its output (and its own
# first column) is the classic sharpen kernel; the printed minus signs were lost.
SHARPEN_KERNEL = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32)
# The slide's output; 4 of its entries are arithmetic slips, fixed below (e.g. at [3, 3]:
# 5·69 − 129 − 95 − 115 − 124 = −118, printed as 128).
SHARPEN_SLIDE = np.array([[114, 328, -26, 470, 158], [53, 266, -61, -30, 344],
                          [403, 116, -47, 295, 244], [108, -135, 256, 128, 344],
                          [314, 346, 279, 153, 464]], np.float32)
SHARPEN_OUT = SHARPEN_SLIDE.copy()
SHARPEN_OUT[2, 4], SHARPEN_OUT[3, 3], SHARPEN_OUT[3, 4], SHARPEN_OUT[4, 4] = 254, -118, 294, 431


@pytest.mark.parametrize("mode", ("eager", "jit"))
def test_seed_convolution_examples(mode):
  f = jax.jit(ops.filter2d, static_argnames=("border", "padding", "stride")) if mode == "jit" else ops.filter2d
  np.testing.assert_array_equal(f(SEED_IMAGE, SEED_KERNEL, padding=0),
                                [[6, -9, -8], [-3, -2, -3], [-3, 0, -2]])
  out = f(SHARPEN_IMAGE, SHARPEN_KERNEL, padding=1)
  np.testing.assert_array_equal(out[0], [114, 328, -26, 470, 158])
  np.testing.assert_array_equal(out, SHARPEN_OUT)
  assert (np.asarray(out) != SHARPEN_SLIDE).sum() == 4
  # Same thing through OpenCV's border mode: zero padding is BORDER_CONSTANT.
  np.testing.assert_array_equal(f(SHARPEN_IMAGE, SHARPEN_KERNEL, ops.BORDER_CONSTANT), SHARPEN_OUT)


@pytest.mark.parametrize("size, kernel, stride, padding, expected", [
    (5, 3, 1, 0, 3), (7, 3, 1, 0, 5), (5, 3, 1, 1, 5), (6, 2, 2, 0, 3), (224, 11, 4, 2, 55),
    (227, 11, 4, 0, 55)])
def test_output_size_formula(size, kernel, stride, padding, expected):
  assert (size - kernel + 2 * padding) // stride + 1 == expected  # seed 000's formula
  out = ops.filter2d(np.ones((size, size), np.float32), np.ones((kernel, kernel)),
                     stride=stride, padding=padding)
  assert out.shape == (expected, expected)


def test_seed_sobel_on_step_image():
  # Seed 001: a 0/255 step and the kernel [[1,2,1],[0,0,0],[−1,−2,−1]] (valid correlation).
  step = np.array([[0] * 5] * 3 + [[255] * 5] * 2, np.uint8)
  seed_kernel = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float32)
  valid = ops.filter2d(step, seed_kernel, ddepth=np.float32, padding=0)
  np.testing.assert_array_equal(valid, [[0, 0, 0], [-1020] * 3, [-1020] * 3])
  # OpenCV's dy points down, so Sobel(dy=1) is the same kernel negated.
  dy = ops.sobel(step, 0, 1)
  np.testing.assert_array_equal(dy[1:4, 1:4], -np.asarray(valid))
  np.testing.assert_array_equal(dy, cv2.Sobel(step, cv2.CV_32F, 0, 1))
  np.testing.assert_array_equal(ops.sobel(step, 1, 0), np.zeros((5, 5)))


@pytest.mark.parametrize("mode", MODES)
def test_filter2d_matches_opencv(mode):
  images = _pair()
  kernel = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
  sharp = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32)
  fn = lambda x: ([ops.filter2d(x, kernel, b, np.float32) for b in BORDERS],
                  ops.filter2d(x, sharp), ops.sharpen(x))
  for image, (floats, sharpened, sharpened2) in zip(images, run(mode, fn, images)):
    for border, out in zip(BORDERS, floats):
      ref = cv2.filter2D(image, cv2.CV_32F, kernel, borderType=border)
      np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-3)
    ref = cv2.filter2D(image, -1, sharp)  # uint8, saturated: exact
    np.testing.assert_array_equal(sharpened, ref)
    np.testing.assert_array_equal(sharpened2, ref)


def test_filter2d_wrap_border_and_color():
  image = photo("coffee")
  kernel = np.arange(9, dtype=np.float32).reshape(3, 3) - 4
  padded = cv2.copyMakeBorder(image, 1, 1, 1, 1, cv2.BORDER_WRAP).astype(np.float32)
  ref = np.stack([cv2.filter2D(padded[..., c], -1, kernel)[1:-1, 1:-1] for c in range(3)], -1)
  np.testing.assert_allclose(ops.filter2d(image, kernel, ops.BORDER_WRAP, np.float32), ref)


@pytest.mark.parametrize("mode", MODES)
def test_gaussian_blur_uint8_exact(mode):
  images = [photo("astronaut"), photo("chelsea")]
  cases = [((5, 5), 0, 0), ((7, 3), 2.0, 0.7), ((0, 0), 1.5, 0)]
  fn = lambda x: [ops.gaussian_blur(x, k, sx, sy) for k, sx, sy in cases]
  for image, outs in zip(images, run(mode, fn, images)):
    for (k, sx, sy), out in zip(cases, outs):
      np.testing.assert_array_equal(out, cv2.GaussianBlur(image, k, sx, sigmaY=sy), err_msg=str(k))


def test_gaussian_blur_uint8_exact_more_sizes():
  # OpenCV's fixed tables (3, 5, 7, 9), its sigma-from-ksize rule (11, 15) and explicit sigmas.
  cases = [((3, 3), 0, 0), ((7, 7), 0, 0), ((9, 9), 0, 0), ((11, 11), 0, 0), ((15, 15), 0, 0),
           ((5, 5), 1.3, 0), ((0, 0), 0.8, 2.5)]
  fn = jax.jit(lambda x: [ops.gaussian_blur(x, k, sx, sy) for k, sx, sy in cases])
  for image in (photo("coffee"), photo("coins", gray=True)):
    outs = fn(image)
    for (k, sx, sy), out in zip(cases, outs):
      np.testing.assert_array_equal(out, cv2.GaussianBlur(image, k, sx, sigmaY=sy), err_msg=str(k))


def test_gaussian_blur_uint8_exact_borders_and_long_kernels():
  # Every border on RGB (merged W·C axis), and a kernel past _SHIFTED_TAPS.
  image = photo("coffee")[:120, :100]
  for border in BORDERS + [ops.BORDER_WRAP]:
    for k in ((5, 5), (3, 7)):
      np.testing.assert_array_equal(ops.gaussian_blur(image, k, 0, border=border),
                                    cv2.GaussianBlur(image, k, 0, borderType=border),
                                    err_msg=f"{k} {border}")
  np.testing.assert_array_equal(ops.gaussian_blur(image, (51, 1), 9.0, 0.5),
                                cv2.GaussianBlur(image, (51, 1), 9.0, sigmaY=0.5))


def test_gaussian_blur_uint8_exact_on_images_near_the_kernel_size():
  # Sides below, at and just above the window: whole-image padding, then border strips
  # that meet or overlap in the middle.
  rng = np.random.default_rng(3)
  for k in (5, 7):
    for h, w in ((k - 2, k + 1), (k - 1, k), (k, k + 2), (k + 1, k - 1)):
      image = rng.integers(0, 256, (h, w, 3), np.uint8)
      for border in BORDERS + [ops.BORDER_WRAP]:
        np.testing.assert_array_equal(ops.gaussian_blur(image, k, 0, border=border),
                                      cv2.GaussianBlur(image, (k, k), 0, borderType=border),
                                      err_msg=f"{k} {h}×{w} {border}")


def test_uint8_separable_filters_run_native_kernels_on_cpu_and_equal_xla(monkeypatch):
  """On CPU the 8-bit Gaussian (CvxSeparableU8) and the float32 and int16
  Sobel and Scharr of uint8 images (CvxSeparableU8F32, CvxSeparableU8I16:
  where int16 cannot overflow) are native calls; with CVX_NATIVE_OPS=0 they
  are XLA's, bit-equal, for square kernels summed in 16 and 32 bits, other
  shapes, every border, RGB, jitted and vmapped."""
  def filters():  # a new function each time: traces are cached per function
    return lambda x: (
        [ops.gaussian_blur(x, k, 0, border=border)
         for k in ((3, 3), (5, 5), (7, 7), (5, 3)) for border in BORDERS] +
        [ops.sobel(x, dx, dy, k, border=border)
         for dx, dy, k in ((1, 0, 3), (0, 2, 5), (1, 1, 7), (1, 0, 1)) for border in BORDERS] +
        [ops.scharr(x, 0, 1), ops.scharr(x, 1, 0, ddepth=np.int16)] +
        [ops.sobel(x, dx, dy, k, border=border, ddepth=np.int16)
         for dx, dy, k in ((1, 0, 3), (1, 1, 5), (2, 0, 7)) for border in BORDERS])

  image = np.random.default_rng(4).integers(0, 256, (2, 23, 19, 3), np.uint8)
  jaxpr = str(jax.make_jaxpr(filters())(image))
  assert re.search(r"target_name=CvxSeparableU8\b", jaxpr)
  assert "target_name=CvxSeparableU8F32" in jaxpr
  assert jaxpr.count("target_name=CvxSeparableU8I16") == 1 + 2 * len(BORDERS)  # not 7×7
  native = jax.jit(filters())(image)
  vmapped = jax.jit(jax.vmap(filters()))(image[:, None])
  monkeypatch.setenv("CVX_NATIVE_OPS", "0")
  assert "CvxSeparableU8" not in str(jax.make_jaxpr(filters())(image))
  for got, batched, want in zip(native, vmapped, jax.jit(filters())(image)):
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(batched[:, 0], want)


def test_gaussian_blur_float_borders_and_kernel():
  image = photo("coffee").astype(np.float32) / 255
  for border in BORDERS:
    np.testing.assert_allclose(ops.gaussian_blur(image, 5, 1.1, border=border),
                               cv2.GaussianBlur(image, (5, 5), 1.1, borderType=border), atol=1e-6)
  np.testing.assert_allclose(ops.gaussian_blur(image, 0, 1.5),
                             cv2.GaussianBlur(image, (0, 0), 1.5), atol=1e-6)  # 4σ rule for float
  for n, sigma in ((3, 0), (5, 0), (7, 0), (9, 0), (11, 0), (5, 1.7), (15, 3.0)):
    np.testing.assert_allclose(ops.get_gaussian_kernel(n, sigma),
                               cv2.getGaussianKernel(n, sigma, cv2.CV_64F).ravel(), atol=1e-15)


@pytest.mark.parametrize("mode", MODES)
def test_blur_and_box_filter(mode):
  images = [photo("astronaut"), photo("coffee")]
  sizes = [3, 5, (3, 5), (2, 3), 6]
  fn = lambda x: ([ops.blur(x, k) for k in sizes], ops.blur(x, 4),
                  ops.box_filter(x, 3, normalize=False, ddepth=np.float32))
  for image, (exact, biased, sums) in zip(images, run(mode, fn, images)):
    for k, out in zip(sizes, exact):
      np.testing.assert_array_equal(out, cv2.blur(image, (k, k) if isinstance(k, int) else k))
    # Window areas that are powers of two: OpenCV 5.0 rounds (sum + n/2 + 1) // n (see
    # box_filter's docstring); we round half up, so we are at most 1 lower.
    diff = cv2.blur(image, (4, 4)).astype(int) - biased
    assert set(np.unique(diff)) <= {0, 1}
    np.testing.assert_array_equal(sums, cv2.boxFilter(image, cv2.CV_32F, (3, 3), normalize=False))


def test_opencv_blur_bias_we_do_not_copy():
  zeros = np.zeros((8, 40), np.uint8)
  assert cv2.blur(zeros, (2, 1)).max() == 1  # the documented OpenCV 5.0 quirk
  assert int(ops.blur(zeros, (2, 1)).max()) == 0


@pytest.mark.parametrize("mode", MODES)
def test_median_blur_exact(mode):
  images = [photo("astronaut"), photo("chelsea")]
  fn = lambda x: [ops.median_blur(x, k) for k in (3, 5)]
  for image, outs in zip(images, run(mode, fn, images)):
    for k, out in zip((3, 5), outs):
      np.testing.assert_array_equal(out, cv2.medianBlur(image, k))
  gray = photo("coins", gray=True)
  np.testing.assert_array_equal(ops.median_blur(gray, 7), cv2.medianBlur(gray, 7))


@pytest.mark.parametrize("mode", MODES)
def test_bilateral_filter(mode):
  images = [photo("astronaut"), photo("coffee")]
  fn = lambda x: (ops.bilateral_filter(x, 9, 75, 75), ops.bilateral_filter(x, 5, 50, 5))
  for image, outs in zip(images, run(mode, fn, images)):
    for out, args in zip(outs, ((9, 75, 75), (5, 50, 5))):
      # Float sums in another order: a pixel in ~10^4 rounds the other way.
      diff = np.abs(out.astype(int) - cv2.bilateralFilter(image, *args))
      assert diff.max() <= 1 and (diff == 0).mean() > 0.999
  # OpenCV 5.0's single-channel radius-2 path truncates instead of rounding: ±1 there.
  gray = photo("camera", gray=True)
  diff = np.abs(np.asarray(ops.bilateral_filter(gray, 5, 50, 5), int) - cv2.bilateralFilter(gray, 5, 50, 5))
  assert diff.max() <= 1
  diff = np.abs(np.asarray(ops.bilateral_filter(gray, 7, 40, 5), int) - cv2.bilateralFilter(gray, 7, 40, 5))
  assert diff.max() <= 1 and (diff == 0).mean() > 0.999
  flt = images[0].astype(np.float32) / 255
  np.testing.assert_allclose(ops.bilateral_filter(flt, 5, 0.2, 3), cv2.bilateralFilter(flt, 5, 0.2, 3),
                             atol=1e-5)


SOBEL_CASES = [(1, 0, 3), (0, 1, 3), (1, 1, 3), (2, 0, 5), (1, 0, 1), (0, 2, 1), (1, 0, 7),
               (1, 2, 5), (1, 0, -1), (0, 1, -1)]


@pytest.mark.parametrize("mode", MODES)
def test_derivatives_exact(mode):
  images = [photo("coins", gray=True), photo("camera", gray=True)]
  fn = lambda x: ([ops.sobel(x, dx, dy, k) for dx, dy, k in SOBEL_CASES],
                  [ops.sobel(x, 1, 1, 3, border=b) for b in BORDERS],
                  [ops.laplacian(x, k) for k in (1, 3, 5, 7)],
                  ops.scharr(x, 0, 1, 0.5, 3.0), ops.sobel(x, 1, 0, 3, 2.0, -1.0))
  for image, (sob, bord, lap, sch, scaled) in zip(images, run(mode, fn, images)):
    for (dx, dy, k), out in zip(SOBEL_CASES, sob):
      assert out.dtype == np.float32
      np.testing.assert_array_equal(out, cv2.Sobel(image, cv2.CV_32F, dx, dy, ksize=k))
    for b, out in zip(BORDERS, bord):
      np.testing.assert_array_equal(out, cv2.Sobel(image, cv2.CV_32F, 1, 1, borderType=b))
    for k, out in zip((1, 3, 5, 7), lap):
      np.testing.assert_array_equal(out, cv2.Laplacian(image, cv2.CV_32F, ksize=k))
    np.testing.assert_array_equal(sch, cv2.Scharr(image, cv2.CV_32F, 0, 1, scale=0.5, delta=3))
    np.testing.assert_array_equal(scaled, cv2.Sobel(image, cv2.CV_32F, 1, 0, scale=2, delta=-1))


@pytest.mark.parametrize("mode", MODES)
def test_int16_derivatives_saturate_like_opencv_cv_16s(mode):
  images = [photo("astronaut"), photo("coffee")]
  fn = lambda x: ([ops.sobel(x, dx, dy, k, ddepth=np.int16) for dx, dy, k in SOBEL_CASES],
                  ops.sobel(x, 1, 1, 5, 0.5, 3.0, ddepth=np.int16),
                  ops.scharr(x, 1, 0, ddepth=np.int16))
  saturated = 0
  for image, (sob, scaled, sch) in zip(images, run(mode, fn, images)):
    for (dx, dy, k), out in zip(SOBEL_CASES, sob):
      assert out.dtype == np.int16
      want = cv2.Sobel(image, cv2.CV_16S, dx, dy, ksize=k)
      np.testing.assert_array_equal(out, want)
      saturated += np.isin(want, [-32768, 32767]).sum()
    np.testing.assert_array_equal(scaled, cv2.Sobel(image, cv2.CV_16S, 1, 1, ksize=5,
                                                    scale=0.5, delta=3))
    np.testing.assert_array_equal(sch, cv2.Scharr(image, cv2.CV_16S, 1, 0))
  assert saturated > 0  # ksize 7 exceeds int16 on these photographs.


def test_laplacian_of_gaussian_matches_opencv_composition():
  image = photo("coins", gray=True)
  for sigma, ksize in ((1.5, 0), (1.0, 7)):
    blurred = cv2.GaussianBlur(image.astype(np.float32), (ksize, ksize), sigma)
    np.testing.assert_allclose(ops.laplacian_of_gaussian(image, sigma, ksize),
                               cv2.Laplacian(blurred, cv2.CV_32F), atol=2e-3)


def test_linear_filters_are_differentiable():
  x = jnp.asarray(photo("camera", gray=True)[40:48, 40:48] / 255.0, jnp.float32)
  k = jnp.asarray(np.random.default_rng(1).normal(size=(3, 3)), jnp.float32)
  check_grads(lambda v: ops.gaussian_blur(v, 5, 1.0), (x,), order=1, modes=["rev"])
  check_grads(lambda kk: ops.filter2d(x, kk), (k,), order=1, modes=["rev"], atol=1e-2, rtol=1e-2)
  check_grads(lambda v: ops.sobel(v, 1, 0), (x,), order=1, modes=["rev"])
  g = jax.grad(lambda v: ops.bilateral_filter(v, 5, 0.2, 2.0).sum())(x)
  assert np.isfinite(g).all() and np.abs(g).sum() > 0


@pytest.mark.parametrize("call, match", [
    (lambda x: ops.gaussian_blur(x, 4, 0), "ksize must be odd"),
    (lambda x: ops.gaussian_blur(x, 5, -1.0), "sigma"),
    (lambda x: ops.gaussian_blur(x, 0, 0), "sigma must be > 0"),
    (lambda x: ops.gaussian_blur(x, 3, 0, border=9), "border=9"),
    (lambda x: ops.median_blur(x, 4), "ksize"),
    (lambda x: ops.sobel(x, 0, 0), "dx \\+ dy"),
    (lambda x: ops.sobel(x, 1, 0, ksize=4), "ksize"),
    (lambda x: ops.sobel(x, 3, 0, ksize=3), "order 3"),
    (lambda x: ops.scharr(x, 1, 1), "dx \\+ dy == 1"),
    (lambda x: ops.sobel(x, 1, 0, ddepth=np.uint8), "ddepth must be one of"),
    (lambda x: ops.sobel(x.astype(np.float32), 1, 0, ddepth=np.int16),
     r"ddepth must be one of \['float32'\] for float32 input"),
    (lambda x: ops.laplacian(x, 2), "ksize"),
    (lambda x: ops.filter2d(x, np.ones(3)), "2-D"),
    (lambda x: ops.filter2d(x, np.ones((3, 3)), stride=0), "stride"),
    (lambda x: ops.filter2d(x, np.ones((3, 3)), ddepth=np.int16), "ddepth"),
])
def test_bad_arguments(call, match):
  with pytest.raises(ValueError, match=match):
    call(photo("camera", gray=True))
