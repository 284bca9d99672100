"""``python -m cvx.summary`` in a subprocess: table, totals, one-line errors."""
import os
import subprocess
import sys

from tests.conftest import REPO


def run_summary(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "cvx.summary", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)


def test_lenet5_table_and_totals():
  proc = run_summary("lenet5", "--input", "28", "--channels", "1", "--num_classes", "10")
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.splitlines()
  assert lines[0].split() == ["layer", "type", "output", "params", "MACs", "RF", "jump"]
  assert lines[1].split() == ["conv1", "Conv", "5×5/1", "28×28×6", "156", "117,600", "5", "1"]
  assert lines[2].split() == ["pool1", "MaxPool", "2×2/2", "14×14×6", "0", "0", "6", "2"]
  assert lines[3].split() == [
      "conv2", "Conv", "5×5/1", "10×10×16", "2,416", "240,000", "14", "2"]
  assert lines[-1] == ("LeNet5, input 28×28×1 → 10: 61,706 parameters, "
                       "416,520 multiply-adds (417 K) per image")
  assert proc.stderr == ""


def test_defaults_are_rgb_and_an_imagenet_head():
  proc = run_summary("lenet5", "--input", "28")
  assert proc.returncode == 0, proc.stderr
  # Two more input channels: 2·5·5·6 weights; 1000 classes: 990·85 more in the head.
  assert f"{61_706 + 2 * 25 * 6 + 990 * 85:,} parameters" in proc.stdout.splitlines()[-1]


def test_markdown_width_and_extra_keywords():
  proc = run_summary("mobilenet_v1", "--input", "128", "--width", "0.25", "--markdown")
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.startswith("| layer | type | output | params | MACs | RF | jump |")
  assert "MobileNetV1, input 128×128×3 → 1000: 470,072 parameters" in proc.stdout
  proc = run_summary("resnet50", "--kwarg", "version='v1'", "--kwarg", "plain=False")
  assert proc.returncode == 0, proc.stderr
  assert "(3.86 G) per image" in proc.stdout


def test_errors_are_one_line():
  unknown = run_summary("lenet", "--input", "28")
  assert unknown.returncode == 1
  assert unknown.stderr.strip().startswith("error: unknown model 'lenet'. Did you mean 'lenet5'?")
  assert "Available: " in unknown.stderr and "mlp" in unknown.stderr
  width = run_summary("lenet5", "--width", "0.5")
  assert width.stderr.strip() == (
      "error: model 'lenet5': LeNet5.__init__() got an unexpected keyword argument "
      "'alpha' (--width sets alpha, MobileNet's width multiplier)")
  small = run_summary("lenet5", "--input", "4")
  assert small.stderr.strip() == (
      "error: LeNet5 on a 4×4×3 input: layer 'conv2' (Conv) gives an empty output "
      "0×0×16 from its 2×2×6 input: the input is too small")
  for proc in (unknown, width, small):
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""
