"""Per-image time of classic ops: cvx (batched, jit) vs OpenCV and scikit-image.

  python benchmarks/ops_vs_opencv.py [--batch 32] [--size 512] [--repeats 5] [--ops hsv,canny,sobel]

A batch of real photographs (scikit-image's samples, two crops each, resized
and cropped to size × size, uint8 RGB; gray samples repeated over RGB) goes
through each op: cvx as one jitted call on the whole batch (compilation
excluded, ``block_until_ready``), OpenCV and scikit-image one image at a time
in a Python loop. Each repeat times every runner once, interleaved; medians
are reported in ms per image with the ratios cvx/OpenCV (goal ≤ 2) and
skimage/cvx (goal ≥ 10). The script restarts itself with malloc on
transparent huge pages (:mod:`cvx.huge_pages`, as ``cvx.main`` does;
``CVX_HUGE_PAGES=0`` keeps 4 KiB pages); the header names the
``GLIBC_TUNABLES`` (malloc settings, see RESULTS.md), which change every
runner's times. Canny, Sobel and erosion take the gray image; k-means has no
scikit-image version, scikit-learn's ``KMeans`` stands in.
"""
import os
import time
from typing import Callable

if __name__ == "__main__":  # before JAX loads: the restart replaces the process
  from cvx import huge_pages
  huge_pages.restart_with_huge_pages()

import cv2
import jax
import numpy as np
import skimage
import sklearn
from absl import app, flags
from skimage import color, data, feature, filters, morphology
from sklearn import cluster

from cvx import ops

_BATCH = flags.DEFINE_integer("batch", 32, "Images per batch.")
_SIZE = flags.DEFINE_integer("size", 512, "Side of the square images.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Interleaved repeats (median).")
_OPS = flags.DEFINE_list("ops", None, "Ops whose names contain any of these words, "
                         "case-insensitive (default all).")

COLOR_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
                "immunohistochemistry", "retina", "stereo_motorcycle")
GRAY_PHOTOS = ("camera", "coins", "moon", "page", "text", "brick", "grass", "gravel", "clock",
               "cell")
KMEANS = dict(k=4, max_iter=10, epsilon=1.0)  # one attempt, k-means++ seeding


def _square(image: np.ndarray, side: int, short: int, offset: float) -> np.ndarray:
  """Resizes the short side to ``short`` (area or linear), crops side × side."""
  h, w = image.shape[:2]
  scale = short / min(h, w)
  size = (max(side, round(w * scale)), max(side, round(h * scale)))
  interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
  image = cv2.resize(image, size, interpolation=interpolation)
  y = int((size[1] - side) * offset)
  x = int((size[0] - side) * offset)
  return image[y:y + side, x:x + side]


def photographs(count: int, side: int) -> np.ndarray:
  """count × side × side × 3 uint8: each sample centre-cropped, then a second,
  tighter crop of each, until ``count``."""
  samples = []
  for name in COLOR_PHOTOS + GRAY_PHOTOS:
    image = getattr(data, name)()
    image = image[0] if isinstance(image, tuple) else image
    samples.append(image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB))
  crops = [_square(s, side, side, 0.5) for s in samples]
  crops += [_square(s, side, round(side * 1.25), 0.25) for s in samples]
  return np.stack(crops[:count])


# ---------------------------------------------------------------- the ops
def _cvx_kmeans(batch):
  return ops.kmeans_segment(jax.random.key(0), batch, KMEANS["k"], attempts=1,
                            max_iter=KMEANS["max_iter"], epsilon=KMEANS["epsilon"])[1]


def _cv_kmeans(image):
  criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, KMEANS["max_iter"],
              KMEANS["epsilon"])
  pixels = image.reshape(-1, 3).astype(np.float32)
  _, labels, centers = cv2.kmeans(pixels, KMEANS["k"], None, criteria, 1,
                                  cv2.KMEANS_PP_CENTERS)
  return centers[labels[:, 0]]


def _sk_kmeans(image):
  pixels = image.reshape(-1, 3).astype(np.float32)
  km = cluster.KMeans(KMEANS["k"], n_init=1, max_iter=KMEANS["max_iter"], random_state=0)
  return km.fit(pixels).cluster_centers_


_SIGMA_5 = 0.3 * ((5 - 1) * 0.5 - 1) + 0.8  # OpenCV's sigma for a 5-tap Gaussian
_SQUARE_5 = np.ones((5, 5), np.uint8)

# name → (input "rgb"/"gray", cvx on a batch, OpenCV on one image, skimage on one image)
OPS = {
    "RGB→HSV": ("rgb", ops.rgb_to_hsv, lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2HSV),
                color.rgb2hsv),
    "Gaussian 5×5": ("rgb", lambda x: ops.gaussian_blur(x, 5, 0),
                     lambda x: cv2.GaussianBlur(x, (5, 5), 0),
                     lambda x: filters.gaussian(x, _SIGMA_5, truncate=2 / _SIGMA_5,
                                                channel_axis=-1, preserve_range=True)),
    "Sobel dx (float32)": ("gray", lambda x: ops.sobel(x, 1, 0),
                           lambda x: cv2.Sobel(x, cv2.CV_32F, 1, 0), filters.sobel_v),
    # scikit-image has no integer output: its row is the same float64 filter.
    "Sobel dx (int16)": ("gray", lambda x: ops.sobel(x, 1, 0, ddepth=np.int16),
                         lambda x: cv2.Sobel(x, cv2.CV_16S, 1, 0), filters.sobel_v),
    "erode 5×5": ("gray", lambda x: ops.erode(x, _SQUARE_5), lambda x: cv2.erode(x, _SQUARE_5),
                  lambda x: morphology.erosion(x, _SQUARE_5)),
    "Canny (100, 200)": ("gray", lambda x: ops.canny(x, 100, 200),
                         lambda x: cv2.Canny(x, 100, 200),
                         lambda x: feature.canny(x, 1.0, 100, 200)),
    "k-means k=4 (colours)": ("rgb", _cvx_kmeans, _cv_kmeans, _sk_kmeans),
}


def select_ops(words: list[str] | None) -> list[str]:
  """Names of OPS containing any of ``words`` (all when None); UsageError for a
  word that matches none."""
  if not words:
    return list(OPS)
  unmatched = [w for w in words if not any(w.lower() in op.lower() for op in OPS)]
  if unmatched:
    raise app.UsageError(f"--ops {unmatched} match no op; ops: {list(OPS)}")
  return [op for op in OPS if any(w.lower() in op.lower() for w in words)]


# ---------------------------------------------------------------- timing
def runners(op: str, rgb: np.ndarray, gray: np.ndarray) -> dict[str, Callable[[], None]]:
  """Warmed-up closures running ``op`` over the whole batch once."""
  kind, ours, cv_fn, sk_fn = OPS[op]
  images = rgb if kind == "rgb" else gray
  batch = jax.device_put(images if kind == "rgb" else images[..., None])
  compiled = jax.jit(ours)
  jax.block_until_ready(compiled(batch))
  loop = lambda fn: lambda: [fn(image) for image in images]
  return {"cvx": lambda: jax.block_until_ready(compiled(batch)),
          "OpenCV": loop(cv_fn), "skimage": loop(sk_fn)}


def time_runners(runs: dict, repeats: int, count: int) -> dict[str, float]:
  """Median ms per image of each runner, repeats interleaved."""
  times = {name: [] for name in runs}
  for name, run in runs.items():  # one untimed pass each (caches, lazy init)
    run()
  for _ in range(repeats):
    for name, run in runs.items():
      start = time.perf_counter()
      run()
      times[name].append(time.perf_counter() - start)
  return {name: 1000 * float(np.median(t)) / count for name, t in times.items()}


def main(argv):
  del argv
  names = select_ops(_OPS.value)
  rgb = photographs(_BATCH.value, _SIZE.value)
  gray = np.stack([cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in rgb])
  print(f"{len(rgb)} photographs {_SIZE.value}×{_SIZE.value}; JAX {jax.__version__} "
        f"({jax.default_backend()}), OpenCV {cv2.__version__} (setNumThreads default: "
        f"{cv2.getNumThreads()} threads), scikit-image {skimage.__version__}, scikit-learn "
        f"{sklearn.__version__}; {len(os.sched_getaffinity(0))} CPUs; median of "
        f"{_REPEATS.value} interleaved repeats; GLIBC_TUNABLES="
        f"{os.environ.get('GLIBC_TUNABLES', '(unset)')}")
  print("| op | cvx ms/image | OpenCV ms/image | scikit-image ms/image | cvx/OpenCV (≤ 2) | "
        "skimage/cvx (≥ 10) |")
  print("|---|---|---|---|---|---|")
  for op in names:
    t = time_runners(runners(op, rgb, gray), _REPEATS.value, len(rgb))
    ratio_cv, ratio_sk = t["cvx"] / t["OpenCV"], t["skimage"] / t["cvx"]
    mark = lambda ok: "" if ok else " ✗"
    print(f"| {op} | {t['cvx']:.2f} | {t['OpenCV']:.2f} | {t['skimage']:.2f} | "
          f"{ratio_cv:.2f}×{mark(ratio_cv <= 2)} | {ratio_sk:.1f}×{mark(ratio_sk >= 10)} |",
          flush=True)


if __name__ == "__main__":
  app.run(main)
