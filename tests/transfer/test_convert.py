"""``python -m cvx.convert`` end to end: weight files in, an orbax checkpoint and
its JSON sidecar out, restored logits equal to the source model's."""
import json
import os
import subprocess
import sys

import jax
import pytest
import torch

from cvx import config_lib, convert, transfer
from tests.conftest import REPO
from tests.transfer import parity
from tests.transfer.test_keras_parity import reference as keras_reference
from tests.transfer.test_torchvision_parity import reference as torch_reference


def _convert(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "cvx.convert", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def resnet18_pth(tmp_path_factory):
  path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
  torch.save(torch_reference("resnet18")[0].state_dict(), path)
  return str(path)


def test_torchvision_pth_to_checkpoint(resnet18_pth, tmp_path):
  out = tmp_path / "resnet18"
  proc = _convert("--source=torchvision", "--model=resnet18", f"--weights={resnet18_pth}",
                  f"--out={out}", "--num_classes=10")
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(out / "cvx_model.json") as f:
    assert json.load(f) == {
        "model": "resnet18", "model_kwargs": {}, "num_classes": 10, "source": "torchvision",
        "preprocessing": {"mode": "torchvision", "mean": [0.485, 0.456, 0.406],
                          "std": [0.229, 0.224, 0.225], "channel_order": "RGB"}}
  _, x, logits, _ = torch_reference("resnet18")
  parity.assert_close(jax.jit(transfer.restore_converted(str(out)).logits)(x), logits)


@pytest.mark.usefixtures("host_initializers")
def test_keras_file_to_checkpoint(tmp_path):
  model, x, logits, _ = keras_reference("mobilenet_v1", (("alpha", 0.5),))
  model.save(tmp_path / "mobilenet.keras")
  out = tmp_path / "mobilenet"
  proc = _convert("--source=keras", "--model=mobilenet_v1",
                  f"--weights={tmp_path / 'mobilenet.keras'}", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  restored = transfer.restore_converted(str(out))
  assert (restored.model_kwargs, restored.source, restored.preprocessing.mode) == (
      {"alpha": 0.5}, "keras", "tf")
  parity.assert_close(jax.jit(restored.logits)(x), logits)


@pytest.mark.parametrize("args,message", [
    (["--model=resnet50", "--weights={pth}"],
     "error: torchvision 'resnet50' weights do not fit: first mismatching layer "
     "'layer1.0.conv1.weight' has shape (64, 64, 3, 3)"),
    (["--model=resnet18", "--weights={pth}", "--num_classes=1000"],
     "error: the weights have a 10-class head, not --num_classes=1000"),
    (["--model=resnet18", "--weights=IMAGENET1K_V1"],
     "error: torchvision weights 'IMAGENET1K_V1' are not a file: pretrained weights must be "
     "downloaded by the user first"),
], ids=["wrong_architecture", "num_classes", "missing_file"])
def test_bad_input_fails_with_one_line(resnet18_pth, tmp_path, args, message):
  args = [a.format(pth=resnet18_pth) for a in args]
  proc = _convert("--source=torchvision", *args, f"--out={tmp_path / 'out'}")
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith(message), proc.stderr[-2000:]
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("source,model,error,message", [
    ("caffe", "resnet50", ValueError, "unknown source 'caffe'; allowed: keras, torchvision"),
    ("keras", "resnet18", ValueError, "unknown Keras model 'resnet18'; supported: vgg16"),
    ("keras", "resnet50", FileNotFoundError, "must be downloaded by the user first"),
])
def test_unknown_source_model_or_file_fail_before_any_work(source, model, error, message):
  with pytest.raises(error, match=message):
    convert.convert(source, model, "imagenet")


def test_existing_output_directory_is_not_overwritten(tmp_path):
  (tmp_path / "keep.txt").write_text("")
  converted = transfer.from_torchvision("resnet18", torch_reference("resnet18")[0])
  with pytest.raises(ValueError, match="exists and is not empty"):
    transfer.save_converted(converted, str(tmp_path))


def test_kwargs_are_python_literals_else_strings():
  assert config_lib.parse_kwargs(["alpha=0.5", "transform_input=True", "version=v1"]) == {
      "alpha": 0.5, "transform_input": True, "version": "v1"}
  with pytest.raises(ValueError, match="--kwarg must be KEY=VALUE, got 'alpha'"):
    config_lib.parse_kwargs(["alpha"])
