"""Every file in configs/: it loads, its variants and sweep points name real
fields and models, and a few training steps run through ``python -m cvx.main``."""
import glob
import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvx import models
from tests.conftest import REPO, run_cvx_main
from tests.helpers import write_image_folder

CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))


def _module(path):
  spec = importlib.util.spec_from_file_location("config_under_test", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _check_override(config, key, value):
  node, (*parents, leaf) = config, key.split(".")
  for parent in parents:
    node = node[parent]
  assert leaf in node, f"sweep key {key!r} is not a config field"
  if key == "model":
    assert value in models.list_models()


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_builds_its_model_and_its_sweep_names_real_fields(path):
  module = _module(path)
  config = module.get_config()
  model = models.create(config.model, num_classes=config.num_classes,
                        **config.model_kwargs.to_dict())
  size = tuple(config.data.image_size or (32, 32))
  logits, _ = jax.eval_shape(
      lambda x: model.init_with_output(jax.random.PRNGKey(0), x)[0],
      jnp.zeros((1, *size, 3)))
  assert logits.shape == (1, config.num_classes)
  for point in getattr(module, "get_sweep", list)():
    for key, value in point.items():
      _check_override(config, key, value)


@pytest.mark.parametrize("name,arg", [
    ("cifar_resnet.py", "model=vgg16"), ("imagenet_resnet.py", "model=lenet5"),
    ("cifar_resnet.py", "depth=18"), ("mnist_lenet.py", "model=resnet18"),
])
def test_bad_variant_arguments_fail_naming_what_is_allowed(name, arg):
  with pytest.raises(ValueError, match="model=|expected key=value"):
    _module(os.path.join(REPO, "configs", name)).get_config(arg)


FEW_STEPS = ["--config.batch_size=8", "--config.num_train_steps=3",
             "--config.eval_every_epochs=100", "--config.eval_batch_size=8",
             "--config.log_every_steps=1", "--config.schedule.warmup_epochs=0"]


def test_imagenet_recipe_trains_on_a_folder_of_varying_sizes(tmp_path, data_dir):
  """bfloat16, resized crops and per-read resizing: a few steps of ResNet-18."""
  write_image_folder(tmp_path / "images", [(50, 61), (37, 45), (64, 48)] * 2)
  dataset = f"folder:{tmp_path / 'images'}"
  workdir = str(tmp_path / "run")
  run_cvx_main(data_dir, workdir, f"--config.dataset={dataset}", "--config.eval_split=test",
               "--config.num_classes=2", "--config.data.image_size=(48, 40)", *FEW_STEPS,
               config="configs/imagenet_resnet.py:model=resnet18,batch=8")
  with open(os.path.join(workdir, "config.json")) as f:
    config = json.load(f)
  assert config["model_dtype"] == "bfloat16" and config["optimizer"]["learning_rate"] == 0.1 * 8 / 256
  with open(os.path.join(workdir, "summary.json")) as f:
    summary = json.load(f)
  assert summary["steps"] == 3 and np.isfinite(summary["final"]["loss"])


def test_mnist_mobilenet_trains_at_a_width_and_resolution_multiplier(tmp_path, data_dir):
  workdir = str(tmp_path / "run")
  run_cvx_main(data_dir, workdir, *FEW_STEPS, config="configs/mnist_mobilenet.py:alpha=0.25,size=64")
  with open(os.path.join(workdir, "config.json")) as f:
    config = json.load(f)
  assert config["model_kwargs"] == {"alpha": 0.25, "bn_momentum": 0.9} and config["data"]["image_size"] == [64, 64]
  with open(os.path.join(workdir, "summary.json")) as f:
    assert json.load(f)["steps"] == 3
