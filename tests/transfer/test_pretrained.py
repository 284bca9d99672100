"""``config.init_from``: converted directories and workdirs, head reset, resume,
and ``data.normalize='init_from'``."""
import json
import os

import jax
import keras
import ml_collections
import numpy as np
import pytest
import torch
import torchvision

from cvx import config_lib, models
from cvx.train import loop, step as step_lib
from cvx.transfer import Converted, Preprocessing, preprocessing, pretrained, save_converted
from tests.helpers import restore_params


def _config(data_dir, steps, **transfer):
  c = config_lib.base_config()
  c.data_dir = data_dir
  c.model_kwargs = ml_collections.ConfigDict(dict(batch_norm=True))
  c.batch_size, c.num_train_steps, c.eval_every_epochs = 16, steps, 1000.0
  c.optimizer.update(name="adamw", learning_rate=1e-3, weight_decay=0.1)
  c.progress_bar = False
  c.transfer.update(**transfer)
  return c


def _target(config, init_from):
  config.init_from = init_from
  config.num_classes = 5
  config.data.update(classes="5,6,7,8,9", examples_per_class=10)
  return config


@pytest.fixture(scope="module")
def source_workdir(tmp_path_factory, data_dir):
  workdir = str(tmp_path_factory.mktemp("source"))
  loop.train_and_evaluate(_config(data_dir, 6), workdir)
  return workdir


@pytest.fixture(scope="module")
def converted(tmp_path_factory, source_workdir):
  """The source run saved as `python -m cvx.convert` saves a converted model."""
  directory = str(tmp_path_factory.mktemp("converted") / "lenet5")
  variables = pretrained.read(pretrained.locate(source_workdir)[0])
  save_converted(Converted("lenet5", {"batch_norm": True}, 10, variables, "test",
                           Preprocessing("scale", (0.0,), (1.0,))), directory)
  return directory, variables


def _flat(tree):
  return {jax.tree_util.keystr(p): np.asarray(v)
          for p, v in jax.tree_util.tree_leaves_with_path(tree)}


def test_backbone_frozen_from_a_converted_model_keeps_its_weights(
    tmp_path, data_dir, converted, capsys):
  directory, source = converted
  config = _target(_config(data_dir, 8, freeze="backbone"), directory)
  config.data.normalize = "init_from"
  summary = loop.train_and_evaluate(config, str(tmp_path))
  out = capsys.readouterr().out
  assert ("(test): 14 variables restored, 2 head variables re-initialised, 0 "
          "checkpoint variables not in the model ignored. Its inputs were "
          "preprocessed as {'mode': 'scale'") in out
  assert config.data.normalize == "init_from"  # the caller's config is not changed
  with open(os.path.join(tmp_path, "config.json")) as f:
    data = json.load(f)["data"]
  assert (data["normalize"], data["mean"], data["std"]) == ("standardize", [0.0], [1.0])
  assert summary["trainable_params"] == 84 * 5 + 5
  params, want = restore_params(str(tmp_path), 8), _flat(source["params"])
  assert params["['head']['kernel']"].shape == (84, 5)
  for key, value in want.items():
    if "head" not in key:
      np.testing.assert_array_equal(params[key], value, err_msg=key)
  stats = pretrained.read(pretrained.locate(str(tmp_path))[0])["batch_stats"]
  for key, value in _flat(source["batch_stats"]).items():
    np.testing.assert_array_equal(_flat(stats)[key], value, err_msg=key)


def test_a_resumed_run_resumes_instead_of_reinitialising(tmp_path, data_dir,
                                                         source_workdir, capsys):
  config = _target(_config(data_dir, 4), source_workdir)
  config.data.normalize = "init_from"  # the source run's: 'scale'
  assert pretrained.normalization(source_workdir) == {
      "normalize": "scale", "mean": None, "std": None, "channel_order": "RGB"}
  loop.train_and_evaluate(config, str(tmp_path))
  assert "Initialised from" in capsys.readouterr().out
  config.num_train_steps = 6
  config.init_from = str(tmp_path / "gone")  # Never read when resuming.
  summary = loop.train_and_evaluate(config, str(tmp_path))
  out = capsys.readouterr().out
  assert "Resumed from step 4" in out and "Initialised" not in out
  assert summary["steps"] == 6


def _fresh(num_classes=5, **kwargs):
  model = models.create("lenet5", num_classes=num_classes, batch_norm=True, **kwargs)
  return dict(model.init(jax.random.key(0), np.zeros((1, 28, 28, 1), np.float32)))


def test_a_mismatched_layer_outside_the_head_names_path_and_shapes(converted):
  _, source = converted
  bad = jax.tree.map(np.copy, source)
  bad["params"]["conv1"]["kernel"] = np.zeros((3, 3, 1, 6), np.float32)
  del bad["batch_stats"]["bn2"]
  with pytest.raises(ValueError, match=r"3 variables do not match.*"
                     r"params/conv1/kernel: model \(5, 5, 1, 6\), checkpoint \(3, 3, 1, 6\); "
                     r"batch_stats/bn2/mean: model \(16,\), checkpoint absent"):
    pretrained.merge(_fresh(), bad)


def test_same_head_shape_is_restored_and_extras_are_counted(converted):
  _, source = converted
  extra = jax.tree.map(np.copy, source)
  extra["params"]["aux"] = {"kernel": np.ones(3, np.float32)}
  merged, counts = pretrained.merge(_fresh(num_classes=10), extra)
  assert counts == {"restored": 16, "head": 0, "ignored": 1}
  np.testing.assert_array_equal(merged["params"]["head"]["kernel"],
                                source["params"]["head"]["kernel"])
  fresh = _fresh(num_classes=10)
  merged, counts = pretrained.merge(fresh, extra, reset_head=True)
  assert counts == {"restored": 14, "head": 2, "ignored": 1}
  np.testing.assert_array_equal(merged["params"]["head"]["kernel"],
                                fresh["params"]["head"]["kernel"])


def test_another_model_or_no_checkpoint_is_a_clear_error(tmp_path, converted):
  directory, _ = converted
  with pytest.raises(ValueError, match="holds a 'lenet5' model but config.model is 'mlp'"):
    pretrained.load(directory, _fresh(), "mlp")
  with pytest.raises(FileNotFoundError, match="neither a converted model"):
    pretrained.load(str(tmp_path), _fresh(), "lenet5")


def _converted_with(tmp_path, mode: str) -> str:
  """A converted directory whose sidecar records the ``mode`` preprocessing."""
  directory = str(tmp_path / mode)
  variables = _fresh()
  save_converted(Converted("lenet5", {"batch_norm": True}, 5, variables, "test",
                           preprocessing.get(mode)), directory)
  return directory


@pytest.mark.parametrize("mode,reference", [
    ("caffe", lambda x: keras.applications.vgg16.preprocess_input(x.astype(np.float32))),
    ("tf", lambda x: keras.applications.mobilenet.preprocess_input(x.astype(np.float32))),
    ("torchvision", lambda x: torchvision.transforms.Normalize(
        preprocessing.IMAGENET_MEAN, preprocessing.IMAGENET_STD)(
            torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255).permute(0, 2, 3, 1).numpy()),
])
def test_normalize_init_from_feeds_what_the_source_library_feeds(tmp_path, mode, reference):
  config = config_lib.base_config()
  config.data.update(pretrained.normalization(_converted_with(tmp_path, mode)))
  images = np.random.RandomState(0).randint(0, 256, (2, 8, 8, 3)).astype(np.uint8)
  np.testing.assert_allclose(step_lib.eval_inputs(images, config), reference(images),
                             rtol=1e-5, atol=1e-4)


def test_normalize_init_from_without_init_from_is_a_clear_error(tmp_path):
  config = config_lib.base_config()
  config.data.normalize = "init_from"
  with pytest.raises(ValueError, match="data.normalize='init_from' needs config.init_from"):
    loop.setup(config, str(tmp_path))
  with pytest.raises(ValueError, match="resolved by the training loop's setup"):
    step_lib.eval_inputs(np.zeros((1, 4, 4, 1), np.uint8), config)


def test_googlenet_auxiliary_heads_are_heads_too():
  def variables(num_classes, seed):
    model = models.create("googlenet", num_classes=num_classes, aux_logits=True)
    return jax.jit(model.init)(jax.random.key(seed), np.zeros((1, 32, 32, 3), np.float32))

  fresh = variables(5, 0)
  merged, counts = pretrained.merge(fresh, jax.tree.map(np.asarray, variables(10, 1)))
  assert counts["head"] == 6  # kernel and bias of head, aux1/head, aux2/head
  for aux in ("aux1", "aux2"):
    assert merged["params"][aux]["head"]["kernel"].shape == (1024, 5)
