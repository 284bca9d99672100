"""Connected-component labelling, as ``cv2.connectedComponentsWithStats``.

Labels propagate on device: every foreground pixel starts with its own raster
index, takes the minimum over its neighbours and jumps through the label it
points to (pointer jumping), in a ``lax.while_loop`` until nothing changes.
Each component then holds the raster index of its first pixel, and the labels
are renumbered to OpenCV's order so results equal OpenCV's exactly.
"""
import jax
import jax.numpy as jnp
import numpy as np

from cvx.ops import _binary

CC_STAT_LEFT, CC_STAT_TOP, CC_STAT_WIDTH, CC_STAT_HEIGHT, CC_STAT_AREA = range(5)

_OFFSETS = {4: ((-1, 0), (1, 0), (0, -1), (0, 1)),
            8: ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))}


def _neighbour_min(labels, fg, connectivity):
  """Per pixel, the smallest label among itself and its foreground neighbours."""
  big = jnp.iinfo(jnp.int32).max
  masked = jnp.pad(jnp.where(fg, labels, big), 1, constant_values=big)
  height, width = labels.shape
  out = labels
  for dy, dx in _OFFSETS[connectivity]:
    out = jnp.minimum(out, masked[1 + dy:1 + dy + height, 1 + dx:1 + dx + width])
  return jnp.where(fg, out, labels)


def _root_index(fg, connectivity):
  """Raster index of each foreground pixel's component's first pixel."""
  height, width = fg.shape
  start = jnp.arange(height * width, dtype=jnp.int32).reshape(height, width)

  def body(state):
    labels, _ = state
    new = _neighbour_min(labels, fg, connectivity)
    new = new.reshape(-1)[new].reshape(height, width)  # pointer jumping
    return new, jnp.any(new != labels)

  labels, _ = jax.lax.while_loop(lambda s: s[1], body, (start, jnp.array(True)))
  return labels


def _order_key(height, width, connectivity):
  """Raster index of the unit OpenCV's scan numbers labels by.

  8-connectivity (OpenCV's block-based Spaghetti/BBDT): 2×2 blocks in raster
  order; 4-connectivity (pixel-based): pixels in raster order.
  """
  ys, xs = np.mgrid[:height, :width]
  if connectivity == 8:
    return jnp.asarray((ys // 2) * ((width + 1) // 2) + xs // 2, jnp.int32)
  return jnp.asarray(ys * width + xs, jnp.int32)


def _label(fg, connectivity):
  """(number of labels incl. background, H×W int32 labels) of one plane."""
  height, width = fg.shape
  size = height * width
  root = _root_index(fg, connectivity).reshape(-1)
  flat = fg.reshape(-1)
  key = _order_key(height, width, connectivity).reshape(-1)
  # The first unit (block or pixel) each component touches, by its root.
  first = jnp.full(size, size, jnp.int32).at[root].min(jnp.where(flat, key, size))
  is_root = flat & (root == jnp.arange(size))
  used = jnp.zeros(size + 1, jnp.int32).at[jnp.where(is_root, first, size)].set(1)[:size]
  rank = jnp.cumsum(used)  # 1-based position of each first unit
  labels = jnp.where(flat, rank[first[root]], 0).reshape(height, width)
  return 1 + jnp.sum(is_root).astype(jnp.int32), labels


def _check_connectivity(fn, connectivity):
  if connectivity not in (4, 8) or isinstance(connectivity, bool):
    raise ValueError(f"{fn}: connectivity must be 4 or 8, got {connectivity!r}")


def connected_components(binary, connectivity: int = 8):
  """Labels of the connected components of a binary image.

  Args:
    binary: H×W, H×W×1 or N×H×W×1 uint8/bool/float; nonzero is foreground.
    connectivity: 8 or 4.

  Returns:
    ``(num_labels, labels)`` as ``cv2.connectedComponents``: int32 count
    including the background, and int32 labels H×W (background 0), numbered in
    OpenCV's scan order (for 8-connectivity the raster order of the 2×2 block
    holding each component's first pixel, for 4-connectivity of the pixel).
    A batch gives N counts and N×H×W labels.
  """
  _check_connectivity("connected_components", connectivity)
  stack, batched = _binary.planes(binary, "connected_components", "binary")
  return _binary.map_planes(_label, stack, batched, connectivity=connectivity)


def _stats(labels, capacity):
  """(capacity+1)×5 int32 stats and (capacity+1)×2 float32 centroids."""
  height, width = labels.shape
  ys, xs = jnp.mgrid[:height, :width]
  ids = labels.reshape(-1)
  n = capacity + 1

  def seg(op, values, init):
    return getattr(jnp.full(n, init, jnp.int32).at[ids], op)(values.reshape(-1),
                                                           mode="drop")

  area = seg("add", jnp.ones_like(xs), 0)
  left, top = seg("min", xs, width), seg("min", ys, height)
  right, bottom = seg("max", xs, -1), seg("max", ys, -1)
  present = area > 0
  stats = jnp.stack([left, top, right - left + 1, bottom - top + 1, area], axis=1)
  stats = jnp.where(present[:, None], stats, 0)
  sums = jnp.zeros((n, 2), jnp.float32).at[ids].add(
      jnp.stack([xs, ys], -1).reshape(-1, 2).astype(jnp.float32), mode="drop")
  centroids = jnp.where(present[:, None], sums / jnp.maximum(area, 1)[:, None], 0.0)
  return stats, centroids


def connected_components_with_stats(binary, connectivity: int = 8,
                                    max_components: int = 255):
  """Labels plus per-label statistics, as ``cv2.connectedComponentsWithStats``.

  Args:
    binary: H×W, H×W×1 or N×H×W×1; nonzero is foreground.
    connectivity: 8 or 4.
    max_components: static capacity for the stats (background not counted).

  Returns:
    ``(num_labels, labels, stats, centroids)``: ``stats`` is int32
    (max_components+1)×5 with columns ``CC_STAT_LEFT, TOP, WIDTH, HEIGHT,
    AREA`` and row 0 the background; ``centroids`` float32 (x, y) rows (OpenCV
    uses float64). Rows past ``num_labels`` are 0. ``num_labels`` counts every
    component even past the capacity, so ``num_labels > max_components + 1``
    shows that stats were dropped. A label with no pixels (an all-foreground
    image's background) has zero stats.
  """
  _check_connectivity("connected_components_with_stats", connectivity)
  if not isinstance(max_components, int) or max_components < 1:
    raise ValueError("connected_components_with_stats: max_components must be a "
                     f"positive int, got {max_components!r}")
  stack, batched = _binary.planes(binary, "connected_components_with_stats", "binary")
  return _binary.map_planes(_label_with_stats, stack, batched,
                            connectivity=connectivity, capacity=max_components)


def _label_with_stats(fg, connectivity, capacity):
  count, labels = _label(fg, connectivity)
  return (count, labels) + _stats(labels, capacity)
