"""Model summary against numbers we did not write: seed 000, LeNet-5, the
output-size formula, and receptive fields measured by gradient (seed 001)."""
import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvx import analysis, models
from cvx.explain import receptive_field as rf
from cvx.layers.conv import Conv, SeparableConv
from cvx.layers.pooling import AvgPool, GlobalAvgPool, MaxPool


class Chain(nn.Module):
  """Applies ``layers`` in order; features ``l0``, ``l1``… after each one."""
  layers: tuple[Callable[[], nn.Module], ...]

  @nn.compact
  def __call__(self, x, train: bool = False):
    features = {}
    for i, make in enumerate(self.layers):
      x = make()(x)
      features[f"l{i}"] = x
    return x, features


def conv(features, kernel, stride=1, padding="VALID", **kw):
  return lambda: Conv(features, (kernel, kernel), strides=stride, padding=padding, **kw)


def leaves(summary, kind=(Conv, MaxPool, AvgPool, GlobalAvgPool, nn.Dense)):
  names = {k.__name__ for k in kind}
  return [l for l in summary.layers if l.leaf and l.type in names]


def tree_size(params):
  return sum(leaf.size for leaf in jax.tree.leaves(params))


def init_params(model, shape):
  return model.init(jax.random.PRNGKey(0), jnp.zeros((1, *shape)))["params"]


# Seed 000: parameter examples and the Inception cost example.

def test_conv_versus_separable_parameters_seed_000():
  full = analysis.summary(Chain((conv(64, 3),)), (224, 224, 3))
  assert full.params == 3 * 3 * 3 * 64 + 64 == 1_792
  separable = analysis.summary(
      Chain((lambda: SeparableConv(64, 3, use_bias=True),)), (224, 224, 3))
  assert separable["SeparableConv_0/dw"].params == 3 * 3 * 1 * 3 + 3 == 30
  assert separable["SeparableConv_0/pw"].params == 1 * 1 * 3 * 64 + 64 == 256
  assert separable.params == 286
  model = Chain((lambda: SeparableConv(64, 3, use_bias=True),))
  assert separable.params == tree_size(init_params(model, (8, 8, 3)))


def test_inception_reduce_layer_cost_seed_000():
  naive = analysis.summary(Chain((conv(32, 5, padding="SAME"),)), (32, 32, 200))
  assert naive.macs == (32 * 32 * 32) * (5 * 5 * 200) == 163_840_000
  reduced = analysis.summary(
      Chain((conv(16, 1), conv(32, 5, padding="SAME"))), (32, 32, 200))
  assert [l.macs for l in leaves(reduced)] == [32 * 32 * 200 * 16, 32 * 32 * 25 * 16 * 32]
  assert reduced.macs == 3_276_800 + 13_107_200 == 16_384_000  # 16.4 M: a tenth
  assert reduced.macs / naive.macs == pytest.approx(0.1)


# LeNet-5 and the output-size formula.

def test_lenet5_parameters_macs_and_fields():
  model = models.create("lenet5", num_classes=10)
  s = analysis.summary(model, (28, 28, 1))
  params = init_params(model, (28, 28, 1))
  assert s.params == 61_706 == analysis.count_params(params) == tree_size(params)
  assert s.state == 0 and s.output_shape == (10,)
  assert [(l.name, l.output_shape) for l in leaves(s)] == [
      ("conv1", (28, 28, 6)), ("pool1", (14, 14, 6)), ("conv2", (10, 10, 16)),
      ("pool2", (5, 5, 16)), ("fc1", (120,)), ("fc2", (84,)), ("head", (10,))]
  assert [l.macs for l in leaves(s)] == [
      28 * 28 * 5 * 5 * 1 * 6, 0, 10 * 10 * 5 * 5 * 6 * 16, 0, 400 * 120, 120 * 84, 84 * 10]
  assert s.macs == sum(l.macs for l in leaves(s)) == 416_520
  # conv5 → pool2 → conv5.
  assert [s["conv1"].field.rf, s["pool1"].field.rf, s["conv2"].field.rf] == [
      (5, 5), (6, 6), (14, 14)]
  assert s["conv2"].field.jump == (2, 2)
  assert s["fc1"].field.whole and s["head"].field.whole


def test_params_exclude_batch_stats():
  model = models.create("lenet5", num_classes=10, batch_norm=True)
  s = analysis.summary(model, (28, 28, 1))
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
  assert s.params == tree_size(variables["params"])
  assert s.state == tree_size(variables["batch_stats"]) == 2 * (6 + 16)
  assert s["bn1"].params == 2 * 6
  trained = analysis.summary(model, (28, 28, 1), train=True)  # batch statistics, dropout
  assert (trained.params, trained.state, trained.macs) == (s.params, s.state, s.macs)


@pytest.mark.parametrize("size, kernel, pad, stride", [
    (227, 11, 0, 4), (224, 7, 3, 2), (32, 5, 2, 1), (13, 3, 1, 1), (28, 3, 0, 2), (9, 4, 1, 3)])
def test_output_size_formula(size, kernel, pad, stride):
  out = (size - kernel + 2 * pad) // stride + 1
  for layer in (conv(2, kernel, stride, pad), lambda: MaxPool(kernel, stride, pad)):
    s = analysis.summary(Chain((layer,)), (size, size + 5, 2))
    assert s.output_shape == (out, (size + 5 - kernel + 2 * pad) // stride + 1, 2)


# Seed 000's AlexNet table at 227×227.

ALEXNET_ORIGINAL = (
    conv(96, 11, 4), lambda: MaxPool(3, 2),
    conv(256, 5, padding=2), lambda: MaxPool(3, 2),
    conv(384, 3, padding=1), conv(384, 3, padding=1), conv(256, 3, padding=1),
    lambda: MaxPool(3, 2))


def test_alexnet_shape_table_seed_000():
  s = analysis.summary(Chain(ALEXNET_ORIGINAL), (227, 227, 3))
  assert [l.output_shape for l in leaves(s)] == [
      (55, 55, 96), (27, 27, 96), (27, 27, 256), (13, 13, 256), (13, 13, 384),
      (13, 13, 384), (13, 13, 256), (6, 6, 256)]
  assert [l.detail for l in leaves(s)] == [
      "11×11/4", "3×3/2", "5×5/1", "3×3/2", "3×3/1", "3×3/1", "3×3/1", "3×3/2"]
  expected = rf.analytic([(11, 4), (3, 2), (5, 1), (3, 2), (3, 1), (3, 1), (3, 1), (3, 2)])
  assert [(l.field.rf[0], l.field.jump[0]) for l in leaves(s)] == expected
  assert expected[-1] == (195, 32)


# Receptive fields: analytic per layer = support of the gradient footprint.

def erf_support(model, shape, layer, n=16):
  images = jax.random.normal(jax.random.PRNGKey(0), (n, *shape))
  variables = {"params": model.init(jax.random.PRNGKey(1), images)["params"]}
  # Biases of 1 keep ReLUs open; max pooling routes each gradient to one input.
  variables = jax.tree_util.tree_map_with_path(
      lambda p, v: jnp.ones_like(v) if p[-1].key == "bias" else v, variables)
  erf = np.asarray(rf.effective(model, variables, images, layer)).sum(0)
  return rf.support(erf)


STACK = (conv(4, 3), lambda: MaxPool(2), conv(4, 3, kernel_dilation=2),
         lambda: AvgPool(3, 2), conv(4, 5), conv(4, 1))


def test_analytic_field_equals_effective_field_support():
  model = Chain(STACK)
  s = analysis.summary(model, (64, 64, 1))
  expected = rf.analytic([(3, 1), (2, 2), (3, 1, 2), (3, 2), (5, 1), (1, 1)])
  assert [(l.field.rf[0], l.field.jump[0]) for l in leaves(s)] == expected
  for i, layer in enumerate(leaves(s)):
    assert erf_support(model, (64, 64, 1), f"l{i}") == layer.field.rf, layer.name


class Branches(nn.Module):
  """Stem 3×3 → Inception-style concat (1×1, 3×3, 5×5, pool+1×1) → residual."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = Conv(4, (3, 3), padding=1, name="stem")(x)
    x = InceptionLike(name="mixed")(x)
    y = Residual(name="res")(x)
    return y, {"stem": x, "mixed": x, "res": y}


class InceptionLike(nn.Module):

  @nn.compact
  def __call__(self, x):
    b5 = Conv(2, (5, 5), padding=2, name="b5")(x)
    b1 = Conv(2, (1, 1), name="b1")(x)
    b3 = Conv(2, (3, 3), padding=1, name="b3")(nn.relu(Conv(2, (1, 1), name="b3_reduce")(x)))
    bp = Conv(2, (1, 1), name="bp")(MaxPool(3, 1, 1, name="pool")(x))
    return jnp.concatenate([b1, b3, b5, bp], axis=-1)


class Residual(nn.Module):

  @nn.compact
  def __call__(self, x):
    y = nn.relu(Conv(8, (3, 3), padding=1, name="conv1")(x))
    return x + Conv(8, (3, 3), padding=1, strides=1, name="conv2")(y)


def test_fields_follow_tensors_through_branches_and_residuals():
  s = analysis.summary(Branches(), (32, 32, 3))
  # Each branch starts from the block's input (field 3), not from its sibling.
  assert {n: s[f"mixed/{n}"].field.rf[0] for n in ("b5", "b1", "b3", "pool", "bp")} == {
      "b5": 7, "b1": 3, "b3": 5, "pool": 5, "bp": 5}
  assert s["mixed"].field.rf == (7, 7) and s["res/conv1"].field.rf == (9, 9)
  assert s["res"].field.rf == (11, 11)
  assert [l.name for l in s.layers] == [
      "stem", "mixed", "mixed/b5", "mixed/b1", "mixed/b3_reduce", "mixed/b3",
      "mixed/pool", "mixed/bp", "res", "res/conv1", "res/conv2"]
  for name in ("mixed", "res"):
    assert erf_support(Branches(), (32, 32, 3), name) == s[name].field.rf


def test_global_pool_and_flat_dense_see_the_whole_input():
  model = Chain((conv(8, 3), lambda: nn.Dense(4), lambda: GlobalAvgPool(), lambda: nn.Dense(2)))
  s = analysis.summary(model, (16, 16, 3))
  pointwise, gap, head = leaves(s)[1:]
  assert pointwise.field.rf == (3, 3) and pointwise.macs == 14 * 14 * 8 * 4
  assert gap.field.whole and head.field.whole and head.macs == 4 * 2
  assert "| all | — |" in s.to_markdown()


def test_shared_module_counts_parameters_once_and_macs_per_call():

  class Siamese(nn.Module):

    @nn.compact
    def __call__(self, x, train: bool = False):
      layer = Conv(8, (3, 3), padding="VALID", name="shared")
      return layer(layer(x)[..., :3]), {}

  s = analysis.summary(Siamese(), (10, 10, 3))
  assert [l.name for l in s.layers] == ["shared", "shared"]
  assert s.params == 3 * 3 * 3 * 8 + 8
  assert s.macs == (8 * 8 + 6 * 6) * 3 * 3 * 3 * 8
  assert s.layers[1].field.rf == (5, 5)


# Rendering and errors.

def test_text_and_markdown_rendering():
  s = analysis.summary(Branches(), (32, 32, 3))
  text = str(s)
  assert text.splitlines()[0].split() == [
      "layer", "type", "output", "params", "MACs", "RF", "jump"]
  assert "\n  mixed/b5 " in text and f"{s.params:,} parameters" in text
  md = s.to_markdown().splitlines()
  assert md[0] == "| layer | type | output | params | MACs | RF | jump |"
  assert md[3].startswith("| **mixed** | InceptionLike |")
  assert md[4] == "| `mixed/b5` | Conv 5×5/1 | 32×32×2 | 202 | 204,800 | 7 | 1 |"
  assert len(md) == 2 + len(s.layers) + 2
  assert "Branches, input 32×32×3 → 32×32×8" in md[-1]


def test_an_input_the_model_cannot_take_names_the_layer():
  with pytest.raises(ValueError, match=r"LeNet5 on a 8×8×1 input: layer 'conv2' "
                     r"\(Conv\) gives an empty output 0×0×16 from its 4×4×6 input"):
    analysis.summary(models.create("lenet5", num_classes=10), (8, 8, 1))
  with pytest.raises(ValueError, match=r"layer 'MaxPool_2' \(MaxPool\) failed on its "
                     r"2×2×256 input: pool window 3 is larger"):
    analysis.summary(Chain(ALEXNET_ORIGINAL), (63, 63, 3))
  with pytest.raises(ValueError, match="input_shape must be positive ints"):
    analysis.summary(Chain(ALEXNET_ORIGINAL), (227, 0, 3))


def test_macs_are_output_positions_times_kernel_size():
  s = analysis.summary(Chain(ALEXNET_ORIGINAL), (2048, 2048, 3))  # shapes only: instant
  assert s.layers[0].output_shape == (510, 510, 96)
  assert s.macs == sum(math.prod(l.output_shape[:-1]) * (l.params - l.output_shape[-1])
                       for l in leaves(s, (Conv,)))
