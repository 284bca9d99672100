"""Freezing policies and lr groups: which layers, what stays bitwise put."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cvx import config_lib, models, tasks
from cvx.train import optim, step as step_lib
from cvx.train import state as state_lib
from cvx.transfer import freeze

LENET_BN = models.create("lenet5", num_classes=10, batch_norm=True)


def _names(paths):
  return sorted(freeze.name(p) for p in paths)


def test_lenet_layers_in_forward_order_and_fractions():
  plan = freeze.make_plan(LENET_BN, (28, 28, 1), "0.5")
  assert [[freeze.name(m) for m in layer] for layer in plan.layers] == [
      ["conv1", "bn1"], ["conv2", "bn2"], ["fc1"], ["fc2"], ["head"]]
  assert _names(plan.frozen) == ["bn1", "bn2", "conv1", "conv2"]  # ⌊0.5·5⌋ = 2 layers
  assert _names(freeze.make_plan(LENET_BN, (28, 28, 1), "0.7").frozen) == [
      "bn1", "bn2", "conv1", "conv2", "fc1"]
  assert freeze.make_plan(LENET_BN, (28, 28, 1), "0.8").frozen == freeze.make_plan(
      LENET_BN, (28, 28, 1), "backbone").frozen
  assert not freeze.make_plan(LENET_BN, (28, 28, 1), "0.1").frozen


def test_resnet18_fraction_freezes_the_stem_and_first_two_stages():
  plan = freeze.make_plan(models.create("resnet18", num_classes=10), (32, 32, 3), "0.5")
  firsts = [freeze.name(layer[0]) for layer in plan.layers]
  assert len(firsts) == 21 and firsts[0] == "conv1/conv" and firsts[-1] == "head"
  # The shortcut projection runs after the block's two convs.
  assert firsts[5:8] == ["stage2_block1/conv1/conv", "stage2_block1/conv2/conv",
                         "stage2_block1/downsample/conv"]
  assert [freeze.name(m) for m in plan.layers[0]] == ["conv1/conv", "conv1/bn"]
  frozen = {p[0] for p in plan.frozen}  # ⌊0.5·21⌋ = 10 layers
  assert frozen == {"conv1", "stage1_block1", "stage1_block2", "stage2_block1",
                    "stage2_block2"}
  assert len(plan.frozen) == 20


def test_globs_match_module_paths_and_their_prefixes():
  plan = freeze.make_plan(models.create("resnet18", num_classes=10), (32, 32, 3),
                          "conv1, stage1_*")
  assert {p[0] for p in plan.frozen} == {"conv1", "stage1_block1", "stage1_block2"}
  assert ("stage2_block1", "conv1", "conv") not in plan.frozen  # Globs are anchored.
  plan = freeze.make_plan(LENET_BN, (28, 28, 1), "*1")
  assert _names(plan.frozen) == ["bn1", "conv1", "fc1"]


@pytest.mark.parametrize("policy, message", [
    ("", "expected 'none', 'backbone', a fraction"),
    ("1.0", "must be in \\[0, 1\\)"),
    ("-0.1", "must be in \\[0, 1\\)"),
    ("conv9", "pattern 'conv9' matches no layer; top-level layers: bn1, bn2, conv1"),
    ("conv1,", "pattern '' matches no layer"),
    ("*", "freezes every layer"),
])
def test_bad_policies_raise(policy, message):
  with pytest.raises(ValueError, match=message):
    freeze.make_plan(LENET_BN, (28, 28, 1), policy)


@pytest.mark.parametrize("kwargs, message", [
    (dict(backbone_lr_scale=0.0), "backbone_lr_scale=0.0 must be > 0"),
    (dict(layer_decay=1.5), "layer_decay=1.5 must be in \\(0, 1\\]"),
    (dict(layer_decay=0.0), "layer_decay=0.0 must be in"),
])
def test_bad_lr_settings_raise(kwargs, message):
  with pytest.raises(ValueError, match=message):
    freeze.make_plan(LENET_BN, (28, 28, 1), **kwargs)


def _train(policy, optimizer, steps=5, **transfer):
  config = config_lib.base_config()
  config.optimizer.update(name=optimizer, learning_rate=0.01, weight_decay=0.1)
  plan = freeze.make_plan(LENET_BN, (28, 28, 1), policy, **transfer)
  tx = optim.make_optimizer(config, 0.01, plan)
  state = state_lib.create(LENET_BN, tx, (28, 28, 1), seed=0)
  task = tasks.create("classification", num_classes=10)
  step = jax.jit(step_lib.make_train_step(LENET_BN, task, tx, config, None,
                                          frozen=plan.frozen))
  rng = np.random.default_rng(0)
  start = state
  for _ in range(steps):
    batch = {"image": rng.integers(0, 256, (16, 28, 28, 1), dtype=np.uint8),
             "label": rng.integers(0, 10, 16).astype(np.int32)}
    state, _ = step(state, batch)
  return plan, start, state


def _moved(before, after):
  return {k: any(bool(jnp.any(a != b)) for a, b in
                 zip(jax.tree.leaves(before[k]), jax.tree.leaves(after[k])))
          for k in before}


@pytest.mark.parametrize("optimizer, moments", [("adam", 2), ("adamw", 2),
                                                ("momentum", 1)])
def test_frozen_params_and_batch_stats_stay_bitwise(optimizer, moments):
  plan, start, end = _train("0.5", optimizer)
  assert _moved(start.params, end.params) == {
      "conv1": False, "bn1": False, "conv2": False, "bn2": False,
      "fc1": True, "fc2": True, "head": True}
  assert _moved(start.batch_stats, end.batch_stats) == {"bn1": False, "bn2": False}
  # Optimizer state (moments) exists for the trainable leaves only.
  state = jax.tree.leaves(end.opt_state)
  assert sum(np.size(s) for s in state if np.ndim(s)) == (
      moments * plan.count_trainable(end.params))


def test_unfrozen_batch_norm_still_updates_its_statistics():
  _, start, end = _train("conv1,bn1", "adamw")
  assert _moved(start.batch_stats, end.batch_stats) == {"bn1": False, "bn2": True}
  assert _moved(start.params, end.params)["bn2"]


def test_frozen_batch_norm_runs_in_inference_mode():
  variables = LENET_BN.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  variables["batch_stats"] = jax.tree.map(lambda s: s + 0.5, variables["batch_stats"])
  x = jax.random.uniform(jax.random.key(1), (8, 28, 28, 1))
  inference, _ = LENET_BN.apply(variables, x, train=False)
  with freeze.frozen_batch_norm(frozenset({("bn1",), ("bn2",)})):
    (training, _), updates = LENET_BN.apply(variables, x, train=True,
                                            mutable=["batch_stats"])
  np.testing.assert_allclose(training, inference, rtol=1e-5, atol=1e-5)
  assert not any(_moved(variables["batch_stats"], updates["batch_stats"]).values())
  (plain, _), _ = LENET_BN.apply(variables, x, train=True, mutable=["batch_stats"])
  assert not np.allclose(plain, inference, atol=1e-3)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_lr_groups_scale_each_update(optimizer):
  model = models.create("lenet5", num_classes=10)
  config = config_lib.base_config()
  config.optimizer.update(name=optimizer, weight_decay=1e-2)
  params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.3), params)
  plan = freeze.make_plan(model, (28, 28, 1), backbone_lr_scale=0.1, layer_decay=0.5)

  def update(tx):
    return tx.update(grads, tx.init(params), params)[0]

  base = update(optim.make_optimizer(config, 0.01))
  scaled = update(optim.make_optimizer(config, 0.01, plan))
  expected = {"conv1": 0.1 * 0.5**4, "conv2": 0.1 * 0.5**3, "fc1": 0.1 * 0.5**2,
              "fc2": 0.1 * 0.5, "head": 1.0}
  for layer, scale in expected.items():
    for a, b in zip(jax.tree.leaves(scaled[layer]), jax.tree.leaves(base[layer])):
      np.testing.assert_allclose(a, scale * b, rtol=1e-6)


def test_default_transfer_config_changes_nothing():
  plan = freeze.make_plan(LENET_BN, (28, 28, 1))
  assert plan == freeze.Plan() and not plan.scaled
  config = config_lib.base_config()
  tx = optim.make_optimizer(config, 0.1, plan)
  params = {"w": jnp.ones(3)}
  assert not isinstance(tx.init(params), optax.MultiTransformState)
