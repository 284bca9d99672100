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

# 8-bit points up to this many take the exact int8 update matmul: its int32
# sums, shifted back by 128 per point for uint8, stay below 2^31.
_INT8_MAX_POINTS = 2 ** 23


def _coords(xt):
  """float32 values of the D×… points, which stay in their own dtype in
  memory (uint8 pixels: a quarter of the bytes per pass); XLA fuses the cast
  into each pass."""
  return xt.astype(jnp.float32)


def _in_loop(xt, state):
  """``xt`` tied to the loop-varying ``state`` by an optimization barrier, so
  that XLA does not hoist the points' float32 conversion out of a loop body:
  it would materialise a 4× larger copy of uint8 points for every pass to
  read."""
  return jax.lax.optimization_barrier((xt, state))[0]


def _sq_dist(xt, centers):
  """(k, …) float32 squared Euclidean distances of the D×… points ``xt``
  (coordinates on the leading axis, usually D×N) to the float32 (k, D)
  ``centers``."""
  k, dims = centers.shape
  x = _coords(xt)
  if k * dims > _UNROLL:
    c = centers.reshape(centers.shape + (1,) * (x.ndim - 1))
    return jnp.sum((x[None] - c) ** 2, axis=1)

  def dist(c):
    acc = (x[0] - c[0]) ** 2
    for d in range(1, dims):
      acc = acc + (x[d] - c[d]) ** 2
    return acc

  return jnp.stack([dist(centers[j]) for j in range(k)])


def _nearest(xt, centers, dtype=jnp.int32):
  """(labels ``dtype``, float32 squared distance), each of shape …, of the
  nearest centre to each of the D×… points; the first one on ties, as
  argmin."""
  dist = _sq_dist(xt, centers)
  if centers.size > _UNROLL:
    return jnp.argmin(dist, axis=0).astype(dtype), jnp.min(dist, axis=0)
  best, labels = dist[0], jnp.zeros(dist.shape[1:], dtype)
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
  first = _coords(xt[:, jax.random.randint(k_first, (), 0, n)])
  centers = jnp.zeros((k, xt.shape[0]), jnp.float32).at[0].set(first)
  closest = _sq_dist(xt, first[None])[0]

  def add(i, state):
    centers, closest = state
    x = _in_loop(xt, closest)
    u = jax.random.uniform(jax.random.fold_in(k_rest, i), (trials,))
    picks = _coords(x[:, _sample(closest, u)].T)  # trials × D
    potential = jnp.sum(jnp.minimum(closest[None], _sq_dist(x, picks)), axis=1)
    best = picks[jnp.argmin(potential)]
    # Recomputing the winner's row measured faster than keeping the trials × N
    # potentials to pick it from.
    return centers.at[i].set(best), jnp.minimum(closest, _sq_dist(x, best[None])[0])

  centers, _ = jax.lax.fori_loop(1, k, add, (centers, closest))
  return centers


def _update_operand(xt):
  """The right operand of the centre update, (D+1)×N: the points and a row of
  ones, so that one matmul gives every cluster's sums and count; and the
  offset to add back per point. 8-bit integers (up to ``_INT8_MAX_POINTS``)
  become int8, uint8 shifted by −128, for an exact int8 × int8 → int32
  matmul; anything else float32."""
  dims, n = xt.shape
  if xt.dtype in (jnp.uint8, jnp.int8) and n <= _INT8_MAX_POINTS:
    offset = 128 if xt.dtype == jnp.uint8 else 0
    x = (xt.astype(jnp.int32) - offset).astype(jnp.int8)
    return jnp.concatenate([x, jnp.ones((1, n), jnp.int8)]), offset
  return jnp.concatenate([_coords(xt), jnp.ones((1, n), jnp.float32)]), 0


def _update(operand, offset, labels, centers):
  """New (k, D) float32 centres: the mean of each cluster's points by one
  one-hot k×N matmul against the (D+1)×N ``operand``; an empty cluster keeps
  its centre."""
  k, dims = centers.shape
  one_hot = (labels[None] == jnp.arange(k, dtype=labels.dtype)[:, None]).astype(operand.dtype)
  exact = operand.dtype == jnp.int8
  sums = jax.lax.dot_general(one_hot, operand, (((1,), (1,)), ((), ())),
                             precision=jax.lax.Precision.HIGHEST,
                             preferred_element_type=jnp.int32 if exact else jnp.float32)
  counts = sums[:, dims:]
  sums = (sums[:, :dims] + offset * counts).astype(jnp.float32)
  counts = counts.astype(jnp.float32)
  return jnp.where(counts > 0, sums / jnp.maximum(counts, 1), centers)


class _Fit(NamedTuple):
  """A k-means run without its labels: float32 compactness, (k, D) float32
  centers, int32 iterations and bool converged (see :class:`KMeans`)."""
  compactness: jax.Array
  centers: jax.Array
  iterations: jax.Array
  converged: jax.Array


def _lloyd(xt, centers, max_iter, epsilon):
  """Lloyd iterations on D×N points to a fixed point, as a :class:`_Fit`.

  The labels of the current centres are carried to the next iteration, whose
  update reads them (computed in the update, XLA recomputed each label k
  times for the one-hot). Stops when the centres come out bit-equal, as they
  do whenever no assignment changed, so labels need not be compared; or when
  none moved more than ``epsilon``. Equality, not a zero shift: XLA:CPU
  contracts the centre's product and the shift's difference into an FMA,
  which leaves a last-bit residue.
  """
  k = centers.shape[0]
  operand, offset = _update_operand(xt)
  label_dtype = jnp.int8 if k <= 127 else jnp.int32

  def body(state):
    centers, labels, it, _ = state
    new_centers = _update(operand, offset, labels, centers)
    shift = jnp.max(jnp.sum((new_centers - centers) ** 2, axis=1))
    done = jnp.all(new_centers == centers) | (shift <= epsilon ** 2)
    labels, _ = _nearest(_in_loop(xt, new_centers), new_centers, label_dtype)
    return new_centers, labels, it + 1, done

  def cond(state):
    return ~state[3] & (state[2] < max_iter)

  labels, _ = _nearest(xt, centers, label_dtype)
  centers, _, it, done = jax.lax.while_loop(
      cond, body, (centers, labels, jnp.int32(0), jnp.array(False)))
  return _Fit(jnp.sum(_nearest(xt, centers)[1]), centers, it, done)


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
  return data


def kmeans(key, data, k: int, attempts: int = 3, max_iter: int = 300,
           epsilon: float = 0.0, trials: int | None = None) -> KMeans:
  """k-means with k-means++ seeding, the best of ``attempts`` runs.

  Args:
    key: a ``jax.random`` key (one per problem; a batch splits it).
    data: N×D float or integer points, or B×N×D for B independent problems
      (solved one after another). Distances are float32; 8-bit points sum
      exactly in the centre update.
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
  trials = _default_trials(k) if trials is None else trials
  if x.ndim == 2:
    result = _kmeans(key[None], x[None], k, attempts, max_iter, float(epsilon), trials)
    return jax.tree.map(lambda a: a[0], result)
  return _kmeans(jax.random.split(key, x.shape[0]), x, k, attempts, max_iter, float(epsilon),
                 trials)


def _default_trials(k):
  """scikit-learn's k-means++ candidates per centre, 2 + ⌊ln k⌋."""
  return 2 + int(math.log(k))


def _fit(keys, xt, k, attempts, max_iter, epsilon, trials):
  """:class:`_Fit` of each B×D×N problem, the best of ``attempts`` runs, with
  one key of the (B,) ``keys`` each."""
  def best_of(key, xt):
    def attempt(key):
      return _lloyd(xt, _plus_plus(key, xt, k, trials), max_iter, epsilon)

    runs = jax.vmap(attempt)(jax.random.split(key, attempts))
    return jax.tree.map(lambda a: a[jnp.argmin(runs.compactness)], runs)

  # One problem after another: each runs its own number of Lloyd iterations
  # (vmap would step all of them until the slowest converges). The loop
  # carries the next problem's points: its passes then read them from a loop
  # parameter, which XLA:CPU vectorises, where a fused dynamic slice of the
  # batch was gathered byte by byte. Only small results are stacked; stacking
  # N-long outputs inside the loop was slow.
  count, dims, _ = xt.shape

  def step(i, state):
    fits, current = state
    fits = jax.tree.map(lambda a, b: a.at[i].set(b), fits, best_of(keys[i], current))
    return fits, xt[jnp.minimum(i + 1, count - 1)]

  fits = _Fit(jnp.zeros(count, jnp.float32), jnp.zeros((count, k, dims), jnp.float32),
              jnp.zeros(count, jnp.int32), jnp.zeros(count, bool))
  if count == 0:
    return fits
  return jax.lax.fori_loop(0, count, step, (fits, xt[0]))[0]


def _labels(xt, centers):
  """int32 (B, N) nearest of the (B, k, D) centres for the B×D×N points."""
  return jax.vmap(lambda xt, c: _nearest(xt, c)[0])(xt, centers)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _kmeans(keys, x, k, attempts, max_iter, epsilon, trials):
  """Batched :class:`KMeans` of the B×N×D problems ``x``, one key each."""
  # B×D×N in x's own dtype: each coordinate a contiguous row, which XLA:CPU
  # vectorises. Transposing uint8 is ~10× faster than float32, and the whole
  # batch at once avoids transposes fused into the per-problem passes.
  xt = jnp.swapaxes(x, 1, 2)
  fit = _fit(keys, xt, k, attempts, max_iter, epsilon, trials)
  return KMeans(fit.compactness, _labels(xt, fit.centers), fit.centers, fit.iterations,
                fit.converged)


def _quantize(pixels, labels, centers):
  """Each of the B×P×C ``pixels`` replaced by its centre: ``labels`` (B, P)
  index the (B, k, C) ``centers``, in the pixels' dtype (uint8 rounded). Each
  output element of the interleaved pixels selects from its pixel's label
  (a P×1 slice, broadcast); a B×C×P result transposed back was slower."""
  def one(x, labels, centers):
    values = _images.cast_like(centers, x)
    if centers.size > _UNROLL:
      return values[labels]
    labels = labels[:, None]
    out = values[0]
    for j in range(1, centers.shape[0]):
      out = jnp.where(labels == j, values[j], out)
    return jnp.broadcast_to(out, x.shape)

  return jax.vmap(one)(pixels, labels, centers)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _segment(keys, pixels, k, attempts, max_iter, epsilon):
  """(B×P×C quantized pixels, batched :class:`KMeans`) of B×P×C pixels."""
  result = _kmeans(keys, pixels, k, attempts, max_iter, epsilon, _default_trials(k))
  return _quantize(pixels, result.labels, result.centers), result


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
  pixels = _check_kmeans(batch.reshape(n, height * width, channels), k, attempts, max_iter,
                         epsilon)
  quantized, result = _segment(jax.random.split(key, n), pixels, k, attempts, max_iter,
                               float(epsilon))
  quantized = quantized.reshape(batch.shape)
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
