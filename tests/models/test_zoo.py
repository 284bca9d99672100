"""Every architecture: reference parameter counts, one uniform API, real forward passes.

Parameter counts are torchvision's and Keras applications' (1000 classes,
trainable only; BatchNorm statistics live in ``batch_stats``), GUIDE §5.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cvx import models

# (model, kwargs, input size): trainable parameters of the reference implementation.
REFERENCE_PARAMS = [
    ("alexnet", {}, 224, 61_100_840),  # torchvision
    ("alexnet_lrn", {}, 227, 62_378_344),  # the paper's single tower, 96-256-384-384-256
    ("vgg16", {}, 224, 138_357_544),
    ("vgg16_bn", {}, 224, 138_365_992),
    ("vgg19", {}, 224, 143_667_240),
    ("vgg19_bn", {}, 224, 143_678_248),
    ("googlenet", {}, 224, 6_624_904),
    ("googlenet", {"aux_logits": True}, 224, 13_004_888),
    ("resnet18", {}, 224, 11_689_512),
    ("resnet34", {}, 224, 21_797_672),
    ("resnet50", {}, 224, 25_557_032),
    ("resnet50", {"version": "v1"}, 224, 25_557_032),
    ("resnet101", {}, 224, 44_549_160),
    ("resnet152", {}, 224, 60_192_808),
    ("mobilenet_v1", {}, 224, 4_231_976),  # Keras applications
    ("mobilenet_v1", {"alpha": 0.75}, 224, 2_585_560),
    ("mobilenet_v1", {"alpha": 0.5}, 224, 1_331_592),
    ("mobilenet_v1", {"alpha": 0.25}, 224, 470_072),
    ("densenet121", {}, 224, 7_978_856),
    ("xception", {}, 299, 22_855_952),  # Keras applications
    ("efficientnet_b0", {}, 224, 5_288_548),  # torchvision and Keras agree
    ("efficientnet_b0", {"padding_style": "keras"}, 224, 5_288_548),
]

# Smallest comfortable input per model for forward passes (default 32).
SMALL_INPUT = {"alexnet": 67, "alexnet_lrn": 67, "xception": 71, "lenet5": 28}


def _shapes(name, num_classes, size, **kwargs):
  model = models.create(name, num_classes=num_classes, **kwargs)
  channels = 1 if name == "lenet5" else 3
  x = jnp.zeros((2, size, size, channels))
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
  outputs = jax.eval_shape(lambda v: model.apply(v, x), variables)
  return variables, outputs


def _count(tree):
  return sum(leaf.size for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize("name,kwargs,size,expected", REFERENCE_PARAMS,
                         ids=[f"{n}{k or ''}" for n, k, _, _ in REFERENCE_PARAMS])
def test_parameter_count_equals_the_reference_implementation(name, kwargs, size, expected):
  variables, _ = _shapes(name, 1000, size, **kwargs)
  assert _count(variables["params"]) == expected


@pytest.mark.parametrize("name", models.list_models())
def test_uniform_api_logits_features_and_a_head_that_alone_depends_on_num_classes(name):
  size = SMALL_INPUT.get(name, 32)
  variables7, (logits, features) = _shapes(name, 7, size)
  variables3, _ = _shapes(name, 3, size)
  assert logits.shape == (2, 7) and logits.dtype == jnp.float32
  assert features["pre_logits"].ndim == 2
  if name != "mlp":
    assert features["last_conv"].ndim == 4
  changed = {jax.tree_util.keystr(path)
             for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(variables7["params"]),
                                     jax.tree.leaves(variables3["params"]))
             if a.shape != b.shape}
  assert changed and all("head" in path for path in changed), changed


@pytest.mark.parametrize("name,kwargs,size,last_conv", [
    ("alexnet", {}, 224, (13, 13, 256)),
    ("vgg16", {}, 224, (14, 14, 512)),
    ("googlenet", {}, 224, (7, 7, 1024)),
    ("resnet50", {}, 224, (7, 7, 2048)),
    ("resnet18", {"stem": "cifar"}, 32, (4, 4, 512)),
    ("mobilenet_v1", {}, 224, (7, 7, 1024)),
    ("mobilenet_v1", {"alpha": 0.5}, 160, (5, 5, 512)),
    ("densenet121", {}, 224, (7, 7, 1024)),
    ("xception", {}, 299, (10, 10, 2048)),
    ("efficientnet_b0", {}, 224, (7, 7, 1280)),
])
def test_last_conv_map_has_the_published_shape(name, kwargs, size, last_conv):
  _, (_, features) = _shapes(name, 1000, size, **kwargs)
  assert features["last_conv"].shape == (2, *last_conv)


def test_alexnet_lrn_reproduces_seed_000s_table_at_227():
  _, (_, features) = _shapes("alexnet_lrn", 1000, 227)
  shapes = [features[f"conv{i}"].shape[1:] for i in range(1, 6)]
  assert shapes == [(55, 55, 96), (27, 27, 256), (13, 13, 384), (13, 13, 384), (13, 13, 256)]


# One member of each family (small variants where the family code is the same).
FORWARD = [
    ("alexnet_lrn", {}), ("vgg11_bn", {"pool_size": (1, 1), "hidden": 64}),
    ("googlenet", {"aux_logits": True}), ("resnet18", {"stem": "cifar"}),
    ("resnet50", {}), ("mobilenet_v1", {"alpha": 0.25}),
    ("densenet121", {"block_sizes": (1, 2, 2, 1)}), ("xception", {"middle_repeats": 1}),
    ("efficientnet_b0", {"padding_style": "keras"}),
]


@pytest.mark.parametrize("name,kwargs", FORWARD, ids=[n for n, _ in FORWARD])
def test_forward_backward_and_a_few_steps_that_reduce_the_loss(name, kwargs):
  """Eval and train mode; every parameter gets a gradient; one compilation."""
  size = SMALL_INPUT.get(name, 32)
  model = models.create(name, num_classes=4, **kwargs)
  x = jax.random.uniform(jax.random.PRNGKey(0), (4, size, size, 3))
  y = jnp.arange(4) % 4
  variables = jax.jit(model.init)(jax.random.PRNGKey(1), x)
  logits, _ = jax.jit(model.apply)(variables, x)
  assert jnp.isfinite(logits).all() and logits.shape == (4, 4)

  def loss_fn(params, batch_stats):
    (logits, features), updates = model.apply(
        {"params": params, "batch_stats": batch_stats}, x, train=True,
        rngs={"dropout": jax.random.PRNGKey(2)}, mutable=["batch_stats"])
    ce = lambda z: optax.softmax_cross_entropy_with_integer_labels(z, y).mean()
    aux = [ce(v) for k, v in features.items() if k.startswith("aux")]  # GoogLeNet
    return ce(logits) + 0.3 * sum(aux), (updates.get("batch_stats", {}), features)

  tx = optax.adam(1e-3)

  @jax.jit
  def step(params, batch_stats, opt_state):
    (loss, (batch_stats, features)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, batch_stats)
    updates, opt_state = tx.update(grads, opt_state)
    nonzero = jax.tree.map(lambda g: jnp.any(g != 0), grads)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss, nonzero, features

  params, batch_stats = variables["params"], variables.get("batch_stats", {})
  opt_state = jax.jit(tx.init)(params)
  losses, touched = [], jax.tree.map(lambda p: False, params)
  for _ in range(5):
    new_stats = batch_stats
    params, new_stats, opt_state, loss, nonzero, features = step(params, batch_stats, opt_state)
    touched = jax.tree.map(lambda t, g: t | bool(g), touched, jax.device_get(nonzero))
    if batch_stats:  # Training mode moves the running statistics.
      assert any(not np.allclose(a, b) for a, b in zip(
          jax.device_get(jax.tree.leaves(batch_stats)), jax.device_get(jax.tree.leaves(new_stats))))
    batch_stats = new_stats
    losses.append(float(loss))
  assert step._cache_size() == 1  # pylint: disable=protected-access
  untouched = [jax.tree_util.keystr(p) for p, t in jax.tree_util.tree_leaves_with_path(touched)
               if not t]
  assert not untouched, f"parameters without a gradient: {untouched}"
  assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
  if name == "googlenet":
    assert {"aux1_logits", "aux2_logits"} <= set(features)


def test_bfloat16_compute_keeps_float32_params_and_logits():
  model = models.create("resnet18", num_classes=10, stem="cifar", dtype=jnp.bfloat16)
  variables, (logits, features) = _shapes_of(model)
  assert {leaf.dtype for leaf in jax.tree.leaves(variables["params"])} == {jnp.dtype("float32")}
  assert logits.dtype == jnp.float32 and features["last_conv"].dtype == jnp.bfloat16


def _shapes_of(model):
  x = jnp.zeros((2, 32, 32, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
  return variables, jax.eval_shape(lambda v: model.apply(v, x), variables)


@pytest.mark.parametrize("name,kwargs,message", [
    ("resnet18", {"stem": "tiny"}, "stem must be 'imagenet' or 'cifar', got 'tiny'"),
    ("resnet50", {"version": "v2"}, "version must be 'v1' or 'v1.5', got 'v2'"),
    ("mobilenet_v1", {"alpha": 1.5}, r"alpha must be in \(0, 1\], got 1.5"),
    ("efficientnet_b0", {"padding_style": "tf"}, "padding_style must be 'torch' or 'keras'"),
])
def test_bad_architecture_options_fail_clearly(name, kwargs, message):
  with pytest.raises(ValueError, match=message):
    _shapes(name, 10, 32, **kwargs)
