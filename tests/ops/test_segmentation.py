"""k-means against scikit-learn, colour segmentation of a photo, threshold segmentation."""
import os
import subprocess
import sys

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from cvx.ops import segmentation as S
from tests.conftest import FAST_COMPILE, REPO

KEY = jax.random.PRNGKey(0)
HOW = ["eager", "jit", "vmap"]


def run_kmeans(how, datasets, k, **kw):
  """kmeans per dataset: eagerly, jitted, or vmapped over (keys, datasets)."""
  keys = jax.random.split(KEY, len(datasets))
  fn = lambda key, x: S.kmeans(key, x, k, **kw)
  if how == "vmap":
    out = jax.vmap(fn)(keys, jnp.stack(datasets))
    return [jax.tree.map(lambda a, i=i: a[i], out) for i in range(len(datasets))]
  f = jax.jit(fn) if how == "jit" else fn
  return [f(key, x) for key, x in zip(keys, datasets)]


def same_partition(a, b):
  """Equal labelings up to renaming the clusters."""
  pairs = set(zip(np.asarray(a).tolist(), np.asarray(b).tolist()))
  return len(pairs) == len(set(np.asarray(a).tolist())) == len(set(np.asarray(b).tolist()))


@pytest.fixture(scope="module")
def blobs():
  return [make_blobs(400, n_features=3, centers=4, cluster_std=0.5, center_box=(-20, 20),
                     random_state=seed)[0].astype(np.float32) for seed in (0, 1)]


@pytest.mark.parametrize("how", HOW)
def test_separated_blobs_equal_sklearn(blobs, how):
  for out, x in zip(run_kmeans(how, blobs, 4), blobs):
    ref = KMeans(4, n_init=10, random_state=0).fit(x)
    assert bool(out.converged)
    assert same_partition(out.labels, ref.labels_)
    order = np.argsort(np.asarray(out.centers)[:, 0])
    np.testing.assert_allclose(np.asarray(out.centers)[order],
                               ref.cluster_centers_[np.argsort(ref.cluster_centers_[:, 0])],
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(out.compactness), ref.inertia_, rtol=1e-5)


@pytest.fixture(scope="module")
def photo_pixels():
  return [data.astronaut()[::8, ::8].reshape(-1, 3).astype(np.float32),
          data.coffee()[::6, ::9][:64, :64].reshape(-1, 3).astype(np.float32)]


@pytest.mark.parametrize("how", HOW)
def test_photo_inertia_matches_sklearn_best(photo_pixels, how):
  for out, x in zip(run_kmeans(how, photo_pixels, 4, attempts=8), photo_pixels):
    ref = KMeans(4, n_init=10, random_state=0).fit(x)
    assert bool(out.converged)
    assert float(out.compactness) <= ref.inertia_ * (1 + 1e-3)
    # The reported compactness is the inertia of the reported labels.
    direct = np.sum((x - np.asarray(out.centers)[np.asarray(out.labels)]) ** 2)
    np.testing.assert_allclose(float(out.compactness), direct, rtol=1e-4)


def test_iteration_cap_is_reported(photo_pixels):
  out = S.kmeans(KEY, photo_pixels[0], 8, attempts=1, max_iter=1)
  assert int(out.iterations) == 1 and not bool(out.converged)
  out = S.kmeans(KEY, photo_pixels[0], 8, attempts=1)
  assert bool(out.converged) and int(out.iterations) > 1


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_lloyd_stops_at_the_first_fixed_point(dtype):
  # ε = 0 runs until no assignment changes: the reported count is the first
  # iteration whose centres equal the previous ones, so one fewer is unconverged.
  pixels = data.astronaut()[::4, ::4].reshape(-1, 3).astype(dtype)
  out = S.kmeans(KEY, pixels, 6, attempts=1)
  assert bool(out.converged) and 1 < int(out.iterations) < 300
  early = S.kmeans(KEY, pixels, 6, attempts=1, max_iter=int(out.iterations) - 1)
  assert not bool(early.converged)
  # At the fixed point every pixel is nearest (float64) to its own centre.
  centres = np.asarray(out.centers, np.float64)
  d = ((pixels.astype(np.float64)[:, None] - centres[None]) ** 2).sum(-1)
  np.testing.assert_array_equal(np.take_along_axis(d, np.asarray(out.labels)[:, None], 1)[:, 0],
                                d.min(1))


_FIXED_POINT_SCRIPT = """
import jax
from skimage import data
from cvx.ops import segmentation as S
pixels, key = data.astronaut()[::4, ::4].reshape(-1, 3), jax.random.PRNGKey(0)
out = S.kmeans(key, pixels, 6, attempts=1)
early = S.kmeans(key, pixels, 6, attempts=1, max_iter=int(out.iterations) - 1)
print(int(out.iterations), bool(out.converged), bool(early.converged))
"""


def test_lloyd_stops_at_the_fixed_point_when_xla_contracts_fmas():
  # The suite compiles with LLVM's optimisations off (tests/conftest.py); with
  # them on, XLA:CPU fuses the centre update and the shift into an FMA whose
  # residue kept a zero-shift stopping rule from ever firing on uint8 photos.
  flags = os.environ.get("XLA_FLAGS", "").replace(FAST_COMPILE, "").strip()
  out = subprocess.run([sys.executable, "-c", _FIXED_POINT_SCRIPT], cwd=REPO,
                       capture_output=True, text=True,
                       env=dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu"))
  assert out.returncode == 0, out.stderr
  iterations, converged, early = out.stdout.split()
  assert 1 < int(iterations) < 300 and converged == "True" and early == "False"


def test_batched_data_uses_one_key_per_problem(blobs):
  batch = S.kmeans(KEY, np.stack(blobs), 4)
  keys = jax.random.split(KEY, 2)
  for i, x in enumerate(blobs):
    single = S.kmeans(keys[i], x, 4)
    np.testing.assert_array_equal(batch.labels[i], single.labels)


@pytest.mark.parametrize("how", HOW)
def test_kmeans_segment_photo(how):
  images = [data.astronaut()[100:164, 150:214], data.chelsea()[50:114, 100:164]]
  fn = lambda key, im: S.kmeans_segment(key, im, 4, attempts=2)
  keys = jax.random.split(KEY, 2)
  if how == "vmap":
    outs = jax.vmap(fn)(keys, jnp.stack(images))
    outs = [jax.tree.map(lambda a, i=i: a[i], outs) for i in range(2)]
  else:
    f = jax.jit(fn) if how == "jit" else fn
    outs = [f(key, im) for key, im in zip(keys, images)]
  for (lab, quant, res), image in zip(outs, images):
    assert lab.shape == (64, 64) and quant.dtype == jnp.uint8 and quant.shape == image.shape
    centres = np.clip(np.round(np.asarray(res.centers)), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(quant, centres[np.asarray(lab)])
    assert len(np.unique(np.asarray(quant).reshape(-1, 3), axis=0)) <= 4
    ref = KMeans(4, n_init=10, random_state=0).fit(image.reshape(-1, 3).astype(np.float32))
    assert float(res.compactness) <= ref.inertia_ * (1 + 1e-3)


def test_kmeans_segment_batch_and_gray():
  gray = data.camera()[:16, :16]
  lab, quant, res = S.kmeans_segment(KEY, gray, 2, attempts=1)
  assert lab.shape == quant.shape == (16, 16)
  images = np.stack([data.astronaut()[:16, :16], data.coffee()[:16, :16]])
  lab, quant, res = S.kmeans_segment(KEY, images.astype(np.float32) / 255, 3, attempts=1)
  assert lab.shape == (2, 16, 16) and quant.shape == images.shape
  assert quant.dtype == jnp.float32 and res.centers.shape == (2, 3, 3)


@pytest.mark.parametrize("how", HOW)
def test_threshold_segment(how):
  coins = data.coins()[:64, :64]
  t, mask = cv2.threshold(coins, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
  fn = lambda im: S.threshold_segment(im, [t])
  if how == "vmap":
    out = jax.vmap(fn)(jnp.stack([coins, coins[::-1]]))[0]
  else:
    out = (jax.jit(fn) if how == "jit" else fn)(coins)
  np.testing.assert_array_equal(out, mask // 255)
  many = S.threshold_segment(coins, [60, 120, 180])
  np.testing.assert_array_equal(many, np.digitize(coins, [60, 120, 180], right=True))


def test_bad_arguments():
  x = np.zeros((10, 2), np.float32)
  with pytest.raises(ValueError, match="k must be"):
    S.kmeans(KEY, x, 11)
  with pytest.raises(ValueError, match="attempts"):
    S.kmeans(KEY, x, 2, attempts=0)
  with pytest.raises(ValueError, match="data must be"):
    S.kmeans(KEY, np.zeros(10), 2)
  with pytest.raises(TypeError, match="bool"):
    S.kmeans(KEY, x.astype(bool), 2)
  with pytest.raises(ValueError, match="thresholds"):
    S.threshold_segment(np.zeros((4, 4), np.uint8), [])
