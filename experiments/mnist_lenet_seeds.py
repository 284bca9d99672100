"""Seed variance of the default job (configs/mnist_lenet.py), as a table.

  python experiments/mnist_lenet_seeds.py --workdir=/tmp/cvx/seeds [--seeds=5]

Runs the quick-start config once per seed through the sweep runner (finished
seeds are skipped) and prints a Markdown table with mean ± std, for
experiments/RESULTS.md.
"""
import os

import numpy as np
from absl import app, flags

from cvx import sweep

_WORKDIR = flags.DEFINE_string("workdir", "/tmp/cvx/mnist_lenet_seeds", "Sweep dir.")
_SEEDS = flags.DEFINE_integer("seeds", 5, "Seeds 0 .. N-1.")
CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "mnist_lenet.py")


def main(argv):
  del argv
  rows = []
  for seed in range(_SEEDS.value):
    point = {"seed": seed}
    workdir = os.path.join(_WORKDIR.value, sweep.point_name(seed, point))
    summary = sweep.run_point(CONFIG, workdir, point, shared=[])
    rows.append((seed, summary["final"]["accuracy"], summary["best"]["accuracy"],
                 summary["wall_time_s"], summary["images_per_s"]))
  lines = ["| seed | final test accuracy | best test accuracy | wall time (s) | train images/s |",
           "|---|---|---|---|---|"]
  lines += [f"| {s} | {f:.4f} | {b:.4f} | {w:.1f} | {r:.0f} |" for s, f, b, w, r in rows]
  final = np.array([r[1] for r in rows])
  wall = np.array([r[3] for r in rows])
  lines.append(f"| mean ± std | {final.mean():.4f} ± {final.std(ddof=1):.4f} | | "
               f"{wall.mean():.1f} ± {wall.std(ddof=1):.1f} | |")
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)
