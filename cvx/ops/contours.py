"""Contours of binary images (Suzuki–Abe border following), as ``cv2.findContours``.

The whole raster scan and border following is one ``lax.while_loop`` on
device that reproduces OpenCV's scanner step by step: the same start rules
for outer borders and holes, the same pixel marks, the same parent rule (the
last border met on the row) and the same output order (pre-order of the
contour tree, newest child first). Contours, their points (CHAIN_APPROX_NONE
or CHAIN_APPROX_SIMPLE) and the hierarchy therefore equal OpenCV's exactly.
It is sequential by nature; the loop jumps straight to the next run boundary
of a row instead of visiting every pixel.
"""
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cvx.ops import _binary

RETR_EXTERNAL, RETR_LIST, RETR_CCOMP, RETR_TREE = 0, 1, 2, 3
CHAIN_APPROX_NONE, CHAIN_APPROX_SIMPLE = 1, 2

# OpenCV's chain code: 0 = +x, then counter-clockwise on screen (y down).
_DX = np.array([1, 1, 0, -1, -1, -1, 0, 1], np.int32)
_DY = np.array([0, -1, -1, -1, 0, 1, 1, 1], np.int32)


def _delta(d):
  """(dy, dx) of chain-code direction(s) ``d`` (traced)."""
  return jnp.asarray(_DY)[d], jnp.asarray(_DX)[d]


class Contours(NamedTuple):
  """Contours in OpenCV's order, padded to static capacities.

  points: int32 (max_contours, max_points, 2) (x, y) per contour, zeros past
    its length.
  lengths: int32 (max_contours,) number of points.
  hierarchy: int32 (max_contours, 4) [next, previous, first_child, parent],
    -1 for none, as OpenCV's ``hierarchy[0]``; padded rows are -1.
  is_hole: bool (max_contours,) whether the contour bounds a hole.
  count: int32 number of contours found. ``count > max_contours`` or any
    ``lengths > max_points`` means the capacity was too small and the stored
    arrays are incomplete.

  A batch adds a leading axis to every field.
  """
  points: jax.Array
  lengths: jax.Array
  hierarchy: jax.Array
  is_hole: jax.Array
  count: jax.Array


class _State(NamedTuple):
  img: jax.Array        # 0 background, 1 unvisited, nbd or nbd-128 (marked)
  owner: jax.Array      # contour that left the current mark on a pixel
  y: jax.Array          # scanner row, next column and last value seen
  x: jax.Array
  prev: jax.Array
  last_x: jax.Array     # column of the last border met on this row
  following: jax.Array
  done: jax.Array
  cy: jax.Array         # border follower: current pixel, direction, start
  cx: jax.Array
  s: jax.Array
  prev_s: jax.Array
  sy: jax.Array
  sx: jax.Array
  s1: jax.Array
  resume_x: jax.Array
  k: jax.Array          # contours started so far
  n: jax.Array          # points of the contour being followed
  pts: jax.Array
  lengths: jax.Array
  holes: jax.Array
  parents: jax.Array


def _nbd(k, simple):
  """OpenCV's mark value for the k-th contour (it wraps within 3..127)."""
  if simple:
    return jnp.int32(2)
  return jnp.where(k < 126, 2 + k, 3 + (k - 126) % 125).astype(jnp.int32)


def _flagged(v):
  """A mark (neither background 0 nor unvisited 1)."""
  return (v != 0) & (v != 1)


def _scan(st, mode):
  """One scanner move: to the next change of value on the row, or next row."""
  width = st.img.shape[1]
  row = st.img[st.y]
  cols = jnp.arange(width)
  cand = (cols >= st.x) & (cols < width - 1) & (row != st.prev)
  found = jnp.any(cand)
  xn = jnp.argmax(cand).astype(jnp.int32)
  p = row[xn]
  outer = (st.prev == 0) & (p == 1)
  hole = ~outer & (p == 0) & (st.prev >= 1)
  last_x = jnp.where(hole & _flagged(st.prev), xn - 1, st.last_x)
  if mode == RETR_EXTERNAL:
    start = found & outer & ~(st.img[st.y, last_x] > 0)
  else:
    start = found & (outer | hole)
  # Parent: the last border met on the row, or its parent when both are holes
  # or both outer borders.
  c = st.owner[st.y, last_x]
  c_hole = st.holes.at[c].get(mode="fill", fill_value=False)
  c_parent = st.parents.at[c].get(mode="fill", fill_value=-1)
  top = (last_x <= 0) | (mode in (RETR_LIST, RETR_EXTERNAL))
  if mode == RETR_CCOMP:
    top = top | outer
  parent = jnp.where(top, -1, jnp.where(c_hole == hole, c_parent, c))
  return found, xn, p, hole, last_x, start, parent


def _first_dir(img, y, x, s_end, count, clockwise):
  """First direction (s_end∓1, s_end∓2, …) whose neighbour is nonzero."""
  steps = jnp.arange(1, count + 1)
  dirs = (s_end - steps if clockwise else s_end + steps) & 7
  dy, dx = _delta(dirs)
  vals = img[y + dy, x + dx]
  return dirs[jnp.argmax(vals != 0)], jnp.any(vals != 0)


def _step(st, mode, method):
  """One iteration: a scanner move or one border-following step."""
  simple = mode in (RETR_LIST, RETR_EXTERNAL)
  height = st.img.shape[0]
  scanning = ~st.following

  # Scanner move (used when not following).
  found, xn, p, hole, last_x, start, parent = _scan(st, mode)
  sy, sx = st.y, xn - hole.astype(jnp.int32)
  s1, linked = _first_dir(st.img, sy, sx, jnp.where(hole, 0, 4), 7, True)
  begin = scanning & start
  isolated = begin & ~linked

  # Follower step (used when following): counter-clockwise search.
  s_new, _ = _first_dir(st.img, st.cy, st.cx, st.s, 8, False)
  cur = st.img[st.cy, st.cx]
  right = (s_new >= 1) & (s_new <= st.s)  # the +x neighbour was background
  cid = st.k - 1
  lval = _nbd(cid, simple)
  dy, dx = _delta(s_new)
  ny, nx = st.cy + dy, st.cx + dx
  dy1, dx1 = _delta(st.s1)
  finish = (ny == st.sy) & (nx == st.sx) & (st.cy == st.sy + dy1) & (st.cx == st.sx + dx1)
  push = jnp.bool_(True) if method == CHAIN_APPROX_NONE else s_new != st.prev_s

  # One pixel mark, one point and one contour record per iteration.
  f = st.following
  mark_y, mark_x = jnp.where(f, st.cy, sy), jnp.where(f, st.cx, sx)
  new_lval = _nbd(st.k, simple)
  mark_val = jnp.where(f, jnp.where(right, lval - 128, jnp.where(cur == 1, lval, cur)),
                       new_lval - 128)
  do_mark = (f & (right | (cur == 1))) | isolated
  img = st.img.at[mark_y, mark_x].set(jnp.where(do_mark, mark_val, st.img[mark_y, mark_x]))
  owner_id = jnp.where(f, cid, st.k)
  owner = st.owner.at[mark_y, mark_x].set(
      jnp.where(do_mark, owner_id, st.owner[mark_y, mark_x]))

  do_push = (f & push) | isolated
  pt_c, pt_i = jnp.where(f, cid, st.k), jnp.where(f, st.n, 0)
  drop = jnp.where(do_push, pt_c, st.pts.shape[0])  # out of range: no write
  pts = st.pts.at[drop, pt_i].set(jnp.stack([mark_x - 1, mark_y - 1]), mode="drop")
  n = jnp.where(f, st.n + push.astype(jnp.int32), 0)

  rec = jnp.where(begin, st.k, st.pts.shape[0])
  holes = st.holes.at[rec].set(hole, mode="drop")
  parents = st.parents.at[rec].set(parent, mode="drop")
  len_at = jnp.where(f & finish, cid, jnp.where(isolated, st.k, st.pts.shape[0]))
  lengths = st.lengths.at[len_at].set(jnp.where(f, n, 1), mode="drop")

  # Scanner position: resume after the start, or move on.
  ends = f & finish
  resume = jnp.where(f, st.resume_x, xn + 1)
  next_row = scanning & ~found
  y = jnp.where(next_row, st.y + 1, st.y)
  x = jnp.where(next_row, 1, jnp.where(ends | isolated | (scanning & found), resume, st.x))
  prev_resumed = img[y, jnp.maximum(x - 1, 0)]
  prev = jnp.where(next_row, 0, jnp.where(ends | begin, prev_resumed,
                                          jnp.where(scanning, p, st.prev)))
  scan_last = jnp.where(begin, sx, jnp.where(_flagged(p), xn, last_x))
  last_x = jnp.where(next_row, 0, jnp.where(scanning, scan_last, st.last_x))
  following = jnp.where(f, ~finish, begin & linked)
  return _State(
      img=img, owner=owner, y=y, x=x, prev=prev, last_x=last_x,
      following=following, done=next_row & (y >= height - 1),
      cy=jnp.where(f, ny, sy), cx=jnp.where(f, nx, sx),
      s=jnp.where(f, (s_new + 4) & 7, s1), prev_s=jnp.where(f, s_new, s1 ^ 4),
      sy=jnp.where(f, st.sy, sy), sx=jnp.where(f, st.sx, sx),
      s1=jnp.where(f, st.s1, s1), resume_x=resume,
      k=st.k + begin.astype(jnp.int32), n=n, pts=pts, lengths=lengths,
      holes=holes, parents=parents)


def _init(binary, max_contours, max_points):
  """Scanner state for one plane, before the first pixel."""
  img = jnp.pad(binary.astype(jnp.int32), 1)
  zero = jnp.int32(0)
  return _State(
      img=img, owner=jnp.full(img.shape, -1, jnp.int32), y=jnp.int32(1),
      x=jnp.int32(1), prev=zero, last_x=zero, following=jnp.bool_(False),
      done=jnp.bool_(img.shape[0] < 3), cy=zero, cx=zero, s=zero, prev_s=zero,
      sy=zero, sx=zero, s1=zero, resume_x=zero, k=zero, n=zero,
      pts=jnp.zeros((max_contours, max_points, 2), jnp.int32),
      lengths=jnp.zeros(max_contours, jnp.int32),
      holes=jnp.zeros(max_contours, bool),
      parents=jnp.full(max_contours, -1, jnp.int32))


def _tree_order(parents, count):
  """OpenCV's output order and links: pre-order, newest sibling first."""
  cap = parents.shape[0]
  ids = jnp.arange(cap)
  valid = ids < count
  same = (parents[:, None] == parents[None, :]) & valid[:, None] & valid[None, :]
  nxt = jnp.max(jnp.where(same & (ids[None] < ids[:, None]), ids[None], -1), axis=1)
  prv = jnp.min(jnp.where(same & (ids[None] > ids[:, None]), ids[None], cap), axis=1)
  prv = jnp.where(prv == cap, -1, prv)
  is_child = (parents[None, :] == ids[:, None]) & valid[None, :]
  child = jnp.max(jnp.where(is_child, ids[None], -1), axis=1)
  first = jnp.max(jnp.where(valid & (parents == -1), ids, -1))

  def after_subtree(node):
    """The next sibling of the node or of its nearest ancestor that has one."""
    climb = lambda c: parents[c]
    node = jax.lax.while_loop(lambda c: (c != -1) & (nxt[c] == -1), climb, node)
    return jnp.where(node == -1, -1, nxt[node])

  def visit(state):
    node, pos, order = state
    order = order.at[pos].set(node)
    node = jnp.where(child[node] != -1, child[node], after_subtree(node))
    return node, pos + 1, order

  _, _, order = jax.lax.while_loop(lambda s: s[0] != -1, visit,
                                   (first, jnp.int32(0), jnp.full(cap, -1, jnp.int32)))
  inverse = jnp.full(cap + 1, -1, jnp.int32).at[jnp.where(order < 0, cap, order)].set(ids)
  remap = lambda a: jnp.where(a < 0, -1, inverse[jnp.where(a < 0, cap, a)])
  links = jnp.stack([remap(nxt), remap(prv), remap(child), remap(parents)], axis=1)
  return order, links


def _finish(st, max_contours):
  """Creation-order results of one plane → OpenCV's order and hierarchy."""
  count = jnp.minimum(st.k, max_contours)
  order, links = _tree_order(jnp.where(jnp.arange(max_contours) < count,
                                       st.parents, -1), count)
  valid = order >= 0
  pick = jnp.where(valid, order, 0)
  return Contours(
      points=jnp.where(valid[:, None, None], st.pts[pick], 0),
      lengths=jnp.where(valid, st.lengths[pick], 0),
      hierarchy=jnp.where(valid[:, None], links[pick], -1),
      is_hole=valid & st.holes[pick], count=st.k)


def _find_planes(stack, mode, method, max_contours, max_points):
  """Contours of N planes with one loop over the batch.

  The step is vmapped inside an unbatched ``while_loop`` (a finished plane's
  step writes nothing), so no per-iteration select copies the point buffers
  as a vmapped ``while_loop`` would.
  """
  init = jax.vmap(lambda b: _init(b, max_contours, max_points))(stack)
  step = jax.vmap(lambda st: _step(st, mode, method))
  st = jax.lax.while_loop(lambda st: jnp.any(~st.done), step, init)
  return jax.vmap(lambda st: _finish(st, max_contours))(st)


@functools.lru_cache(maxsize=None)
def _finders(mode, method, max_contours, max_points):
  """Jitted (batch, single plane) finders; ``jax.vmap`` of the single one
  runs the batch finder (a custom batching rule)."""
  planes = functools.partial(_find_planes, mode=mode, method=method,
                             max_contours=max_contours, max_points=max_points)

  @jax.custom_batching.custom_vmap
  def single(plane):
    return jax.tree.map(lambda a: a[0], planes(plane[None]))

  @single.def_vmap
  def _(axis_size, in_batched, plane):
    if not in_batched[0]:
      plane = jnp.broadcast_to(plane, (axis_size,) + plane.shape)
    return planes(plane), Contours(*[True] * len(Contours._fields))

  return jax.jit(planes), jax.jit(single)


def find_contours(binary, mode: int = RETR_TREE, method: int = CHAIN_APPROX_NONE,
                  max_contours: int = 128, max_points: int = 1024) -> Contours:
  """Border contours of a binary image, equal to ``cv2.findContours``.

  Args:
    binary: H×W, H×W×1 or N×H×W×1 uint8/bool/float; nonzero is foreground
      (8-connected; holes are 4-connected background), outside is background.
    mode: ``RETR_EXTERNAL``, ``RETR_LIST``, ``RETR_CCOMP`` or ``RETR_TREE``
      (OpenCV's values).
    method: ``CHAIN_APPROX_NONE`` (every boundary pixel) or
      ``CHAIN_APPROX_SIMPLE`` (corner points only).
    max_contours, max_points: static capacities.

  Returns:
    :class:`Contours`: the same contours, points (same start and direction),
    order and hierarchy as OpenCV (OpenCV's nbd marks wrap after 125 contours
    and it then disambiguates parents by tracing; here every contour keeps
    its own id, which gives the parent OpenCV's tracing settles on).
  """
  if mode not in (RETR_EXTERNAL, RETR_LIST, RETR_CCOMP, RETR_TREE):
    raise ValueError(f"find_contours: mode must be RETR_EXTERNAL (0), RETR_LIST (1), "
                     f"RETR_CCOMP (2) or RETR_TREE (3), got {mode!r}")
  if method not in (CHAIN_APPROX_NONE, CHAIN_APPROX_SIMPLE):
    raise ValueError("find_contours: method must be CHAIN_APPROX_NONE (1) or "
                     f"CHAIN_APPROX_SIMPLE (2), got {method!r}")
  for name, value in (("max_contours", max_contours), ("max_points", max_points)):
    if not isinstance(value, int) or value < 1:
      raise ValueError(f"find_contours: {name} must be a positive int, got {value!r}")
  stack, batched = _binary.planes(binary, "find_contours", "binary")
  batch_fn, single_fn = _finders(mode, method, max_contours, max_points)
  return batch_fn(stack) if batched else single_fn(stack[0])


def _ring(contour, length):
  """Points (P×2 float32), the next point around the ring and the valid mask."""
  contour = jnp.asarray(contour)
  if contour.ndim != 2 or contour.shape[-1] != 2:
    raise ValueError(f"contour must be P×2 (x, y) points, got shape {contour.shape}")
  size = contour.shape[0]
  length = size if length is None else length
  idx = jnp.arange(size)
  valid = idx < length
  nxt = jnp.where(idx + 1 < length, idx + 1, 0)
  pts = contour.astype(jnp.float32)
  return pts, pts[nxt], valid


def contour_area(contour, length=None, oriented: bool = False):
  """Polygon area by the shoelace formula, as ``cv2.contourArea``.

  Args:
    contour: P×2 (x, y) points (a padded row of :class:`Contours`).
    length: number of valid points (default all); vmap over contours.
    oriented: signed area (positive when the points run counter-clockwise in
      image coordinates, OpenCV's sign) instead of its absolute value.

  Returns:
    float32 scalar (OpenCV computes in float64).
  """
  pts, nxt, valid = _ring(contour, length)
  cross = pts[:, 0] * nxt[:, 1] - nxt[:, 0] * pts[:, 1]
  area = jnp.sum(jnp.where(valid, cross, 0.0)) / 2
  return area if oriented else jnp.abs(area)


def arc_length(contour, length=None, closed: bool = True):
  """Perimeter (closed) or polyline length, as ``cv2.arcLength``; float32."""
  pts, nxt, valid = _ring(contour, length)
  n = contour.shape[0] if length is None else length
  seg = jnp.sqrt(jnp.sum((nxt - pts) ** 2, axis=-1))
  last = jnp.arange(pts.shape[0]) == n - 1
  keep = valid & (closed | ~last)
  return jnp.sum(jnp.where(keep, seg, 0.0))


def bounding_rect(contour, length=None):
  """Upright bounding box ``(x, y, width, height)`` int32, as ``cv2.boundingRect``."""
  pts, _, valid = _ring(contour, length)
  big = jnp.float32(2 ** 30)
  lo = jnp.min(jnp.where(valid[:, None], pts, big), axis=0)
  hi = jnp.max(jnp.where(valid[:, None], pts, -big), axis=0)
  return jnp.concatenate([lo, hi - lo + 1]).astype(jnp.int32)
