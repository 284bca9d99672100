"""A killed run, rerun with the same command, ends exactly where an
uninterrupted one does; SIGTERM saves first; half-written checkpoints are ignored."""
import os
import random
import signal
import subprocess
import time

import numpy as np
import pytest

from tests.conftest import REPO, main_command, main_env, run_cvx_main
from tests.helpers import read_metrics, restore_params

ARGS = ["--config.batch_size=32", "--config.num_train_steps=60",
        "--config.checkpoint_every_steps=5", "--config.eval_every_epochs=0.2",
        "--config.log_every_steps=10", "--config.augment=affine",
        "--config.model_kwargs.dropout_rate=0.25", "--config.schedule.warmup_epochs=0.1"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
  workdir = str(tmp_path_factory.mktemp("reference"))
  run_cvx_main(data_dir, workdir, *ARGS)
  return workdir


def _start(workdir, data_dir):
  return subprocess.Popen(main_command(workdir, *ARGS), cwd=REPO,
                          env=main_env(data_dir), stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)


def _wait_for_checkpoint(workdir, at_least, proc, timeout=300):
  root = os.path.join(workdir, "checkpoints", "latest")
  deadline = time.time() + timeout
  while time.time() < deadline:
    assert proc.poll() is None, "the run ended before it could be interrupted"
    if os.path.isdir(root) and any(d.isdigit() and int(d) >= at_least
                                   for d in os.listdir(root)):
      return
    time.sleep(0.02)
  raise TimeoutError(f"no checkpoint ≥ {at_least} in {root}")


def _assert_same_run(workdir, reference):
  want, got = restore_params(reference, 60), restore_params(workdir, 60)
  assert want.keys() == got.keys()
  for key in want:
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)
  last = lambda w: read_metrics(w, "test")[-1]
  assert last(workdir) == last(reference)


def test_sigkill_at_any_moment_then_rerun_gives_identical_params(
    tmp_path, data_dir, run_main, reference):
  proc = _start(tmp_path, data_dir)
  _wait_for_checkpoint(tmp_path, 15, proc)
  time.sleep(random.uniform(0.0, 0.3))  # Possibly in the middle of a save.
  proc.kill()
  assert proc.wait() == -signal.SIGKILL
  rerun = run_main(tmp_path, *ARGS)
  resumed = int(rerun.stdout.split("Resumed from step ")[1].split(" ")[0])
  assert 15 <= resumed < 60
  _assert_same_run(tmp_path, reference)


def test_sigterm_saves_a_checkpoint_then_exits(tmp_path, data_dir, run_main, reference):
  proc = _start(tmp_path, data_dir)
  _wait_for_checkpoint(tmp_path, 10, proc)
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 143
  saved = int(out.split("SIGTERM: saved a checkpoint at step ")[1].split(";")[0])
  assert str(saved) in os.listdir(tmp_path / "checkpoints" / "latest")
  rerun = run_main(tmp_path, *ARGS)
  assert f"Resumed from step {saved} " in rerun.stdout
  _assert_same_run(tmp_path, reference)


def test_half_written_checkpoint_is_never_restored(tmp_path, run_main, reference):
  workdir = tmp_path / "run"
  subprocess.run(["cp", "-r", reference, str(workdir)], check=True)
  latest = workdir / "checkpoints" / "latest"
  # What a kill during orbax's write of step 999 leaves behind.
  partial = latest / "999.orbax-checkpoint-tmp-1795359299"
  (partial / "state.orbax-checkpoint-tmp").mkdir(parents=True)
  (partial / "state.orbax-checkpoint-tmp" / "manifest.ocdbt").write_bytes(b"\0" * 10)
  rerun = run_main(workdir, *ARGS[:1], "--config.num_train_steps=65", *ARGS[2:])
  assert "Resumed from step 60 " in rerun.stdout
  assert "65" in os.listdir(latest)


def test_per_batch_reads_in_worker_processes_give_the_same_run(
    tmp_path, data_dir, run_main, reference):
  run_main(tmp_path, *ARGS, "--config.data.cache=False", "--config.data.workers=2")
  _assert_same_run(tmp_path, reference)
