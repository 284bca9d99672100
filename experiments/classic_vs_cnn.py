"""Handcrafted features + classic classifiers against LeNet-5 on the embedded MNIST.

  python experiments/classic_vs_cnn.py --workdir=/tmp/cvx/classic_vs_cnn \
      [--results=experiments/RESULTS.md]

Features from :mod:`cvx.features` (raw pixels, HOG, Sobel gradient histograms)
feed the scikit-learn pipelines of :mod:`cvx.classic` (standardise, then SVM,
Gaussian naive Bayes or logistic regression; and an SVM without the scaler);
LeNet-5 trains with ``configs/mnist_lenet.py`` as shipped, through the
project's training loop (``python -m cvx.main`` via the sweep runner; a
finished run is reused, with its recorded wall time). Same 4,000 training and
1,000 test digits of ``mnist5k`` for all. Prints a Markdown
table; ``--results`` writes it between this experiment's markers in that file
(adding a section the first time) and leaves the rest of the file alone.
"""
import functools
import importlib.util
import os
import time

import jax
import numpy as np
from absl import app, flags, logging

from cvx import classic, features, sweep
from cvx.data import sources
from cvx.train import loop
from cvx.train import step as step_lib

_WORKDIR = flags.DEFINE_string("workdir", "/tmp/cvx/classic_vs_cnn", "LeNet-5 run directory.")
_RESULTS = flags.DEFINE_string("results", None, "RESULTS.md to write the table into.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repeats of each prediction (median).")

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs",
                      "mnist_lenet.py")
FEATURES = {
    "raw pixels": features.raw_pixels,
    "HOG (9 bins, 7×7 cells, 2×2 blocks, L2-Hys)": functools.partial(
        features.hog, orientations=9, pixels_per_cell=(7, 7), cells_per_block=(2, 2)),
    "gradient histograms (4×4 grid × 9 bins + 8 magnitude bins)": functools.partial(
        features.gradient_histogram, orientations=9, grid=(4, 4), magnitude_bins=8),
}
# (classifier, standardise features first); the unscaled SVM shows what the
# scaler costs an RBF kernel on raw pixels.
CLASSIFIERS = [("svm", True), ("naive_bayes", True), ("logistic_regression", True), ("svm", False)]
BEGIN, END = "<!-- classic_vs_cnn:begin -->", "<!-- classic_vs_cnn:end -->"
TITLE = "## Handcrafted features + classic classifiers vs LeNet-5 (`experiments/classic_vs_cnn.py`)"


def _timed(fn, *args):
  """(result, seconds) of one call, device work included."""
  start = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - start


def _median_time(fn, *args) -> float:
  return float(np.median([_timed(fn, *args)[1] for _ in range(_REPEATS.value)]))


def _load(split: str) -> dict:
  source = sources.load("mnist5k", split)
  return source.read(np.arange(len(source)))


def classic_rows(train: dict, test: dict) -> list[dict]:
  """Every feature × classifier: accuracy, feature/fit/predict seconds."""
  rows = []
  for kind, extract in FEATURES.items():
    extract = jax.jit(extract)
    extract(test["image"])  # compile for both shapes outside the timings
    extract(train["image"])
    f_train, t_train = _timed(extract, train["image"])
    f_test, t_test = _timed(extract, test["image"])
    f_train, f_test = np.asarray(f_train), np.asarray(f_test)
    for name, scale in CLASSIFIERS:
      model, fit = _timed(classic.make_classifier(name, scale=scale).fit, f_train,
                          train["label"])
      predicted = model.predict(f_test)
      rows.append(dict(model=name if scale else f"{name} (no scaler)", features=kind, dims=f_train.shape[1],
                       accuracy=float(np.mean(predicted == test["label"])),
                       features_s=t_train + t_test, fit_s=fit,
                       predict_s=_median_time(model.predict, f_test)))
  return rows


def lenet_row(test: dict) -> dict:
  """LeNet-5 through the training loop; prediction timed on the test split."""
  workdir = os.path.join(_WORKDIR.value, "lenet5")
  summary = sweep.run_point(CONFIG, workdir, {}, shared=[])
  spec = importlib.util.spec_from_file_location("mnist_lenet", CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  run, state, _ = loop.restore(config, workdir, best=False)
  predict = jax.jit(step_lib.make_predict(run.model, config))
  logits, _ = predict(state, test["image"])  # compile
  accuracy = float(np.mean(np.asarray(logits).argmax(-1) == test["label"]))
  return dict(model="LeNet-5 (configs/mnist_lenet.py, 40 epochs)", features="learned",
              dims=None, accuracy=accuracy, features_s=None, fit_s=summary["wall_time_s"],
              predict_s=_median_time(predict, state, test["image"]),
              reported=summary["final"]["accuracy"])


def table(rows: list[dict]) -> str:
  lines = ["| model | features | dims | test accuracy | feature time (s, 5,000 images) | "
           "fit time (s) | predict time (ms, 1,000 images) |",
           "|---|---|---|---|---|---|---|"]
  for r in rows:
    dims = "" if r["dims"] is None else str(r["dims"])
    feats = "" if r["features_s"] is None else f"{r['features_s']:.2f}"
    lines.append(f"| {r['model']} | {r['features']} | {dims} | {r['accuracy']:.3f} | {feats} | "
                 f"{r['fit_s']:.1f} | {1000 * r['predict_s']:.1f} |")
  return "\n".join(lines)


def write_results(path: str, body: str) -> None:
  """Replaces the text between the markers, or appends a new section."""
  text = open(path).read() if os.path.exists(path) else "# Experiment results\n"
  block = f"{BEGIN}\n{body}\n{END}"
  if BEGIN in text and END in text:
    head, rest = text.split(BEGIN, 1)
    text = head + block + rest.split(END, 1)[1]
  else:
    text = text.rstrip("\n") + f"\n\n{TITLE}\n\n{block}\n"
  with open(path, "w") as f:
    f.write(text)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax is chatty at INFO.
  train, test = _load("train"), _load("test")
  rows = classic_rows(train, test)
  rows.append(lenet_row(test))
  body = table(rows)
  print(body)
  if _RESULTS.value:
    write_results(_RESULTS.value, body)


if __name__ == "__main__":
  app.run(main)
