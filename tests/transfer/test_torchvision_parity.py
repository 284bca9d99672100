"""torchvision models with random weights (and random BatchNorm statistics)
give the same logits and pre-logits as the cvx models they are converted into."""
import functools
import types

import jax
import numpy as np
import pytest
import torch
import torchvision

from cvx import analysis, transfer
from tests.transfer import parity

NUM_CLASSES = 10
# name: (smallest comfortable input, torchvision keywords, head module).
MODELS = {
    "alexnet": (127, {}, "classifier.6"),  # 3×3 last map: the flatten order matters
    "googlenet": (64, {"aux_logits": True, "init_weights": True}, "fc"),
    **{f"resnet{d}": (32, {}, "fc") for d in (18, 34, 50, 101, 152)},
    # 2×2 last map, pooled to 7×7: the flatten order matters
    **{f"vgg{d}{bn}": (64, {}, "classifier.6") for d in (11, 13, 16, 19) for bn in ("", "_bn")},
    "densenet121": (32, {}, "classifier"),
    "efficientnet_b0": (32, {}, "classifier.1"),
}


def _randomize_batch_norm(model, seed):
  generator = torch.Generator().manual_seed(seed)
  for m in model.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
      n = m.num_features
      m.running_mean.copy_(0.2 * torch.randn(n, generator=generator))
      m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=generator))
      m.weight.data.copy_(0.5 + torch.rand(n, generator=generator))
      m.bias.data.copy_(0.2 * torch.randn(n, generator=generator))


def _nchw(images):
  """uint8 N×H×W×3 → torchvision's input: [0, 1], ImageNet mean/std, N×3×H×W."""
  x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
  mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in ([0.485, 0.456, 0.406],
                                                          [0.229, 0.224, 0.225]))
  return (x - mean) / std


@functools.lru_cache(maxsize=2)  # the VGGs hold 0.5 GB each
def reference(name):
  """(eval-mode torch model, images, logits, pre-logits, {module: output})."""
  size, kwargs, head = MODELS[name]
  torch.manual_seed(0)
  model = getattr(torchvision.models, name)(weights=None, num_classes=NUM_CLASSES, **kwargs)
  with torch.no_grad():
    _randomize_batch_norm(model, 1)
  model.eval()
  outputs = {}

  def record(key, value):  # a hook that returned a value would replace the output
    outputs[key] = value

  hooks = [model.get_submodule(head).register_forward_hook(
      lambda m, args, out: record("pre_logits", args[0]))]
  for tap in ("inception4a", "inception4d") if name == "googlenet" else ():
    hooks.append(model.get_submodule(tap).register_forward_hook(
        lambda m, args, out, tap=tap: record(tap, out)))
  x = parity.images(0, size)
  with torch.no_grad():
    logits = model(_nchw(x)).numpy()
  for hook in hooks:
    hook.remove()
  return model, x, logits, outputs


@pytest.mark.parametrize("name", MODELS)
def test_logits_and_pre_logits_match_torchvision(name):
  model, x, logits, outputs = reference(name)
  converted = transfer.from_torchvision(name, model.state_dict())
  assert converted.num_classes == NUM_CLASSES and converted.preprocessing.mode == "torchvision"
  got, features = jax.jit(converted.model().apply)(converted.variables,
                                                  converted.preprocessing(x))
  parity.assert_close(got, logits)
  parity.assert_close(features["pre_logits"], outputs["pre_logits"].numpy())
  if name == "googlenet":  # torch skips the auxiliary heads in eval mode: run them here
    with torch.no_grad():
      for aux, tap in (("aux1", "inception4a"), ("aux2", "inception4d")):
        want = model.get_submodule(aux)(outputs[tap]).numpy()
        parity.assert_close(features[f"{aux}_logits"], want)


def test_googlenet_aux_weights_are_dropped_on_request():
  model, x, logits, _ = reference("googlenet")
  converted = transfer.from_torchvision("googlenet", model.state_dict(), aux_logits=False)
  assert "aux1" not in converted.variables["params"]
  assert converted.model_kwargs == {"aux_logits": False}
  parity.assert_close(jax.jit(converted.logits)(x), logits)


def test_state_dict_saved_with_torch_save_converts_the_same(tmp_path):
  model = reference("resnet18")[0]
  path = tmp_path / "resnet18.pth"
  torch.save(model.state_dict(), path)
  from_file = transfer.from_torchvision("resnet18", str(path)).variables
  from_dict = transfer.from_torchvision("resnet18", model).variables
  jax.tree.map(np.testing.assert_array_equal, from_file, from_dict)


def test_wrong_architecture_names_the_first_mismatch_and_missing_keys():
  state = reference("resnet18")[0].state_dict()
  with pytest.raises(ValueError, match=(
      r"^torchvision 'resnet50' weights do not fit: first mismatching layer "
      r"'layer1\.0\.conv1\.weight' has shape \(64, 64, 3, 3\) \(\(3, 3, 64, 64\) in cvx "
      r"layout\), cvx 'params/stage1_block1/conv1/conv/kernel' needs \(1, 1, 64, 64\); "
      r"missing keys: 'layer1\.0\.bn3\.bias', ")) as error:
    transfer.from_torchvision("resnet50", state)
  assert "'layer1.0.conv3.weight'" in str(error.value)


def test_unexpected_keys_are_named():
  state = {**reference("resnet18")[0].state_dict(), "extra.weight": torch.zeros(3)}
  with pytest.raises(ValueError, match=r"unexpected keys: 'extra\.weight'$"):
    transfer.from_torchvision("resnet18", state)


@pytest.mark.parametrize("weights", ["IMAGENET1K_V1", "/no/such/resnet18.pth"])
def test_weights_that_are_not_a_file_must_be_downloaded_first(weights):
  with pytest.raises(FileNotFoundError, match="must be downloaded by the user first"):
    transfer.from_torchvision("resnet18", weights)


def test_unknown_model_lists_the_supported_ones():
  with pytest.raises(ValueError, match="unknown torchvision model 'mobilenet_v1'; supported: "
                                       "alexnet, vgg11"):
    transfer.from_torchvision("mobilenet_v1", {})


def test_googlenet_transform_input_preprocessing_matches_torchvision():
  x = parity.images(1, 8)
  flag = types.SimpleNamespace(transform_input=True)  # what the method reads
  want = torchvision.models.GoogLeNet._transform_input(flag, _nchw(x)).permute(0, 2, 3, 1)
  state = reference("googlenet")[0].state_dict()
  prep = transfer.from_torchvision("googlenet", state, transform_input=True).preprocessing
  np.testing.assert_allclose(prep(x), want.numpy(), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(prep(x / 255.0), prep(x), rtol=1e-6, atol=1e-6)  # [0, 1] floats
