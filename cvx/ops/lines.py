"""Standard Hough transform for lines, as ``cv2.HoughLines``.

Quantization follows OpenCV exactly: ``numangle`` angles from ``min_theta`` in
steps of ``theta`` (the last one dropped when it would repeat the first at π),
``numrho = round((2·(W + H) + 1) / rho)`` distance bins centred on 0, and the
same float32 sine/cosine tables and round-half-even binning, so accumulators,
peaks and their order equal OpenCV's. Multi-scale (``srn``/``stn``) is not
implemented.
"""
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cvx.ops import _binary


class HoughLines(NamedTuple):
  """Lines sorted by votes (ties: smaller angle, then smaller rho first).

  ``rho``, ``theta`` float32 and ``votes`` int32 have ``max_lines`` entries
  (zeros past ``count``); ``count`` is how many are valid. A batch adds a
  leading axis to every field.
  """
  rho: jax.Array
  theta: jax.Array
  votes: jax.Array
  count: jax.Array


def _check(fn, rho, theta, min_theta, max_theta):
  for name, value in (("rho", rho), ("theta", theta)):
    if not isinstance(value, (int, float)) or not value > 0:
      raise ValueError(f"{fn}: {name} must be a positive number, got {value!r}")
  if not (isinstance(min_theta, (int, float)) and isinstance(max_theta, (int, float))
          and 0 <= min_theta <= max_theta):
    raise ValueError(f"{fn}: need 0 <= min_theta <= max_theta, got "
                     f"min_theta={min_theta!r}, max_theta={max_theta!r}")


def _bins(height, width, rho, theta, min_theta, max_theta):
  """(numangle, numrho, float32 sin/rho and cos/rho tables) as OpenCV makes them."""
  rho, theta = np.float32(rho), np.float32(theta)
  numangle = math.floor((max_theta - min_theta) / float(theta)) + 1
  if numangle > 1 and abs(math.pi - (numangle - 1) * float(theta)) < float(theta) / 2:
    numangle -= 1  # the angle at π would find every line a second time
  numrho = int(np.rint(np.float32(2 * (width + height) + 1) / rho))
  # Angles accumulate in float32 as OpenCV's table loop does.
  angles = np.empty(numangle, np.float32)
  ang = np.float32(min_theta)
  for n in range(numangle):
    angles[n] = ang
    ang = np.float32(ang + theta)
  irho = float(np.float32(1) / rho)
  tab_sin = (np.sin(angles.astype(np.float64)) * irho).astype(np.float32)
  tab_cos = (np.cos(angles.astype(np.float64)) * irho).astype(np.float32)
  return numangle, numrho, tab_sin, tab_cos


def _accumulate(edges, numrho, tab_sin, tab_cos):
  """numangle×numrho int32 votes of one H×W bool edge map."""
  height, width = edges.shape
  # OpenCV's float32 products x·cos/rho and y·sin/rho, made on the host: on
  # device XLA may fuse product and sum into an FMA, which rounds differently.
  px = (np.arange(width, dtype=np.float32)[:, None] * tab_cos).T
  py = (np.arange(height, dtype=np.float32)[:, None] * tab_sin).T
  votes = edges.reshape(-1).astype(jnp.int32)

  def one_angle(cols):
    x_part, y_part = cols
    # float32 sum, then round half to even as cvRound does.
    r = jnp.round(y_part[:, None] + x_part[None, :]).astype(jnp.int32)
    r = r.reshape(-1) + (numrho - 1) // 2
    return jnp.zeros(numrho, jnp.int32).at[r].add(votes, mode="drop")

  return jax.lax.map(one_angle, (jnp.asarray(px), jnp.asarray(py)), batch_size=16)


def hough_accumulator(edges, rho: float, theta: float, min_theta: float = 0.0,
                      max_theta: float = math.pi):
  """The Hough vote array: ``acc[n, r]`` counts edge pixels on line (ρ_r, θ_n).

  Args:
    edges: H×W, H×W×1 or N×H×W×1; nonzero pixels vote.
    rho, theta: bin sizes in pixels and radians.
    min_theta, max_theta: angle range, as in ``cv2.HoughLines``.

  Returns:
    int32 numangle×numrho (or N×numangle×numrho) with θ_n = min_theta + n·theta
    and ρ_r = (r − ⌊(numrho − 1)/2⌋)·rho; OpenCV keeps the same array inside.
  """
  _check("hough_accumulator", rho, theta, min_theta, max_theta)
  stack, batched = _binary.planes(edges, "hough_accumulator", "edges")
  return _binary.map_planes(_accumulator_core, stack, batched, rho=rho, theta=theta,
                            min_theta=min_theta, max_theta=max_theta)


def _accumulator_core(edges, rho, theta, min_theta, max_theta):
  _, numrho, tab_sin, tab_cos = _bins(*edges.shape, rho, theta, min_theta, max_theta)
  return _accumulate(edges, numrho, tab_sin, tab_cos)


def _peaks(acc, threshold, max_lines, rho, theta, min_theta):
  """OpenCV's local-maximum rule, strongest ``max_lines`` first."""
  numangle, numrho = acc.shape
  pad = jnp.pad(acc, 1)
  centre = pad[1:-1, 1:-1]
  # Strict against the previous rho/angle bin, >= against the next one.
  is_max = ((centre > threshold) & (centre > pad[1:-1, :-2]) & (centre >= pad[1:-1, 2:])
            & (centre > pad[:-2, 1:-1]) & (centre >= pad[2:, 1:-1]))
  key = jnp.where(is_max, centre, -1).reshape(-1)
  # top_k puts the lower flat index (smaller angle, then rho) first on ties.
  votes, idx = jax.lax.top_k(key, max_lines)
  valid = votes >= 0
  # Bin values as host constants, so no fused multiply-add changes a bit.
  rho_values = ((np.arange(numrho) - (numrho - 1) // 2).astype(np.float32)
                * np.float32(rho))
  theta_values = (np.float32(min_theta)
                  + np.arange(numangle, dtype=np.float32) * np.float32(theta))
  rho_value = jnp.asarray(rho_values)[idx % numrho]
  theta_value = jnp.asarray(theta_values)[idx // numrho]
  zero = jnp.zeros_like
  return HoughLines(jnp.where(valid, rho_value, zero(rho_value)),
                    jnp.where(valid, theta_value, zero(theta_value)),
                    jnp.where(valid, votes, 0),
                    jnp.minimum(jnp.sum(is_max), max_lines).astype(jnp.int32))


def hough_lines(edges, rho: float, theta: float, threshold: int, max_lines: int = 64,
                min_theta: float = 0.0, max_theta: float = math.pi) -> HoughLines:
  """Standard Hough lines of an edge map, equal to ``cv2.HoughLines``.

  A bin is a line when its votes exceed ``threshold`` and it is a local
  maximum (OpenCV's rule: greater than the previous ρ and θ bins, at least the
  next ones). Lines are sorted by votes as OpenCV sorts them; OpenCV returns
  all of them, here the ``max_lines`` strongest (a static capacity).

  Args:
    edges: H×W, H×W×1 or N×H×W×1 uint8/bool/float; nonzero pixels vote.
    rho: distance resolution in pixels (> 0).
    theta: angle resolution in radians (> 0).
    threshold: minimum votes; a line needs more than this.
    max_lines: capacity of the output (static).
    min_theta, max_theta: angle range in radians.

  Returns:
    :class:`HoughLines` (ρ, θ as OpenCV reports them, votes, count).
  """
  _check("hough_lines", rho, theta, min_theta, max_theta)
  if not isinstance(max_lines, int) or max_lines < 1:
    raise ValueError(f"hough_lines: max_lines must be a positive int, got {max_lines!r}")
  stack, batched = _binary.planes(edges, "hough_lines", "edges")
  return _binary.map_planes(_lines_core, stack, batched, rho=rho, theta=theta,
                            threshold=threshold, max_lines=max_lines,
                            min_theta=min_theta, max_theta=max_theta)


def _lines_core(edges, rho, theta, threshold, max_lines, min_theta, max_theta):
  acc = _accumulator_core(edges, rho, theta, min_theta, max_theta)
  return _peaks(acc, threshold, min(max_lines, acc.size), rho, theta, min_theta)
