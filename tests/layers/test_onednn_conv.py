"""The oneDNN conv custom calls compute lax.conv_general_dilated and its
gradients, split over a device mesh; the library builds once, atomically,
and fails clearly."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

from cvx.layers import conv_lowering, onednn
from cvx.layers.onednn import build
from tests.layers.conv_cases import CASES, conv_fn, inputs


@pytest.fixture(autouse=True)
def onednn_mode():
  conv_lowering.set_cpu_conv("onednn")
  yield
  conv_lowering.set_cpu_conv(None)


def _value_and_grads(impl, case):
  def f(x, w, g):
    y, vjp = jax.vjp(conv_fn(impl, case), x, w)
    return (y, *vjp(g))
  return jax.jit(f)


def _assert_matches_lax(case, rtol=1e-5, atol=1e-4):
  """Output, dX and dW of the default-mode conv against lax's, jitted."""
  x, w = inputs(case)
  g = jax.random.normal(jax.random.key(1), jax.eval_shape(
      conv_fn(lax.conv_general_dilated, case), x, w).shape)
  got = _value_and_grads(conv_lowering.conv_general_dilated, case)(x, w, g)
  want = _value_and_grads(lax.conv_general_dilated, case)(x, w, g)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", CASES)
def test_output_and_gradients_match_lax(name):
  case = CASES[name]
  x, w = inputs(case)
  assert "CvxOneDnnConvForward" in str(jax.make_jaxpr(conv_fn(
      conv_lowering.conv_general_dilated, case))(x, w))
  _assert_matches_lax(case)


def test_resnet_stage_shapes_match_lax():
  """A 64-channel 3×3 conv and a 1×1/2 projection at batch 32, where oneDNN
  picks its blocked AVX kernels (the small cases may take reference ones)."""
  for case in [((32, 16, 16, 64), (3, 3, 64, 64), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
               ((32, 16, 16, 64), (1, 1, 64, 128), (2, 2), "VALID", (1, 1), 1)]:
    _assert_matches_lax(case, rtol=1e-4, atol=1e-3)  # sums of up to 8,192 terms


def test_first_layer_input_gradient_over_batch_chunks_matches_lax():
  """An RGB first layer's dX (col2im) over a batch of two unequal chunks."""
  case = ((67, 32, 32, 3), (3, 3, 3, 16), (1, 1), "SAME", (1, 1), 1)
  _assert_matches_lax(case, rtol=1e-4, atol=2e-3)  # dW sums 68,608 terms


def test_narrow_input_gradients_by_col2im_match_lax():
  """dX by col2im for ≤ 4 input channels and more than twice as many outputs:
  a grey 5×5 conv to 16 channels (25 taps pad to 32 patch columns), 2 → 5
  channels, and 4 → 9 at stride 2 with dilation and one-sided pads."""
  for case in [((5, 28, 28, 1), (5, 5, 1, 16), (1, 1), ((2, 2), (2, 2)), (1, 1), 1),
               ((3, 9, 8, 2), (3, 3, 2, 5), (1, 1), "SAME", (1, 1), 1),
               ((3, 11, 10, 4), (3, 3, 4, 9), (2, 2), ((0, 2), (1, 0)), (2, 1), 1)]:
    _assert_matches_lax(case, rtol=1e-4, atol=1e-3)


# Stride-1 convs of one input channel to < 16 outputs: single_channel.cc's
# row-vectorised loops (all passes with ≥ 25 taps, else dX only).
SINGLE_CHANNEL_CASES = {
    # LeNet-5's first conv: 28-pixel rows end in a part vector; 5 images are
    # one part kernel-gradient chunk.
    "lenet5_first": ((5, 28, 28, 1), (5, 5, 1, 6), (1, 1), ((2, 2), (2, 2)), (1, 1), 1),
    # 37-pixel rows (vectors in blocks of 2 + 1), 13 rows (dx blocks 4+4+4+1),
    # 11 outputs (forward blocks 8 + 3, dW blocks 4 + 4 + 3), 9 images (dW
    # chunks 8 + 1), asymmetric pads.
    "blocks_and_tails": ((9, 13, 37, 1), (5, 5, 1, 11), (1, 1), ((3, 1), (0, 4)), (1, 1), 1),
    # A 5×7 kernel (dW tap blocks 5 + 2) with negative pads cropping the input.
    "negative_pads_wide_kernel": ((3, 10, 9, 1), (5, 7, 1, 4), (1, 1), ((-1, 2), (3, -2)),
                                  (1, 1), 1),
    # One output channel, batch 1, a 3-vector row.
    "one_to_one_batch1": ((1, 6, 40, 1), (5, 5, 1, 1), (1, 1), "SAME", (1, 1), 1),
    # 3×3: only dX takes the loops.
    "3x3_input_grad_only": ((2, 20, 19, 1), (3, 3, 1, 15), (1, 1), "SAME", (1, 1), 1),
}


@pytest.mark.parametrize("name", SINGLE_CHANNEL_CASES)
def test_single_channel_convs_match_lax(name):
  _assert_matches_lax(SINGLE_CHANNEL_CASES[name], rtol=1e-4, atol=1e-3)


# Convs of ≤ 8 input channels to whole 16-channel vectors: narrow_input.cc's
# input gradient (stride 1) and kernel gradient (≥ 32 outputs), vectorised
# over output channels.
NARROW_INPUT_CASES = {
    # LeNet-5's second conv: dX tiles of 4 pixels × 6 channels.
    "lenet5_second": ((5, 14, 14, 6), (5, 5, 6, 16), (1, 1), "VALID", (1, 1), 1),
    # ResNet's RGB stem: 4 vectors (dW blocks of 5 + 4 taps), 9 images (dW
    # chunks 8 + 1).
    "resnet_stem": ((9, 32, 32, 3), (3, 3, 3, 64), (1, 1), "SAME", (1, 1), 1),
    # MobileNet's stem: stride 2, Keras's one-sided pads, 2 vectors.
    "mobilenet_stem_s2": ((3, 17, 15, 3), (3, 3, 3, 32), (2, 2), ((0, 1), (0, 1)), (1, 1), 1),
    # 5 vectors (blocks 3 + 2), 35-tap rows, 7×7 at strides 2×3.
    "five_vectors_7x7_s2x3": ((2, 19, 23, 5), (7, 7, 5, 80), (2, 3), ((3, 2), (1, 3)),
                              (1, 1), 1),
    # Negative pads crop the input on two sides; 8 channels (dX tiles of 3
    # pixels).
    "negative_pads_8_channels": ((2, 10, 9, 8), (3, 5, 8, 32), (1, 1), ((-1, 2), (3, -2)),
                                 (1, 1), 1),
    # Pads wider than the kernel: dy's padded copy starts inside dy.
    "wide_pads_5_channels": ((2, 9, 11, 5), (3, 5, 5, 32), (1, 1), ((3, 0), (4, -1)),
                             (1, 1), 1),
    # A padded 1×1 conv (not a matmul) at batch 1.
    "padded_1x1_batch1": ((1, 5, 4, 2), (1, 1, 2, 16), (1, 1), ((1, 0), (0, 1)), (1, 1), 1),
}


@pytest.mark.parametrize("name", NARROW_INPUT_CASES)
def test_narrow_input_convs_match_lax(name):
  _assert_matches_lax(NARROW_INPUT_CASES[name], rtol=1e-4, atol=1e-3)


# Stride-1 depthwise convs of 3×3 or 5×5 kernels over whole 16-channel
# vectors (≤ 128 channels, or maps of ≤ 4 pixels): depthwise.cc's passes.
DEPTHWISE_CASES = {
    # MobileNet's block: 14 inner columns in forward tiles of 7, two border
    # columns; 32 channels, one dW item of two blocks.
    "mobilenet_block": ((3, 16, 16, 32), (3, 3, 1, 32), (1, 1), "SAME", (1, 1), 32),
    # 27 inner columns (tiles of 7, 7, 7 and 6), batch 1.
    "wide_rows_batch1": ((1, 13, 29, 16), (3, 3, 1, 16), (1, 1), "SAME", (1, 1), 16),
    # 5×5 (EfficientNet), 19 images: dW chunks of 8, 8 and 3.
    "5x5_three_chunks": ((19, 11, 21, 32), (5, 5, 1, 32), (1, 1), "SAME", (1, 1), 32),
    # Dilation with asymmetric and negative pads; 48 channels are a dW item
    # of two blocks and one of one.
    "dilated_negative_pads": ((2, 9, 19, 48), (3, 3, 1, 48), (1, 1), ((2, 0), (3, -1)),
                              (2, 2), 48),
    # Column dilation: tiles load each tap's inputs.
    "5x5_column_dilation": ((2, 12, 17, 16), (5, 5, 1, 16), (1, 1), ((1, 3), (0, 2)),
                            (1, 2), 16),
    # A 5×5 kernel wider than the map: no inner column.
    "5x5_on_4x3_map": ((2, 4, 3, 16), (5, 5, 1, 16), (1, 1), "SAME", (1, 1), 16),
    # ≤ 4-pixel maps (MobileNet's last blocks), any channel count: pixel by
    # pixel, channels innermost.
    "2x2_map_256_channels": ((9, 2, 2, 256), (3, 3, 1, 256), (1, 1), "SAME", (1, 1), 256),
    "1x1_map": ((3, 1, 1, 64), (3, 3, 1, 64), (1, 1), "SAME", (1, 1), 64),
}


@pytest.mark.parametrize("name", DEPTHWISE_CASES)
def test_depthwise_convs_match_lax(name):
  _assert_matches_lax(DEPTHWISE_CASES[name], rtol=1e-4, atol=1e-3)


_KERNEL_GRAD = """
import jax, numpy as np
from cvx.layers import conv_lowering
conv_lowering.set_cpu_conv("onednn")
x = jax.random.normal(jax.random.key(0), {x_shape})
g = jax.random.normal(jax.random.key(1), {y_shape})
w = jax.numpy.zeros({w_shape})
conv = lambda w: conv_lowering.conv_general_dilated(
    x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
    feature_group_count={groups})
np.save("{out}", np.asarray(jax.vjp(conv, w)[1](g)[0]))
"""


@pytest.mark.parametrize("x_shape, w_shape, groups", [
    ((37, 12, 21, 1), (5, 5, 1, 3), 1), ((37, 12, 21, 3), (5, 5, 3, 32), 1),
    ((37, 12, 21, 48), (3, 3, 1, 48), 48), ((37, 2, 2, 32), (3, 3, 1, 32), 32)],
    ids=["single_channel", "narrow_input", "depthwise", "depthwise_small_map"])
def test_direct_kernel_gradients_do_not_depend_on_the_thread_count(tmp_path, x_shape, w_shape,
                                                                   groups):
  """single_channel.cc's, narrow_input.cc's and depthwise.cc's dW sum fixed
  chunks of images in a fixed order: 1 and 2 OpenMP threads give the same
  bits."""
  script = _KERNEL_GRAD.format(x_shape=x_shape, y_shape=(*x_shape[:3], w_shape[3]),
                               w_shape=w_shape, groups=groups, out=tmp_path / "dw.npy")
  grads = []
  for threads in ("1", "2"):
    env = dict(os.environ, OMP_NUM_THREADS=threads)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    grads.append(np.load(tmp_path / "dw.npy"))
  assert np.array_equal(grads[0], grads[1])


def test_depthwise_kernel_gradient_over_chunks_and_blocks_matches_lax():
  """Depthwise dW on ≤ 4-pixel maps by the direct loop: 19 images are image
  chunks of 8, 8 and 3; 40 channels are blocks of 16, 16 and 8; a multiplier
  of 2 reads each input channel for two outputs."""
  for case in [((19, 2, 2, 40), (3, 3, 1, 40), (2, 1), "SAME", (1, 1), 40),
               ((9, 1, 3, 24), (3, 3, 1, 48), (1, 1), ((2, 0), (1, 1)), (1, 2), 24)]:
    _assert_matches_lax(case, rtol=1e-4, atol=1e-3)


# Stride-1 3×3 convs with ≥ 32 channels in and out: all three passes by
# Winograd F(2×2, 3×3). Odd outputs end in partial tiles; a left pad of 3
# puts the dX tiles' origin inside dy; 648 tiles are chunks of 256, 256 and a
# zero-padded 136.
WINOGRAD_CASES = {
    "valid_odd_out": ((2, 9, 8, 32), (3, 3, 32, 40), (1, 1), "VALID", (1, 1), 1),
    "asymmetric_pads_batch1": ((1, 7, 9, 48), (3, 3, 48, 32), (1, 1), ((0, 2), (3, 1)),
                               (1, 1), 1),
    "three_chunks": ((9, 15, 17, 32), (3, 3, 32, 32), (1, 1), "SAME", (1, 1), 1),
}


@pytest.mark.parametrize("name", WINOGRAD_CASES)
def test_winograd_matches_lax(name):
  # Sums of 288 to 2,295 terms of unit normals.
  _assert_matches_lax(WINOGRAD_CASES[name], rtol=1e-4, atol=1e-3)


EDGE_CASES = {
    "empty_batch": ((0, 8, 8, 4), (3, 3, 4, 8), (1, 1), "SAME", (1, 1), 1),
    "empty_batch_1x1": ((0, 8, 8, 4), (1, 1, 4, 8), (1, 1), "VALID", (1, 1), 1),
    "empty_batch_1x1_small_map": ((0, 4, 4, 4), (1, 1, 4, 8), (1, 1), "VALID", (1, 1), 1),
    "empty_batch_1x1_strided": ((0, 8, 8, 4), (1, 1, 4, 8), (2, 2), "VALID", (1, 1), 1),
    "1x1_map": ((2, 1, 1, 4), (1, 1, 4, 8), (1, 1), "VALID", (1, 1), 1),
    "kernel_beyond_input": ((2, 3, 3, 4), (5, 5, 4, 8), (1, 1), ((2, 2), (2, 2)), (1, 1), 1),
    "stride_beyond_kernel": ((2, 9, 9, 4), (2, 2, 4, 8), (4, 3), "VALID", (1, 1), 1),
    "one_sided_pads": ((2, 5, 5, 4), (3, 3, 4, 8), (1, 1), ((3, 0), (0, 3)), (1, 1), 1),
}


@pytest.mark.parametrize("name", EDGE_CASES)
def test_edge_shapes_match_lax(name):
  _assert_matches_lax(EDGE_CASES[name])


@pytest.mark.parametrize("name", ["same_s2", "groups3", "depthwise_mult2_dilated",
                                  "explicit_dilated_batch1", "negative_pad"])
def test_check_grads(name):
  case = CASES[name]
  f = conv_fn(conv_lowering.conv_general_dilated, case)
  check_grads(f, inputs(case), order=1, modes=("rev",), atol=5e-2, rtol=5e-2)


def test_vmap_over_whole_batches():
  case = CASES["same_s2"]
  x, w = inputs(case)
  xs = jnp.stack([x, 2 * x])

  def kernel_grad(impl):
    return jax.grad(lambda x, w: jnp.sum(conv_fn(impl, case)(x, w) ** 2), argnums=1)

  got = jax.jit(jax.vmap(kernel_grad(conv_lowering.conv_general_dilated),
                         in_axes=(0, None)))(xs, w)
  want = jnp.stack([kernel_grad(lax.conv_general_dilated)(b, w) for b in xs])
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


_ON_FOUR_DEVICES = """
import jax, jax.numpy as jnp, numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from cvx.layers import conv_lowering
assert conv_lowering.cpu_conv_mode() == "matmul"  # the default with several devices
conv_lowering.set_cpu_conv("onednn")
assert jax.device_count() == 4

def loss(conv):
  return lambda x, w: jnp.sum(jnp.sin(conv(
      x, w, (2, 1), ((1, 1), (0, 2)), dimension_numbers=("NHWC", "HWIO", "NHWC"))) ** 2)

x = jax.random.normal(jax.random.key(0), (16, 9, 8, 6))
w = jax.random.normal(jax.random.key(1), (3, 3, 6, 8))
batch = NamedSharding(Mesh(jax.devices(), ("data",)), P("data"))
sharded = jax.jit(jax.value_and_grad(loss(conv_lowering.conv_general_dilated), (0, 1)),
                  in_shardings=(batch, None))
hlo = sharded.lower(x, w).compile().as_text()
assert "CvxOneDnnConvBackwardWeights" in hlo and "all-gather" not in hlo, "batch gathered"
value, (dx, dw) = sharded(x, w)
want_value, (want_dx, want_dw) = jax.value_and_grad(loss(lax.conv_general_dilated), (0, 1))(x, w)
assert dx.sharding.spec == P("data"), dx.sharding
np.testing.assert_allclose(value, want_value, rtol=1e-5)
np.testing.assert_allclose(dx, want_dx, rtol=1e-5, atol=1e-4)
np.testing.assert_allclose(dw, want_dw, rtol=1e-5, atol=1e-3)
print("ok")
"""


def test_batch_sharded_jit_splits_the_calls_over_the_devices():
  """Four devices, the batch sharded: each device convolves its own shard (no
  all-gather of the batch), the kernel gradient is summed over them, and the
  values and gradients are lax's."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
  env.pop(conv_lowering.ENV_VAR, None)
  result = subprocess.run([sys.executable, "-c", _ON_FOUR_DEVICES], env=env,
                          capture_output=True, text=True, check=False)
  assert result.returncode == 0 and result.stdout.split() == ["ok"], result.stderr[-3000:]


def test_other_dtypes_take_the_matmul_lowering():
  case = CASES["same_s1"]
  x, w = (a.astype(jnp.bfloat16) for a in inputs(case))
  jaxpr = str(jax.make_jaxpr(conv_fn(conv_lowering.conv_general_dilated, case))(x, w))
  assert "custom_vjp_call" in jaxpr and "CvxOneDnn" not in jaxpr


def test_library_is_built_once_into_the_cache(tmp_path, monkeypatch):
  monkeypatch.setenv("CVX_CACHE_DIR", str(tmp_path))
  path = build.build()
  assert path.parent == tmp_path and path.exists()
  built_at = path.stat().st_mtime_ns
  assert build.build() == path and path.stat().st_mtime_ns == built_at
  assert os.listdir(tmp_path) == [path.name]  # no temporary files left behind


def test_missing_compiler_is_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.setenv("CVX_CACHE_DIR", str(tmp_path))
  monkeypatch.setenv("CXX", str(tmp_path / "no-such-c++"))
  with pytest.raises(onednn.OneDnnUnavailable, match="no C.. compiler .*CVX_CPU_CONV=matmul"):
    build.build()


def test_failed_compilation_names_the_command(tmp_path, monkeypatch):
  monkeypatch.setenv("CVX_CACHE_DIR", str(tmp_path))
  monkeypatch.setenv("CXX", f"c++ -include {tmp_path / 'missing.h'}")  # a compile error
  sources = "conv.cc, depthwise.cc, narrow_input.cc, separable_u8.cc, single_channel.cc"
  with pytest.raises(onednn.OneDnnUnavailable, match=f"compiling {sources} failed"):
    build.build()
  assert os.listdir(tmp_path) == []  # nothing half-written in the cache


def test_missing_onednn_wheel_is_a_clear_error(monkeypatch):
  monkeypatch.setattr(build, "HEADERS_DIST", "onednn-no-such-wheel")
  with pytest.raises(onednn.OneDnnUnavailable, match="'onednn-no-such-wheel' .* not installed"):
    build.onednn_paths()


@pytest.mark.parametrize("name", ["same_s2", "groups3", "5x5_dilated_asymmetric_pad"])
def test_second_order_gradients_match_lax(name):
  """Gradient penalties differentiate the gradient: d/d(x, w) of ‖∂L/∂x‖² + ‖∂L/∂w‖²."""
  case = CASES[name]
  x, w = inputs(case)

  def penalty_grads(impl):
    f = conv_fn(impl, case)
    grads = jax.grad(lambda x, w: jnp.sum(jnp.tanh(f(x, w))), argnums=(0, 1))
    return jax.jit(jax.grad(lambda x, w: sum(jnp.sum(d ** 2) for d in grads(x, w)),
                            argnums=(0, 1)))

  got = penalty_grads(conv_lowering.conv_general_dilated)(x, w)
  want = penalty_grads(lax.conv_general_dilated)(x, w)
  assert "CvxOneDnnConvBackwardData" in str(jax.make_jaxpr(
      penalty_grads(conv_lowering.conv_general_dilated))(x, w))
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


def test_unwritable_cache_is_a_clear_error(tmp_path, monkeypatch):
  blocker = tmp_path / "a-file"
  blocker.write_text("")
  monkeypatch.setenv("CVX_CACHE_DIR", str(blocker / "cache"))  # under a file: not creatable
  with pytest.raises(onednn.OneDnnUnavailable, match="cannot write the build cache .*CVX_CACHE_DIR"):
    build.build()
