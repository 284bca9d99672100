"""cvx.ops.morphology against cv2 (bit-exact) on photographs and binary masks."""
import cv2
import jax
import numpy as np
import pytest

from cvx import ops
from tests.ops.photos import MODES, photo, run

SHAPES = [ops.MORPH_RECT, ops.MORPH_CROSS, ops.MORPH_ELLIPSE]


def test_structuring_elements_equal_opencv():
  for shape in SHAPES:
    for ksize in [(3, 3), (5, 5), (7, 5), (4, 6), (1, 5), (9, 9), (2, 2), (15, 11)]:
      np.testing.assert_array_equal(ops.get_structuring_element(shape, ksize),
                                    cv2.getStructuringElement(shape, ksize), err_msg=str(ksize))


def _binary(name):
  return cv2.threshold(photo(name, gray=True), 0, 255, cv2.THRESH_OTSU)[1]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["gray", "binary", "color"])
def test_erode_dilate_exact(mode, kind):
  if kind == "color":
    images = [photo("astronaut"), photo("coffee")]
  else:
    images = [photo(n, gray=True) if kind == "gray" else _binary(n) for n in ("coins", "camera")]
  ellipse = ops.get_structuring_element(ops.MORPH_ELLIPSE, (5, 5))
  cross = ops.get_structuring_element(ops.MORPH_CROSS, (3, 5))
  rect = np.ones((3, 3), np.uint8)
  fn = lambda x: (ops.erode(x, ellipse), ops.dilate(x, cross, iterations=2),
                  ops.erode(x, rect, 2, ops.BORDER_REPLICATE),
                  ops.dilate(x, ellipse, 1, ops.BORDER_CONSTANT, 255))
  for image, (e, d, e_rep, d_const) in zip(images, run(mode, fn, images)):
    np.testing.assert_array_equal(e, cv2.erode(image, ellipse))
    np.testing.assert_array_equal(d, cv2.dilate(image, cross, iterations=2))
    np.testing.assert_array_equal(e_rep, cv2.erode(image, rect, iterations=2,
                                                   borderType=cv2.BORDER_REPLICATE))
    # OpenCV reads a scalar borderValue as (v, 0, 0, 0); ours fills every channel.
    np.testing.assert_array_equal(d_const, cv2.dilate(image, ellipse, borderType=cv2.BORDER_CONSTANT,
                                                      borderValue=(255, 255, 255)))


@pytest.mark.parametrize("border", [ops.BORDER_CONSTANT, ops.BORDER_REPLICATE, ops.BORDER_REFLECT,
                                    ops.BORDER_REFLECT_101])
def test_large_rectangles_exact(border):
  # Rectangles over 25 cells are reduced one axis at a time; even sides move the anchor.
  for image in [photo("coins", gray=True), photo("astronaut")]:
    for ksize in [(7, 5), (9, 9), (4, 8), (15, 1)]:
      kernel = np.ones(ksize[::-1], np.uint8)
      np.testing.assert_array_equal(ops.erode(image, kernel, border=border),
                                    cv2.erode(image, kernel, borderType=border), err_msg=str(ksize))
      np.testing.assert_array_equal(ops.dilate(image, kernel, border=border),
                                    cv2.dilate(image, kernel, borderType=border), err_msg=str(ksize))
    kernel = np.ones((9, 7), np.uint8)
    np.testing.assert_array_equal(ops.dilate(image, kernel, 2, border=border),
                                  cv2.dilate(image, kernel, iterations=2, borderType=border))


OPS = [ops.MORPH_ERODE, ops.MORPH_DILATE, ops.MORPH_OPEN, ops.MORPH_CLOSE, ops.MORPH_GRADIENT,
       ops.MORPH_TOPHAT, ops.MORPH_BLACKHAT]


@pytest.mark.parametrize("border", [ops.BORDER_CONSTANT, ops.BORDER_REPLICATE, ops.BORDER_REFLECT,
                                    ops.BORDER_REFLECT_101])  # OpenCV refuses WRAP here
def test_iterated_rectangles_are_one_swept_rectangle_as_opencv(border):
  # Even sizes anchor off-centre, and near reflected borders n passes differ
  # from one pass of the swept rectangle, which is what OpenCV computes.
  coins = photo("coins", gray=True).astype(np.float32)
  images = [photo("camera", gray=True), photo("astronaut"), coins]
  for ksize, iterations in [((2, 2), 2), ((4, 3), 3), ((3, 3), 2), ((2, 5), 3)]:
    kernel = np.ones(ksize[::-1], np.uint8)
    for ours, theirs in [(ops.erode, cv2.erode), (ops.dilate, cv2.dilate)]:
      for image in images:
        np.testing.assert_array_equal(
            ours(image, kernel, iterations=iterations, border=border),
            theirs(image, kernel, iterations=iterations, borderType=border),
            err_msg=f"{ours.__name__} {ksize}×{iterations}")


@pytest.mark.parametrize("mode", MODES)
def test_morphology_ex_exact(mode):
  images = [photo("coins", gray=True), _binary("text")]
  kernel = ops.get_structuring_element(ops.MORPH_ELLIPSE, (5, 3))
  fn = lambda x: [ops.morphology_ex(x, op, kernel, iterations=2) for op in OPS]
  for image, outs in zip(images, run(mode, fn, images)):
    for op, out in zip(OPS, outs):
      np.testing.assert_array_equal(out, cv2.morphologyEx(image, op, kernel, iterations=2),
                                    err_msg=f"op {op}")


HITMISS_KERNELS = [
    np.array([[0, 1, 0], [1, -1, 1], [0, 1, 0]]),  # a hole in a cross
    np.array([[-1, -1, -1], [0, 1, 0], [1, 1, 1]]),  # a top edge
    np.array([[1, -1], [0, 1]]),  # even size: anchor at (1, 1)
    np.array([[2, -1, 0], [1, 1, 1]]),  # cells other than ±1 are ignored
    -np.ones((3, 3), int), np.ones((5, 3), int), np.zeros((3, 3), int),
]


@pytest.mark.parametrize("mode", MODES)
def test_hit_or_miss_exact(mode):
  images = [_binary("text"), _binary("coins"), photo("camera", gray=True)]
  fn = lambda x: [ops.morphology_ex(x, ops.MORPH_HITMISS, k, iterations=i)
                  for k in HITMISS_KERNELS for i in (1, 2)]
  for image, outs in zip(images, run(mode, fn, images)):
    refs = [cv2.morphologyEx(image, cv2.MORPH_HITMISS, k, iterations=i)
            for k in HITMISS_KERNELS for i in (1, 2)]
    assert any(ref.any() for ref in refs[:2])  # the cross-with-hole pattern occurs
    for out, ref in zip(outs, refs):
      np.testing.assert_array_equal(out, ref)


def test_hit_or_miss_finds_isolated_pixels():
  image = np.zeros((9, 9), np.uint8)
  image[2, 2] = image[6, 5] = 255
  image[6, 6] = 255  # not isolated
  isolated = -np.ones((3, 3), int)
  isolated[1, 1] = 1
  out = np.asarray(ops.morphology_ex(image, ops.MORPH_HITMISS, isolated))
  assert sorted(zip(*np.nonzero(out))) == [(2, 2)]


def test_float_images_match_opencv_float32():
  image = photo("coins", gray=True).astype(np.float32) / 255
  kernel = ops.get_structuring_element(ops.MORPH_RECT, (5, 3))
  np.testing.assert_array_equal(ops.erode(image, kernel), cv2.erode(image, kernel))
  np.testing.assert_array_equal(ops.morphology_ex(image, ops.MORPH_GRADIENT, kernel),
                                cv2.morphologyEx(image, cv2.MORPH_GRADIENT, kernel))


def test_opening_removes_specks_seed_000():
  # Seed 000: erosion removes small details, dilation fills small gaps.
  image = np.zeros((20, 20), np.uint8)
  image[5:15, 5:15] = 255
  image[1, 1] = 255  # a speck
  image[9, 9] = 0  # a hole
  kernel = np.ones((3, 3), np.uint8)
  opened = np.asarray(ops.morphology_ex(image, ops.MORPH_OPEN, kernel))
  closed = np.asarray(ops.morphology_ex(image, ops.MORPH_CLOSE, kernel))
  assert opened[1, 1] == 0 and opened[6, 6] == 255
  assert closed[9, 9] == 255


@pytest.mark.parametrize("call, error, match", [
    (lambda x: ops.get_structuring_element(3, (3, 3)), ValueError, "shape=3"),
    (lambda x: ops.get_structuring_element(0, (0, 3)), ValueError, "ksize"),
    (lambda x: ops.erode(x, np.ones(3)), ValueError, "2-D"),
    (lambda x: ops.dilate(x, np.ones((3, 3)), iterations=-1), ValueError, "iterations"),
    (lambda x: ops.morphology_ex(x, 9, np.ones((3, 3))), ValueError, "op=9"),
    (lambda x: ops.morphology_ex(x / 255.0, ops.MORPH_HITMISS, np.ones((3, 3))), TypeError,
     "MORPH_HITMISS needs a uint8"),
    (lambda x: ops.morphology_ex(x, ops.MORPH_HITMISS, np.ones(3)), ValueError, "2-D"),
    (lambda x: jax.jit(lambda k: ops.erode(x, k))(np.ones((3, 3))), TypeError, "concrete"),
])
def test_bad_arguments(call, error, match):
  with pytest.raises(error, match=match):
    call(photo("coins", gray=True))


def test_uint8_rectangles_run_the_native_kernel_on_cpu_and_equal_xla(monkeypatch):
  """On CPU, uint8 erosion and dilation by full rectangles are one native
  call (CvxExtremeU8); with CVX_NATIVE_OPS=0 they are XLA's, bit-equal: the
  unrolled 3×3, 5×5 and 7×7 kernels and other sizes, iterations, every
  border and fill, one to three channels, images narrower or shorter than
  the kernel, jitted and vmapped."""
  rect = lambda w, h: ops.get_structuring_element(ops.MORPH_RECT, (w, h))
  cases = [(rect(3, 3), 1, ops.BORDER_CONSTANT, None), (rect(5, 5), 1, ops.BORDER_REPLICATE, None),
           (rect(7, 3), 2, ops.BORDER_REFLECT, None), (rect(4, 6), 1, ops.BORDER_REFLECT_101, None),
           (rect(3, 5), 1, ops.BORDER_WRAP, None), (rect(5, 3), 1, ops.BORDER_CONSTANT, 17),
           (rect(7, 7), 1, ops.BORDER_REFLECT_101, None), (rect(5, 5), 1, ops.BORDER_CONSTANT, 200)]

  def morph():  # a new function each time: traces are cached per function
    return lambda x: [f(x, k, iterations=n, border=b, border_value=v)
                      for f in (ops.erode, ops.dilate) for k, n, b, v in cases]

  rng = np.random.default_rng(5)
  for image in (rng.integers(0, 256, (2, 21, 17, 3), np.uint8),
                rng.integers(0, 256, (2, 9, 26, 2), np.uint8),
                rng.integers(0, 256, (2, 70, 67, 1), np.uint8),
                rng.integers(0, 256, (2, 4, 3, 1), np.uint8)):
    monkeypatch.delenv("CVX_NATIVE_OPS", raising=False)
    assert "CvxExtremeU8" in str(jax.make_jaxpr(morph())(image))
    native = jax.jit(morph())(image)
    vmapped = jax.jit(jax.vmap(morph()))(image[:, None])
    monkeypatch.setenv("CVX_NATIVE_OPS", "0")
    assert "CvxExtremeU8" not in str(jax.make_jaxpr(morph())(image))
    for got, batched, want in zip(native, vmapped, jax.jit(morph())(image)):
      np.testing.assert_array_equal(got, want)
      np.testing.assert_array_equal(batched[:, 0], want)
