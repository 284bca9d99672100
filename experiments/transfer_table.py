"""Scratch vs feature extractor vs freeze 50% vs fine-tune all, by target size.

  python experiments/transfer_table.py --workdir=/tmp/cvx/transfer [--parallel=2]

Pretrains LeNet-5 on MNIST digits 0–4 (configs/mnist_transfer.py:stage=pretrain),
then trains on digits 5–9 with N ∈ {10, 50, 200} training digits per class,
for each of five strategies and seeds 0–2 (the seed draws the N digits, the head's
initialisation and the batch order). Every run goes through the sweep runner
(finished runs are skipped on a rerun). Prints a Markdown table of final test
accuracy, mean ± std over seeds, and writes ``results.csv`` into the workdir
and the plot to ``--plot``.
"""
import concurrent.futures
import csv
import json
import os

import numpy as np
from absl import app, flags
from matplotlib.figure import Figure

from cvx import sweep

_WORKDIR = flags.DEFINE_string("workdir", "/tmp/cvx/transfer_table", "Experiment dir.")
_PARALLEL = flags.DEFINE_integer("parallel", 2, "Runs at once.")
_PLOT = flags.DEFINE_string("plot", os.path.join(os.path.dirname(__file__),
                                                 "transfer_table.png"), "PNG path.")
CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "mnist_transfer.py")
SIZES = (10, 50, 200)
SEEDS = (0, 1, 2)
# Pretrained layers learn at a tenth of the new head's rate (the seeds: keep
# the learning rate of transferred layers small), except in the last strategy.
SMALL_LR = {"transfer.backbone_lr_scale": 0.1}
STRATEGIES = {  # name → overrides; all but scratch start from the pretrained run
    "scratch": {},
    "feature extractor": {"transfer.freeze": "backbone", **SMALL_LR},
    "freeze 50%": {"transfer.freeze": "0.5", **SMALL_LR},
    "fine-tune all": {"transfer.freeze": "none", **SMALL_LR},
    "fine-tune all, one lr": {"transfer.freeze": "none"},
}


def _points(pretrained: str) -> list[tuple[str, dict]]:
  points = []
  for size in SIZES:
    for name, overrides in STRATEGIES.items():
      for seed in SEEDS:
        init = {"init_from": pretrained} if name != "scratch" else {}
        points.append((name, {"data.examples_per_class": size, "seed": seed,
                              **overrides, **init}))
  return points


def _run(index: int, name: str, point: dict) -> dict:
  label = {"strategy": name, "n": point["data.examples_per_class"], "seed": point["seed"]}
  workdir = os.path.join(_WORKDIR.value, sweep.point_name(index, label))
  summary = sweep.run_point(f"{CONFIG}:stage=target", workdir, point, shared=[])
  return {"strategy": name, "examples_per_class": point["data.examples_per_class"],
          "seed": point["seed"], "accuracy": summary["final"]["accuracy"],
          "trainable_params": summary["trainable_params"],
          "wall_time_s": round(summary["wall_time_s"], 1)}


def _table(rows: list[dict], pretrain: dict) -> str:
  trainable = {r["strategy"]: r["trainable_params"] for r in rows}
  head = " | ".join(f"{s} ({trainable[s]:,} trained)" for s in STRATEGIES)
  lines = [f"| digits per class | {head} |", "|---" * (len(STRATEGIES) + 1) + "|"]
  for size in SIZES:
    cells = []
    for name in STRATEGIES:
      acc = [r["accuracy"] for r in rows
             if r["strategy"] == name and r["examples_per_class"] == size]
      cells.append(f"{np.mean(acc):.4f} ± {np.std(acc, ddof=1):.4f}")
    lines.append(f"| {size} | " + " | ".join(cells) + " |")
  lines.append(f"\nPretraining on digits 0–4: test accuracy "
               f"{pretrain['final']['accuracy']:.4f} after {pretrain['steps']} steps "
               f"({pretrain['wall_time_s']:.0f} s).")
  return "\n".join(lines)


def _plot(rows: list[dict], path: str) -> None:
  fig = Figure(figsize=(6, 4))
  ax = fig.subplots()
  for name in STRATEGIES:
    acc = np.array([[r["accuracy"] for r in rows if r["strategy"] == name
                     and r["examples_per_class"] == size] for size in SIZES])
    ax.errorbar(SIZES, acc.mean(1), yerr=acc.std(1, ddof=1), marker="o", ms=4,
                capsize=3, label=name)
  ax.set(xscale="log", xticks=SIZES, xticklabels=[str(s) for s in SIZES],
         xlabel="training digits per class (digits 5–9)", ylabel="test accuracy",
         title="LeNet-5 pretrained on digits 0–4 → digits 5–9 (3 seeds)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def main(argv):
  del argv
  pretrained = os.path.join(_WORKDIR.value, "pretrain")
  pretrain = sweep.run_point(f"{CONFIG}:stage=pretrain", pretrained, {}, shared=[])
  points = _points(pretrained)
  with concurrent.futures.ThreadPoolExecutor(_PARALLEL.value) as pool:
    rows = list(pool.map(lambda a: _run(a[0], *a[1]), enumerate(points)))
  with open(os.path.join(_WORKDIR.value, "results.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  _plot(rows, _PLOT.value)
  print(_table(rows, pretrain))
  print(json.dumps({"runs": len(rows), "wall_time_s_total": sum(r["wall_time_s"] for r in rows)}))


if __name__ == "__main__":
  app.run(main)
