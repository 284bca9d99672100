"""Shared fixtures: a prepared tfds data_dir and a runner for ``cvx.main``."""
import os
import subprocess
import sys

import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")  # before any test imports keras
# The suite compiles hundreds of programs and runs each a few times on small
# inputs: LLVM's optimization passes cost far more compile time than they save.
# Only code generation changes (the HLO, and so what is computed, is the same).
FAST_COMPILE = "--xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """A tfds data_dir with mnist5k and digits8x8 built (once per worker)."""
  from cvx.data import sources
  path = str(tmp_path_factory.mktemp("tfds"))
  for name in ("mnist5k", "digits8x8"):
    sources.load(name, "train", path)
  return path


def main_command(workdir, *overrides, config="configs/mnist_lenet.py", mode="train"):
  return [sys.executable, "-m", "cvx.main", f"--config={config}",
          f"--workdir={workdir}", f"--mode={mode}", "--config.progress_bar=False",
          *overrides]


def main_env(data_dir, devices=1):
  env = dict(os.environ, CVX_DATA_DIR=data_dir, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} {FAST_COMPILE}")
  env.pop("JAX_COORDINATOR_ADDRESS", None)
  return env


def run_cvx_main(data_dir, workdir, *overrides, devices=1, check=True, **kw):
  """Runs ``python -m cvx.main`` in a subprocess; returns CompletedProcess."""
  proc = subprocess.run(main_command(workdir, *overrides, **kw), cwd=REPO,
                        env=main_env(data_dir, devices), capture_output=True,
                        text=True, timeout=600)
  if check and proc.returncode != 0:
    raise AssertionError(f"cvx.main failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
  return proc


@pytest.fixture
def run_main(data_dir):
  """``run_cvx_main`` with this session's data_dir."""
  return lambda workdir, *overrides, **kw: run_cvx_main(data_dir, workdir,
                                                        *overrides, **kw)

