"""``python -m cvx.sweep``: one run per point, skip finished points, tables."""
import csv
import os
import subprocess
import sys

import pytest

from cvx import sweep
from tests.conftest import REPO, main_env

CONFIG = f'''
import importlib.util
_spec = importlib.util.spec_from_file_location("base", "{REPO}/configs/mnist_lenet.py")
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)
get_config = _base.get_config


def get_sweep():
  return [{{"model_kwargs.dropout_rate": 0.0, "optimizer.learning_rate": 0.003}},
          {{"model_kwargs.dropout_rate": 0.5, "optimizer.learning_rate": 0.003}}]
'''


def test_mnist_lenet_sweep_is_dropout_by_l2():
  points = sweep.load_sweep(os.path.join(REPO, "configs/mnist_lenet.py"))
  assert len(points) == 9
  assert {(p["model_kwargs.dropout_rate"], p["regularization.l2"]) for p in points} == {
      (d, l) for d in (0.0, 0.25, 0.5) for l in (0.0, 1e-4, 1e-3)}


def test_config_without_sweep_is_an_error(tmp_path):
  path = tmp_path / "plain.py"
  path.write_text("def get_config(arg=None):\n  return None\n")
  with pytest.raises(ValueError, match="defines no get_sweep"):
    sweep.load_sweep(str(path))


def test_sweep_runs_each_point_once_and_tabulates(tmp_path, data_dir):
  config = tmp_path / "tiny_sweep.py"
  config.write_text(CONFIG)
  workdir = tmp_path / "sweep"
  command = [sys.executable, "-m", "cvx.sweep", f"--config={config}",
             f"--workdir={workdir}", "--parallel=2", "--config.num_train_steps=8",
             "--config.schedule.warmup_epochs=0.01", "--config.batch_size=32"]
  proc = subprocess.run(command, cwd=REPO, env=main_env(data_dir),
                        capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(workdir / "results.csv") as f:
    rows = list(csv.DictReader(f))
  assert [r["model_kwargs.dropout_rate"] for r in rows] == ["0.0", "0.5"]
  assert all(0 <= float(r["final_accuracy"]) <= 1 for r in rows)
  runs = sorted(d for d in os.listdir(workdir) if d[:3].isdigit())
  assert len(runs) == 2
  assert all(os.path.exists(workdir / d / "summary.json") for d in runs)
  table = (workdir / "results.md").read_text()
  assert table.startswith("| model_kwargs.dropout_rate | optimizer.learning_rate |")
  assert (workdir / "results.png").stat().st_size > 1000
  stamps = [os.path.getmtime(workdir / d / "summary.json") for d in runs]
  again = subprocess.run(command, cwd=REPO, env=main_env(data_dir),
                         capture_output=True, text=True)
  assert again.returncode == 0
  assert [os.path.getmtime(workdir / d / "summary.json") for d in runs] == stamps
