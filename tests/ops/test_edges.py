"""cvx.ops.edges: Canny bit-exact with cv2.Canny, gradients, LoG zero crossings."""
import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvx import ops
from tests.ops.photos import GRAY, MODES, photo, run

CANNY_CASES = [(50, 150, 3, False), (100, 200, 3, True), (20, 60, 3, False),
               (200, 100, 5, False), (300, 900, 5, True), (1000, 3000, 7, False),
               (2000, 5000, 7, True)]


def _check_canny(images, outs, cases):
  for image, per_case in zip(images, outs):
    for (t1, t2, aperture, l2), out in zip(cases, per_case):
      ref = cv2.Canny(image, t1, t2, apertureSize=aperture, L2gradient=l2)
      out = out if out.ndim == 2 else out[..., 0]
      assert (ref > 0).sum() > 100
      np.testing.assert_array_equal(out, ref, err_msg=f"{t1}, {t2}, {aperture}, {l2}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["gray", "color"])
def test_canny_bit_exact(mode, kind):
  names = GRAY[:2] if kind == "gray" else ("astronaut", "coffee")
  images = [photo(n) if kind == "color" else photo(n, gray=True) for n in names]
  cases = CANNY_CASES[::3]  # L1 and L2, apertures 3, 5 and 7
  fn = lambda x: [ops.canny(x, *case) for case in cases]
  _check_canny(images, run(mode, fn, images), cases)


def test_canny_bit_exact_all_cases_and_photos():
  images = [photo(n, gray=True) for n in GRAY] + [photo("chelsea")]
  fn = jax.jit(lambda x: [ops.canny(x, *case) for case in CANNY_CASES])
  _check_canny(images, [fn(im) for im in images], CANNY_CASES)


def test_canny_full_size_photo():
  image = photo("camera", size=None)
  np.testing.assert_array_equal(ops.canny(image, 50, 150), cv2.Canny(image, 50, 150))


def test_hysteresis_follows_a_long_weak_chain():
  # A horizontal step whose contrast grows along x: only the right end is strong,
  # so the edge must be traced ~250 pixels leftwards through weak pixels.
  x = np.arange(256)
  contrast = 10 + x * 40 / 255
  image = np.zeros((32, 256), np.float64)
  image[16:] = contrast
  image = np.rint(image + 60).astype(np.uint8)
  ref = cv2.Canny(image, 20, 180)
  out = np.asarray(jax.jit(ops.canny, static_argnums=(1, 2))(image, 20, 180))
  np.testing.assert_array_equal(out, ref)
  assert (ref[15] > 0).sum() + (ref[16] > 0).sum() > 250
  strong_only = cv2.Canny(image, 180, 180)
  assert (strong_only > 0).sum() < (ref > 0).sum() / 4


def test_hysteresis_vertical_chain_and_odd_sizes():
  # The chain of the test above turned vertical and cut to 250 × 29: it crosses the
  # 32-row words of the packed hysteresis, whose last word is partly padding.
  x = np.arange(250)
  image = np.zeros((250, 29), np.float64)
  image[:, 14:] = (10 + x * 40 / 249)[:, None]
  image = np.rint(image + 60).astype(np.uint8)
  np.testing.assert_array_equal(ops.canny(image, 20, 180), cv2.Canny(image, 20, 180))
  assert (cv2.Canny(image, 20, 180) > 0).sum() > 240


@pytest.mark.parametrize("mode", MODES)
def test_canny_odd_sized_photos(mode):
  images = [photo(n, size=(101, 77), gray=True) for n in GRAY]
  cases = CANNY_CASES[:3]
  fn = lambda x: [ops.canny(x, *case) for case in cases]
  _check_canny(images, run(mode, fn, images), cases)


def test_canny_float_input_is_quantised():
  image = photo("coins", gray=True)
  np.testing.assert_array_equal(ops.canny(image / 255.0, 50, 150), cv2.Canny(image, 50, 150))


@pytest.mark.parametrize("mode", MODES)
def test_gradient_magnitude_and_orientation(mode):
  images = [photo(n, gray=True) for n in GRAY[:2]]
  fn = lambda x: (ops.gradient_magnitude(x), ops.gradient_magnitude(x, 5, False),
                  ops.gradient_orientation(x))
  for image, (mag, l1, angle) in zip(images, run(mode, fn, images)):
    dx = cv2.Sobel(image, cv2.CV_32F, 1, 0)
    dy = cv2.Sobel(image, cv2.CV_32F, 0, 1)
    np.testing.assert_allclose(mag, cv2.magnitude(dx, dy), rtol=1e-6)
    dx5, dy5 = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=5), cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=5)
    np.testing.assert_array_equal(l1, np.abs(dx5) + np.abs(dy5))
    ref = cv2.phase(dx, dy, angleInDegrees=True)
    delta = np.abs(angle - ref)
    delta = np.minimum(delta, 360 - delta)[cv2.magnitude(dx, dy) > 0]
    assert delta.max() < 0.1  # OpenCV's fast atan2 is documented to ~0.3°


def test_gradient_magnitude_is_differentiable():
  x = jnp.asarray(photo("camera", gray=True)[40:48, 40:48] / 255.0, jnp.float32)
  g = jax.grad(lambda v: ops.gradient_magnitude(v).sum())(x)
  assert np.isfinite(g).all() and np.abs(g).sum() > 0
  g0 = jax.grad(lambda v: ops.gradient_magnitude(v).sum())(jnp.zeros((8, 8)))
  assert np.isfinite(g0).all()  # no NaN where the gradient vanishes


@pytest.mark.parametrize("mode", MODES)
def test_log_zero_crossings_trace_a_disc(mode):
  yy, xx = np.mgrid[:64, :64]
  radii = (12.0, 20.0)
  images = [np.where((yy - 31.5) ** 2 + (xx - 31.5) ** 2 < r * r, 200, 40).astype(np.uint8)
            for r in radii]
  fn = lambda x: ops.log_zero_crossings(x, 2.0, threshold=5.0)
  for r, out in zip(radii, run(mode, fn, images)):
    ys, xs = np.nonzero(out)
    dist = np.hypot(ys - 31.5, xs - 31.5)
    assert np.abs(dist - r).max() <= 1.5  # on the boundary ...
    assert len(ys) > 2 * np.pi * r * 0.9  # ... all the way round
    assert out.dtype == np.uint8 and set(np.unique(out)) == {0, 255}


def test_log_zero_crossings_threshold_drops_texture():
  image = photo("camera", gray=True)
  loose = np.asarray(ops.log_zero_crossings(image, 1.5)) > 0
  strict = np.asarray(ops.log_zero_crossings(image, 1.5, threshold=20.0)) > 0
  assert strict.sum() < loose.sum() and not (strict & ~loose).any()


@pytest.mark.parametrize("call, match", [
    (lambda x: ops.canny(x, 50, 150, aperture_size=4), "aperture_size"),
    (lambda x: ops.log_zero_crossings(x, 0.0), "sigma"),
    (lambda x: ops.gradient_magnitude(x, ksize=2), "ksize"),
])
def test_bad_arguments(call, match):
  with pytest.raises(ValueError, match=match):
    call(photo("camera", gray=True))
