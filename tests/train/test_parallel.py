"""Data parallelism gives the numbers of one device: 1 vs 8 fake CPU devices on
the jit and pmap paths, and two ``jax.distributed`` processes vs one.

Every run uses the matmul conv lowering (the CPU default with several
devices), so the one-device reference computes the same convolutions; the
oneDNN convs' split over a mesh is tested in tests/layers/test_onednn_conv.py.
"""
import os
import socket
import subprocess

import numpy as np
import pytest

from tests.conftest import REPO, main_command, main_env, run_cvx_main
from tests.helpers import read_metrics, restore_params

# LeNet-5 with BatchNorm: its statistics must cover the global batch.
ARGS = ["--config.batch_size=32", "--config.num_train_steps=12",
        "--config.log_every_steps=1", "--config.eval_every_epochs=100",
        "--config.checkpoint_every_steps=100", "--config.augment=affine",
        "--config.model_kwargs.batch_norm=True", "--config.optimizer.name=momentum",
        "--config.optimizer.learning_rate=0.05", "--config.schedule.name=constant"]


@pytest.fixture(scope="module", autouse=True)
def matmul_conv_lowering():
  previous = os.environ.get("CVX_CPU_CONV")
  os.environ["CVX_CPU_CONV"] = "matmul"  # read by the cvx.main subprocesses
  yield
  if previous is None:
    os.environ.pop("CVX_CPU_CONV")
  else:
    os.environ["CVX_CPU_CONV"] = previous


def _assert_same_training(workdir, reference):
  got = [r["loss"] for r in read_metrics(workdir, "train")]
  want = [r["loss"] for r in read_metrics(reference, "train")]
  assert len(got) == len(want) == 12
  np.testing.assert_allclose(got, want, rtol=2e-5)
  want_params, got_params = restore_params(reference), restore_params(workdir)
  for key in want_params:
    np.testing.assert_allclose(got_params[key], want_params[key], rtol=1e-4,
                               atol=2e-6, err_msg=key)


@pytest.fixture(scope="module")
def one_device(tmp_path_factory, data_dir):
  """Reference runs on one device: with dropout (jit) and without (pmap)."""
  runs = {}
  for dropout in ("0.25", "0.0"):
    workdir = str(tmp_path_factory.mktemp(f"one_{dropout}"))
    run_cvx_main(data_dir, workdir, *ARGS, f"--config.model_kwargs.dropout_rate={dropout}")
    runs[dropout] = workdir
  return runs


def test_jit_on_8_devices_matches_1_device(tmp_path, run_main, one_device):
  run_main(tmp_path, *ARGS, "--config.model_kwargs.dropout_rate=0.25", devices=8)
  _assert_same_training(tmp_path, one_device["0.25"])


def test_pmap_on_8_devices_matches_1_device(tmp_path, run_main, one_device):
  # Dropout masks under pmap are drawn per device, so compare without dropout.
  run_main(tmp_path, *ARGS, "--config.parallel=pmap", devices=8)
  _assert_same_training(tmp_path, one_device["0.0"])


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_match_one_process_with_as_many_devices(tmp_path, data_dir,
                                                              run_main):
  run_main(tmp_path / "one", *ARGS, devices=4)
  address = f"127.0.0.1:{_free_port()}"
  procs = [subprocess.Popen(
      main_command(tmp_path / "two", *ARGS,
                   f"--config.distributed.coordinator_address={address}",
                   "--config.distributed.num_processes=2",
                   f"--config.distributed.process_id={i}"),
      cwd=REPO, env=main_env(data_dir, devices=2), stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE, text=True) for i in range(2)]
  for proc in procs:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
  _assert_same_training(tmp_path / "two", tmp_path / "one")
