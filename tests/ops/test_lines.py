"""Hough lines against cv2.HoughLinesWithAccumulator: exact ρ, θ, votes and order."""
import math

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data

from cvx.ops import lines

HOW = ["eager", "jit", "vmap"]


def apply(how, fn, images):
  """``fn`` on each image: eagerly, jitted, or vmapped over the stacked images."""
  if how == "vmap":
    out = jax.vmap(fn)(jnp.stack(images))
    return [jax.tree.map(lambda a, i=i: a[i], out) for i in range(len(images))]
  f = jax.jit(fn) if how == "jit" else fn
  return [f(im) for im in images]


def gray(name):
  image = getattr(data, name)()
  return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


@pytest.fixture(scope="module")
def edge_maps():
  """Canny edges of 128×128 crops of three photographs."""
  crops = [gray("camera")[60:188, 180:308], gray("coins")[:128, :128],
           gray("astronaut")[20:148, 150:278]]
  return [cv2.Canny(c, 50, 150) for c in crops]


def reference(edges, rho, theta, threshold, **kw):
  out = cv2.HoughLinesWithAccumulator(edges, rho, theta, threshold, **kw)
  return np.zeros((0, 3), np.float32) if out is None else out.reshape(-1, 3)


def assert_same(out, ref):
  n = int(out.count)
  assert n == len(ref)
  np.testing.assert_array_equal(out.rho[:n], ref[:, 0])
  np.testing.assert_array_equal(out.theta[:n], ref[:, 1])
  np.testing.assert_array_equal(out.votes[:n], ref[:, 2].astype(np.int32))
  assert not np.any(out.votes[n:])


@pytest.mark.parametrize("how", HOW)
def test_photo_edges_match_opencv(edge_maps, how):
  fn = lambda e: lines.hough_lines(e, 1, np.pi / 180, 40, max_lines=2048)
  for out, edges in zip(apply(how, fn, edge_maps), edge_maps):
    assert_same(out, reference(edges, 1, np.pi / 180, 40))


@pytest.mark.parametrize("rho,theta,min_theta,max_theta", [
    (2, np.pi / 90, 0.0, np.pi), (1.5, 0.03, 0.0, np.pi), (3, 0.02, 0.3, 2.0),
    (1, np.pi / 180, 0.0, np.pi / 2)])
def test_quantization_options_match_opencv(edge_maps, rho, theta, min_theta, max_theta):
  edges = edge_maps[0]
  out = lines.hough_lines(edges, rho, theta, 25, max_lines=2048, min_theta=min_theta,
                          max_theta=max_theta)
  assert_same(out, reference(edges, rho, theta, 25, min_theta=min_theta,
                             max_theta=max_theta))


def test_batch_input_and_capacity(edge_maps):
  batch = np.stack(edge_maps)[..., None]
  out = lines.hough_lines(batch, 1, np.pi / 180, 40, max_lines=10)
  assert out.rho.shape == (3, 10) and out.count.shape == (3,)
  for i, edges in enumerate(edge_maps):
    ref = reference(edges, 1, np.pi / 180, 40)[:10]  # the 10 strongest, in order
    assert_same(jax.tree.map(lambda a, i=i: a[i], out), ref)


def drawn_line(rho, theta_deg, size=100):
  t = math.radians(theta_deg)
  c, s = math.cos(t), math.sin(t)
  x0, y0 = rho * c, rho * s
  p1 = (round(x0 - 200 * s), round(y0 + 200 * c))
  p2 = (round(x0 + 200 * s), round(y0 - 200 * c))
  return cv2.line(np.zeros((size, size), np.uint8), p1, p2, 255, 1)


@pytest.mark.parametrize("rho,theta_deg", [(30, 0), (50, 90)])
def test_axis_aligned_line_gets_every_vote(rho, theta_deg):
  out = lines.hough_lines(drawn_line(rho, theta_deg), 1, np.pi / 180, 20, max_lines=4)
  assert (float(out.rho[0]), round(math.degrees(float(out.theta[0]))),
          int(out.votes[0])) == (rho, theta_deg, 100)


@pytest.mark.parametrize("rho,theta_deg", [(40, 60), (-20, 135), (25, 110)])
def test_oblique_line_peak_within_one_bin(rho, theta_deg):
  edges = drawn_line(rho, theta_deg)
  out = lines.hough_lines(edges, 1, np.pi / 180, 20, max_lines=4)
  assert abs(float(out.rho[0]) - rho) <= 1
  assert abs(math.degrees(float(out.theta[0])) - theta_deg) <= 1


@pytest.mark.parametrize("how", HOW)
def test_accumulator_counts_every_pixel_once_per_angle(edge_maps, how):
  fn = lambda e: lines.hough_accumulator(e, 1, np.pi / 180)
  for acc, edges in zip(apply(how, fn, edge_maps), edge_maps):
    assert acc.shape == (180, 2 * (128 + 128) + 1) and acc.dtype == jnp.int32
    np.testing.assert_array_equal(acc.sum(axis=1), np.count_nonzero(edges))


def test_accumulator_peak_of_a_drawn_line():
  acc = np.asarray(lines.hough_accumulator(drawn_line(50, 90), 1, np.pi / 180))
  n, r = np.unravel_index(acc.argmax(), acc.shape)
  assert (n, r - (acc.shape[1] - 1) // 2, acc.max()) == (90, 50, 100)


@pytest.mark.parametrize("kwargs,match", [
    (dict(rho=0), "rho"), (dict(theta=-1.0), "theta"),
    (dict(min_theta=2.0, max_theta=1.0), "min_theta"), (dict(max_lines=0), "max_lines")])
def test_bad_parameters(kwargs, match):
  args = dict(rho=1, theta=0.01, threshold=10) | kwargs
  with pytest.raises(ValueError, match=match):
    lines.hough_lines(np.zeros((8, 8), np.uint8), **args)


def test_bad_edges():
  with pytest.raises(ValueError, match="one channel"):
    lines.hough_lines(np.zeros((8, 8, 3), np.uint8), 1, 0.01, 10)
  with pytest.raises(TypeError, match="int32"):
    lines.hough_lines(np.zeros((8, 8), np.int32), 1, 0.01, 10)
