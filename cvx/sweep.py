"""Run every point of a config's ``get_sweep()`` and tabulate the results.

  python -m cvx.sweep --config=configs/mnist_lenet.py --workdir=/tmp/cvx/sweep \
      [--parallel=2] [--config.num_epochs=5 ...]

Each point runs ``python -m cvx.main`` in ``WORKDIR/<i>_<overrides>`` with the
point's overrides after the shared ``--config.*`` ones; a point whose
``summary.json`` exists is skipped, so rerunning resumes the sweep. Writes
``results.csv``, ``results.md`` and ``results.png`` into ``WORKDIR``.
"""
import concurrent.futures
import csv
import importlib.util
import json
import os
import re
import subprocess
import sys

from absl import app, flags, logging

from cvx import plots



def define_flags() -> None:
  """The CLI's flags (defined on demand: the helpers here are also a library)."""
  flags.DEFINE_string("config", None, "Config file with get_sweep(), optionally "
                      "with ':args'.")
  flags.DEFINE_string("workdir", None, "Sweep directory.")
  flags.DEFINE_integer("parallel", 1, "Points run at once.")
  flags.mark_flags_as_required(["config", "workdir"])


def load_sweep(config_spec: str) -> list[dict]:
  """``get_sweep()`` (or ``get_sweep(arg)``) of the config file."""
  path, _, arg = config_spec.partition(":")
  spec = importlib.util.spec_from_file_location("_sweep_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_sweep"):
    raise ValueError(f"{path} defines no get_sweep()")
  points = module.get_sweep(arg) if arg else module.get_sweep()
  if not points or not all(isinstance(p, dict) for p in points):
    raise ValueError(f"{path}: get_sweep() must return a non-empty list of dicts")
  return points


def point_name(index: int, point: dict) -> str:
  text = ",".join(f"{k}={v}" for k, v in point.items())
  return f"{index:03d}_" + re.sub(r"[^A-Za-z0-9_.=,-]+", "", text)


def _format(value) -> str:
  if isinstance(value, (tuple, list)):
    return "(" + ",".join(map(str, value)) + ("," if len(value) == 1 else "") + ")"
  return str(value)


def run_point(config_spec: str, workdir: str, point: dict,
              shared: list[str]) -> dict:
  """Runs one point (unless already done) and returns its summary."""
  summary_path = os.path.join(workdir, "summary.json")
  if not os.path.exists(summary_path):
    os.makedirs(workdir, exist_ok=True)
    command = [sys.executable, "-m", "cvx.main", f"--config={config_spec}",
               f"--workdir={workdir}", "--config.progress_bar=False", *shared,
               *(f"--config.{k}={_format(v)}" for k, v in point.items())]
    with open(os.path.join(workdir, "log.txt"), "w") as log:
      code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    if code != 0:
      raise RuntimeError(f"sweep point {point} failed (exit {code}); "
                         f"see {workdir}/log.txt")
  with open(summary_path) as f:
    return json.load(f)


def result_row(point: dict, summary: dict) -> dict:
  final = {f"final_{k}": v for k, v in summary["final"].items() if k != "count"}
  best = {f"best_{k}": v for k, v in summary["best"].items()}
  return {**point, **final, **best, "wall_time_s": round(summary["wall_time_s"], 1)}


def write_results(workdir: str, rows: list[dict], axes: list[str]) -> None:
  keys = list(rows[0])
  with open(os.path.join(workdir, "results.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
  is_metric = lambda k: k.startswith(("final_", "best_")) and k != "best_step"
  fmt = lambda k, v: f"{v:.4f}" if is_metric(k) and isinstance(v, float) else str(v)
  lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
  lines += ["| " + " | ".join(fmt(k, r[k]) for k in keys) + " |" for r in rows]
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  metric = next(k for k in keys if k.startswith("final_") and k != "final_loss")
  x_axis, groups = axes[-1], axes[:-1]
  series = {}
  for r in rows:
    name = ", ".join(f"{g}={r[g]}" for g in groups) or metric
    xs, ys = series.setdefault(name, ([], []))
    xs.append(str(r[x_axis]))
    ys.append(r[metric])
  plots.lines(series, os.path.join(workdir, "results.png"), xlabel=x_axis,
              ylabel=metric, title=os.path.basename(os.path.normpath(workdir)))


def main(argv):
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  shared = [a for a in argv[1:] if a.startswith("--config.")]
  unexpected = [a for a in argv[1:] if not a.startswith("--config.")]
  if unexpected:
    raise app.UsageError(f"unexpected arguments: {unexpected}")
  config, workdir = flags.FLAGS.config, flags.FLAGS.workdir
  points = load_sweep(config)
  os.makedirs(workdir, exist_ok=True)
  dirs = [os.path.join(workdir, point_name(i, p)) for i, p in enumerate(points)]
  with concurrent.futures.ThreadPoolExecutor(flags.FLAGS.parallel) as pool:
    summaries = list(pool.map(lambda a: run_point(config, *a, shared),
                              zip(dirs, points)))
  rows = [result_row(p, s) for p, s in zip(points, summaries)]
  write_results(workdir, rows, list(points[0]))
  with open(os.path.join(workdir, "results.md")) as f:
    print(f.read())


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=lambda argv: flags.FLAGS(argv, known_only=True))
