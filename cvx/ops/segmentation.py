"""K-means clustering and colour segmentation, threshold-based segmentation.

``kmeans`` mirrors ``cv2.kmeans(data, K, criteria, attempts,
KMEANS_PP_CENTERS)``: greedy k-means++ seeding, Lloyd iterations in a
``lax.while_loop`` and the best of several attempts by compactness (the sum of
squared distances, scikit-learn's inertia). Lloyd stops when no assignment
changes or no centre moves more than ``epsilon``; ``max_iter`` is a safety
net and hitting it is reported in ``converged``.
"""
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from cvx.ops import _images


class KMeans(NamedTuple):
  """Result of :func:`kmeans` for the best attempt.

  compactness: float32 sum of squared distances to the assigned centres.
  labels: int32 (N,) cluster of each point.
  centers: float32 (k, D).
  iterations: int32 Lloyd iterations run.
  converged: bool, False when ``max_iter`` stopped the iterations.
  """
  compactness: jax.Array
  labels: jax.Array
  centers: jax.Array
  iterations: jax.Array
  converged: jax.Array


# Up to this many centre × coordinate terms, distances and the nearest centre
# are unrolled into elementwise ops over contiguous (N,) coordinate rows, one
# XLA loop; above it, a broadcast k×D×N difference and an argmin.
_UNROLL = 64


def _sq_dist(xt, centers):
  """(k, N) squared Euclidean distances of the D×N points ``xt``."""
  k, dims = centers.shape
  if k * dims > _UNROLL:
    return jnp.sum((xt[None] - centers[:, :, None]) ** 2, axis=1)

  def dist(c):
    acc = (xt[0] - c[0]) ** 2
    for d in range(1, dims):
      acc = acc + (xt[d] - c[d]) ** 2
    return acc

  return jnp.stack([dist(centers[j]) for j in range(k)])


def _nearest(xt, centers):
  """(labels int32, squared distance) of each point's nearest centre; the
  first one on ties, as argmin."""
  dist = _sq_dist(xt, centers)
  if centers.size > _UNROLL:
    return jnp.argmin(dist, axis=0).astype(jnp.int32), jnp.min(dist, axis=0)
  best, labels = dist[0], jnp.zeros(dist.shape[1], jnp.int32)
  for j in range(1, dist.shape[0]):
    closer = dist[j] < best
    best, labels = jnp.where(closer, dist[j], best), jnp.where(closer, j, labels)
  return labels, best


def _sample(weights, u):
  """Indices where the running sum of ``weights`` (N,) first exceeds each of
  ``u`` (T,) in [0, 1) times the total: blocks of ~√N, so two short cumsums
  instead of one over N (a log-depth scan of N-long passes on CPU)."""
  n = weights.shape[0]
  block = math.isqrt(n - 1) + 1
  rows = -(-n // block)
  w = jnp.pad(weights, (0, rows * block - n)).reshape(rows, block)
  row_sums = jnp.sum(w, axis=1)
  row_cdf = jnp.cumsum(row_sums)
  u = u * row_cdf[-1]
  r = jnp.minimum(jnp.sum(row_cdf[None] <= u[:, None], axis=1), rows - 1)
  cdf = jnp.cumsum(w[r], axis=1)
  c = jnp.sum(cdf <= (u - row_cdf[r] + row_sums[r])[:, None], axis=1)
  return jnp.minimum(r * block + jnp.minimum(c, block - 1), n - 1)


def _plus_plus(key, xt, k, trials):
  """Greedy k-means++ on D×N points: each new centre is the best of
  ``trials`` D² samples."""
  n = xt.shape[1]
  k_first, k_rest = jax.random.split(key)
  first = xt[:, jax.random.randint(k_first, (), 0, n)]
  centers = jnp.zeros((k, xt.shape[0]), xt.dtype).at[0].set(first)
  closest = _sq_dist(xt, first[None])[0]

  def add(i, state):
    centers, closest = state
    u = jax.random.uniform(jax.random.fold_in(k_rest, i), (trials,))
    picks = xt[:, _sample(closest, u)].T  # trials × D
    potential = jnp.sum(jnp.minimum(closest[None], _sq_dist(xt, picks)), axis=1)
    best = picks[jnp.argmin(potential)]
    # Recomputing the winner's row keeps trials × N distances out of memory
    # (the potentials fuse into their sums); keeping them measured no faster.
    return centers.at[i].set(best), jnp.minimum(closest, _sq_dist(xt, best[None])[0])

  centers, _ = jax.lax.fori_loop(1, k, add, (centers, closest))
  return centers


def _lloyd(xt, centers, max_iter, epsilon):
  """Lloyd iterations on D×N points to a fixed point; an empty cluster keeps
  its centre."""
  k, dims = centers.shape
  with_ones = jnp.concatenate([xt, jnp.ones((1, xt.shape[1]), xt.dtype)])

  def update(labels, centers):
    one_hot = (labels[None] == jnp.arange(k)[:, None]).astype(xt.dtype)  # k×N
    # One matmul gives every cluster's coordinate sums and its count.
    sums = jax.lax.dot_general(one_hot, with_ones, (((1,), (1,)), ((), ())),
                               precision=jax.lax.Precision.HIGHEST)
    counts = sums[:, dims:]
    return jnp.where(counts > 0, sums[:, :dims] / jnp.maximum(counts, 1), centers)

  def body(state):
    centers, labels, it, _ = state
    new_labels, _ = _nearest(xt, centers)
    new_centers = update(new_labels, centers)
    shift = jnp.max(jnp.sum((new_centers - centers) ** 2, axis=1))
    done = jnp.all(new_labels == labels) | (shift <= epsilon ** 2)
    return new_centers, new_labels, it + 1, done

  def cond(state):
    return ~state[3] & (state[2] < max_iter)

  labels = jnp.full(xt.shape[1], -1, jnp.int32)
  centers, _, it, done = jax.lax.while_loop(
      cond, body, (centers, labels, jnp.int32(0), jnp.array(False)))
  labels, dist = _nearest(xt, centers)
  return KMeans(jnp.sum(dist), labels, centers, it, done)


def _check_kmeans(data, k, attempts, max_iter, epsilon):
  data = jnp.asarray(data)
  if data.ndim not in (2, 3):
    raise ValueError(f"kmeans: data must be N×D or B×N×D, got shape {data.shape}")
  if not (jnp.issubdtype(data.dtype, jnp.floating) or jnp.issubdtype(data.dtype, jnp.integer)):
    raise TypeError(f"kmeans: data must be float or integer, got dtype {data.dtype}")
  if not isinstance(k, int) or not 1 <= k <= data.shape[-2]:
    raise ValueError(f"kmeans: k must be an int in [1, {data.shape[-2]}] (number of "
                     f"points), got {k!r}")
  for name, value in (("attempts", attempts), ("max_iter", max_iter)):
    if not isinstance(value, int) or value < 1:
      raise ValueError(f"kmeans: {name} must be a positive int, got {value!r}")
  if not isinstance(epsilon, (int, float)) or epsilon < 0:
    raise ValueError(f"kmeans: epsilon must be >= 0, got {epsilon!r}")
  return data.astype(jnp.float32)


def kmeans(key, data, k: int, attempts: int = 3, max_iter: int = 300,
           epsilon: float = 0.0, trials: int | None = None) -> KMeans:
  """k-means with k-means++ seeding, the best of ``attempts`` runs.

  Args:
    key: a ``jax.random`` key (one per problem; a batch splits it).
    data: N×D points, or B×N×D for B independent problems (vmapped).
    k: number of clusters (static).
    attempts: independent seedings; the lowest compactness wins (OpenCV's
      ``attempts``, scikit-learn's ``n_init``).
    max_iter: safety cap on Lloyd iterations, reported via ``converged``.
    epsilon: also stop once no centre moves more than this (OpenCV's
      ``TERM_CRITERIA_EPS``); 0 runs until assignments stop changing.
    trials: k-means++ candidates per centre; default 2 + ⌊ln k⌋ as in
      scikit-learn (OpenCV uses 3).

  Returns:
    :class:`KMeans`; a batch adds a leading B axis to every field. Unlike
    OpenCV, an empty cluster keeps its previous centre instead of being
    re-seeded (k-means++ seeding makes that rare).
  """
  x = _check_kmeans(data, k, attempts, max_iter, epsilon)
  trials = 2 + int(math.log(k)) if trials is None else trials
  return _kmeans(key, x, k, attempts, max_iter, float(epsilon), trials)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _kmeans(key, x, k, attempts, max_iter, epsilon, trials):
  def one(key, x):
    xt = x.T  # D×N: each coordinate a contiguous row, which XLA:CPU vectorises

    def attempt(key):
      return _lloyd(xt, _plus_plus(key, xt, k, trials), max_iter, epsilon)

    runs = jax.vmap(attempt)(jax.random.split(key, attempts))
    best = jnp.argmin(runs.compactness)
    return jax.tree.map(lambda a: a[best], runs)

  if x.ndim == 2:
    return one(key, x)
  # One problem after another: each runs its own number of Lloyd iterations
  # (vmap would step all of them until the slowest converges).
  return jax.lax.map(lambda a: one(*a), (jax.random.split(key, x.shape[0]), x))


def kmeans_segment(key, image, k: int, attempts: int = 3, max_iter: int = 300,
                   epsilon: float = 0.0):
  """Colour segmentation by k-means on pixel values (seed 000's K-means).

  Args:
    key: a ``jax.random`` key; a batch uses one split key per image.
    image: H×W, H×W×C or N×H×W×C, uint8 or float. Pixels are clustered on
      their raw values, as ``cv2.kmeans`` on ``np.float32(image)`` does.
    k, attempts, max_iter, epsilon: as in :func:`kmeans`.

  Returns:
    ``(labels, quantized, result)``: int32 labels H×W (N×H×W), the image with
    each pixel replaced by its centre (input dtype; uint8 rounded) and the
    :class:`KMeans` result (with a leading N for a batch).
  """
  image = _images.check_image(image, "image", "kmeans_segment")
  batch, unbatch = _images.as_batch(image)
  n, height, width, channels = batch.shape
  pixels = batch.reshape(n, height * width, channels)
  result = kmeans(key, pixels, k, attempts, max_iter, epsilon)
  quantized = jnp.take_along_axis(result.centers, result.labels[..., None], axis=1)
  quantized = _images.cast_like(quantized.reshape(batch.shape), image)
  labels = result.labels.reshape(n, height, width)
  if image.ndim == 4:
    return labels, quantized, result
  return labels[0], unbatch(quantized), jax.tree.map(lambda a: a[0], result)


def threshold_segment(image, thresholds):
  """Labels 0..T by how many of the sorted ``thresholds`` a value exceeds.

  ``label = Σ_t (image > t)``, OpenCV's strict ``>`` of THRESH_BINARY; one
  threshold gives the binary mask, several (e.g. multi-Otsu) give T+1
  classes. Same shape as ``image``, int32.
  """
  image = _images.check_image(image, "image", "threshold_segment")
  t = jnp.asarray(thresholds, jnp.float32)
  if t.ndim != 1 or t.size == 0:
    raise ValueError("threshold_segment: thresholds must be a non-empty 1-D "
                     f"sequence, got shape {t.shape}")
  return jnp.sum(image.astype(jnp.float32)[..., None] > t, axis=-1).astype(jnp.int32)
