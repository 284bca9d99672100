"""Input pipeline throughput vs the training step it feeds, in one run.

  python benchmarks/input_pipeline.py [--steps=300] [--batch=64] [--workers=N]

For the embedded MNIST (in memory, and read from ArrayRecord files per batch,
in this process and in ``--workers`` decoding processes, default one per core)
and a folder of 32×32 RGB PNGs, measures images/s from the source through the
sampler, the prefetch thread and the transfer into sharded global
``jax.Array``s — the exact path ``cvx.main`` uses — and the images/s of the
LeNet-5 train step on the same images. Prints a table; the last line is the
smallest pipeline/train ratio.
"""
import os
import tempfile
import time

if __name__ == "__main__":  # before JAX loads: the restart replaces the process
  from cvx import huge_pages
  huge_pages.restart_with_huge_pages()

import jax
import numpy as np
from absl import app, flags
from PIL import Image

from cvx import augment, config_lib, models, tasks
from cvx.data import pipeline, sources
from cvx.train import optim, parallel, step as step_lib
from cvx.train import state as state_lib

_STEPS = flags.DEFINE_integer("steps", 300, "Batches timed per measurement.")
_BATCH = flags.DEFINE_integer("batch", 64, "Global batch size.")
_WORKERS = flags.DEFINE_integer("workers", os.cpu_count(),
                                "Decoding processes for the ArrayRecord row.")


def make_folder(root: str, per_class: int = 200, classes: int = 10) -> str:
  """A folder dataset of random 32×32 RGB PNGs: root/train/<class>/<i>.png."""
  rng = np.random.default_rng(0)
  for c in range(classes):
    folder = os.path.join(root, "train", f"class{c}")
    os.makedirs(folder, exist_ok=True)
    for i in range(per_class):
      pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
      Image.fromarray(pixels).save(os.path.join(folder, f"{i}.png"))
  return root


def pipeline_rate(source, par, steps: int, batch: int, workers: int) -> float:
  sampler = pipeline.Sampler(len(source), batch, seed=0)
  batches = pipeline.prefetch(
      pipeline.train_batches(source, sampler, 0, steps + 5, workers),
      par.put_batch, size=2)
  for _ in range(5):  # Warm-up: thread and worker start, first transfers.
    jax.block_until_ready(next(batches))
  start = time.perf_counter()
  for b in batches:
    jax.block_until_ready(b)
  return steps * batch / (time.perf_counter() - start)


def train_rate(source, par, steps: int, batch: int) -> float:
  """LeNet-5 train step (default config: affine augmentation) on device batches."""
  config = config_lib.base_config()
  config.optimizer.name = "adamw"
  model = models.create("lenet5", num_classes=source.num_classes)
  task = tasks.create("classification", num_classes=source.num_classes)
  tx = optim.make_optimizer(config, 1e-3)
  state = par.init_state(lambda: state_lib.create(model, tx, source.image_shape, 0))
  step = par.compile_train(step_lib.make_train_step(
      model, task, tx, config, augment.build("affine")))
  sampler = pipeline.Sampler(len(source), batch, seed=0)
  data = [par.put_batch(source.read(sampler.indices(i))) for i in range(10)]
  for b in data[:3]:
    state, metrics = step(state, b)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for i in range(steps):
    state, metrics = step(state, data[i % len(data)])
  jax.block_until_ready(metrics)
  return steps * batch / (time.perf_counter() - start)


def main(argv):
  del argv
  par = parallel.create("jit")
  data_dir = os.environ.get("CVX_DATA_DIR") or sources.default_data_dir()
  with tempfile.TemporaryDirectory() as tmp:
    records = sources.load("mnist5k", "train", data_dir, cache=False)
    cases = {  # name: (source, worker processes)
        "mnist5k (in memory)": (
            sources.load("mnist5k", "train", data_dir, cache=True), 0),
        "mnist5k (ArrayRecord reads)": (records, 0),
        f"mnist5k (ArrayRecord reads, {_WORKERS.value} worker processes)": (
            records, _WORKERS.value),
        "32×32 RGB PNG folder": (
            sources.load(f"folder:{make_folder(tmp)}", "train"), 0),
    }
    print(f"devices: {jax.device_count()} × {jax.devices()[0].device_kind}; "
          f"batch {_BATCH.value}; {_STEPS.value} batches per measurement\n")
    print("| source | pipeline images/s | LeNet-5 train images/s | ratio |")
    print("|---|---|---|---|")
    ratios = []
    for name, (source, workers) in cases.items():
      feed = pipeline_rate(source, par, _STEPS.value, _BATCH.value, workers)
      train = train_rate(source, par, _STEPS.value, _BATCH.value)
      ratios.append(feed / train)
      print(f"| {name} | {feed:,.0f} | {train:,.0f} | {feed / train:.1f}× |")
  print(f"\nmin pipeline/train ratio: {min(ratios):.1f}×")


if __name__ == "__main__":
  app.run(main)
