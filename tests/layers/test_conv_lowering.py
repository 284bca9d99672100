"""The matmul CPU conv lowering computes lax.conv_general_dilated and its
gradients; the modes switch between it, oneDNN and XLA's conv."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

from cvx.layers import conv, conv_lowering
from tests.layers.conv_cases import CASES, conv_fn, inputs


@pytest.fixture(autouse=True)
def matmul_lowering():
  """Selects the matmul lowering (the default is oneDNN where it builds)."""
  conv_lowering.set_cpu_conv("matmul")
  yield
  conv_lowering.set_cpu_conv(None)


@pytest.mark.parametrize("name", CASES)
def test_output_and_gradients_match_lax(name):
  case = CASES[name]
  x, w = inputs(case)
  y, vjp = jax.vjp(conv_fn(conv_lowering.conv_general_dilated, case), x, w)
  y_ref, vjp_ref = jax.vjp(conv_fn(lax.conv_general_dilated, case), x, w)
  g = jax.random.normal(jax.random.key(1), y_ref.shape)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  for got, want in zip(vjp(g), vjp_ref(g)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def _value_and_grads(impl, case, options=None):
  """One jitted function: the conv's output and its vjp of cotangent g."""
  def f(x, w, g):
    y, vjp = jax.vjp(conv_fn(impl, case), x, w)
    return (y, *vjp(g))
  return jax.jit(f, compiler_options=options)


@pytest.mark.parametrize("name", CASES)
def test_matches_lax_under_the_compiler_options(name):
  """Jitted with ``compiler_options()`` (the convs left to XLA on Eigen)."""
  case = CASES[name]
  x, w = inputs(case)
  options = conv_lowering.compiler_options()
  assert options  # this jaxlib knows the option
  g = jax.random.normal(jax.random.key(1), jax.eval_shape(
      conv_fn(lax.conv_general_dilated, case), x, w).shape)
  got = _value_and_grads(conv_lowering.conv_general_dilated, case, options)(x, w, g)
  want = _value_and_grads(lax.conv_general_dilated, case)(x, w, g)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def _ynn_convolutions(hlo_text):
  """The fused computations holding a convolution that XLA:CPU gave YNNPACK."""
  ynn = set(re.findall(r'calls=(%[\w.-]+)[^\n]*"kind":"__ynn_fusion"', hlo_text))
  return [c for c in hlo_text.split("\n\n")
          if c.strip().split(" ", 1)[0] in ynn and " convolution(" in c]


def test_compiler_options_move_native_convs_off_ynnpack():
  """LeNet-5's 6 → 16 kernel gradient (left to XLA's conv): YNNPACK by default,
  Eigen with the options (LeNet-5's step 9.2 → 6.9 ms, benchmarks/RESULTS.md)."""
  case = ((32, 14, 14, 6), (5, 5, 6, 16), (1, 1), "VALID", (1, 1), 1)
  x, w = inputs(case)
  g = jax.random.normal(jax.random.key(1), (32, 10, 10, 16))
  default, tuned = (
      _value_and_grads(conv_lowering.conv_general_dilated, case, options).lower(
          x, w, g).compile().as_text()
      for options in (None, conv_lowering.compiler_options()))
  assert _ynn_convolutions(default) and not _ynn_convolutions(tuned)


def test_compiler_options_only_with_the_lowering(monkeypatch):
  conv_lowering.set_cpu_conv("xla")
  try:
    assert conv_lowering.compiler_options() == {}
  finally:
    conv_lowering.set_cpu_conv(None)
  assert conv_lowering.compiler_options()
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=-individual_dot")
  assert conv_lowering.compiler_options() == {}  # the user's own choice stands
  monkeypatch.delenv("XLA_FLAGS")
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert conv_lowering.compiler_options() == {}


@pytest.mark.parametrize("name", ["same_s1", "same_s2", "negative_pad", "5x5_pad2",
                                  "wide_in_and_out", "depthwise_s2_keras_pad",
                                  "depthwise_mult2_dilated"])
def test_batch_chunked_matmuls_match_lax(name, monkeypatch):
  """With a tiny chunk budget the im2col and col2im matmuls run one example
  at a time (their batch-chunk loops, and the depthwise kernel gradient's)
  and still give lax's gradients."""
  monkeypatch.setattr(conv_lowering, "_CHUNK_BYTES", 1)
  case = CASES[name]
  x, w = inputs(case)
  f = conv_fn(conv_lowering.conv_general_dilated, case)
  assert "scan" in str(jax.make_jaxpr(jax.grad(lambda x, w: f(x, w).sum(), (0, 1)))(x, w))
  y, vjp = jax.vjp(f, x, w)
  y_ref, vjp_ref = jax.vjp(conv_fn(lax.conv_general_dilated, case), x, w)
  g = jax.random.normal(jax.random.key(1), y_ref.shape)
  for got, want in zip((y, *vjp(g)), (y_ref, *vjp_ref(g))):  # sums of up to 360 terms
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", ["same_s2", "groups3", "depthwise_mult2_dilated",
                                  "rgb_s2_dilated_taps", "wide_out_s2_col2im"])
def test_check_grads(name):
  case = CASES[name]
  x, w = inputs(case)
  f = conv_fn(conv_lowering.conv_general_dilated, case)
  check_grads(f, (x, w), order=1, modes=("rev",), atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize("name", ["same_s2", "depthwise_s2_keras_pad", "gray_5x5_pad2_taps"])
def test_jit_and_vmap(name):
  case = CASES[name]
  x, w = inputs(case)
  f = conv_fn(conv_lowering.conv_general_dilated, case)
  f_ref = conv_fn(lax.conv_general_dilated, case)

  def loss(impl):
    return lambda x, w: jnp.sum(impl(x, w) ** 2)

  grads = jax.jit(jax.grad(loss(f), argnums=(0, 1)))(x, w)
  grads_ref = jax.grad(loss(f_ref), argnums=(0, 1))(x, w)
  for got, want in zip(grads, grads_ref):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
  xs = jnp.stack([x, 2 * x])  # vmap over a leading axis of whole batches.
  per_batch = jax.vmap(jax.grad(loss(f), argnums=1), in_axes=(0, None))(xs, w)
  per_batch_ref = jnp.stack([jax.grad(loss(f_ref), argnums=1)(b, w) for b in xs])
  np.testing.assert_allclose(per_batch, per_batch_ref, rtol=1e-4, atol=1e-3)


def _jaxprs(mode, monkeypatch, via_env):
  """Forward and kernel-gradient jaxprs of a conv traced under ``mode``."""
  if via_env:
    conv_lowering.set_cpu_conv(None)
    monkeypatch.setenv(conv_lowering.ENV_VAR, mode)
  else:
    conv_lowering.set_cpu_conv(mode)
  try:
    case = CASES["wide_in_and_out"]  # ≥ 32 output channels: dW by im2col.
    f = conv_fn(conv_lowering.conv_general_dilated, case)
    x, w = inputs(case)
    return (str(jax.make_jaxpr(f)(x, w)),
            str(jax.make_jaxpr(jax.grad(lambda w: f(x, w).sum()))(w)))
  finally:
    conv_lowering.set_cpu_conv(None)


@pytest.mark.parametrize("via_env", [False, True])
def test_switch(monkeypatch, via_env):
  forward, kernel_grad = _jaxprs("matmul", monkeypatch, via_env)
  assert "custom_vjp_call" in forward
  assert "scan" in kernel_grad  # dW as chunked im2col matmuls.
  forward, kernel_grad = _jaxprs("xla", monkeypatch, via_env)
  assert "custom_vjp_call" not in forward
  assert "scan" not in kernel_grad
  forward, kernel_grad = _jaxprs("onednn", monkeypatch, via_env)
  assert "CvxOneDnnConvForward" in forward and "scan" not in kernel_grad
  assert "CvxOneDnnConvBackwardWeights" in kernel_grad


def test_default_mode_is_onednn_where_it_builds(monkeypatch):
  conv_lowering.set_cpu_conv(None)
  monkeypatch.delenv(conv_lowering.ENV_VAR, raising=False)
  assert conv_lowering.cpu_conv_mode() == "onednn"  # installed with cvx on Linux x86-64


def test_bad_mode_raises(monkeypatch):
  with pytest.raises(ValueError, match="cpu conv mode"):
    conv_lowering.set_cpu_conv("fast")
  conv_lowering.set_cpu_conv(None)
  monkeypatch.setenv(conv_lowering.ENV_VAR, "fast")
  with pytest.raises(ValueError, match="CVX_CPU_CONV"):
    conv_lowering.cpu_conv_mode()


def test_non_cpu_backend_uses_native(monkeypatch):
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  f = conv_fn(conv_lowering.conv_general_dilated, CASES["same_s1"])
  jaxpr = str(jax.make_jaxpr(f)(*inputs(CASES["same_s1"])))
  assert "custom_vjp_call" not in jaxpr and "conv_general_dilated" in jaxpr


def test_empty_batch_gives_laxs_empty_output_and_zero_kernel_gradient():
  case = ((0, 8, 8, 40), (3, 3, 40, 32), (1, 1), "SAME", (1, 1), 1)
  x, w = inputs(case)
  f = conv_fn(conv_lowering.conv_general_dilated, case)
  y, (dx, dw) = f(x, w), jax.grad(lambda x, w: f(x, w).sum(), (0, 1))(x, w)
  assert y.shape == (0, 8, 8, 32) and dx.shape == x.shape
  np.testing.assert_array_equal(dw, np.zeros(w.shape))


def test_unsupported_layout_falls_back():
  x, w = jnp.ones((2, 3, 8, 8)), jnp.ones((4, 3, 3, 3))  # NCHW/OIHW (lax default).
  jaxpr = str(jax.make_jaxpr(
      lambda x, w: conv_lowering.conv_general_dilated(x, w, (1, 1), "SAME"))(x, w))
  assert "custom_vjp_call" not in jaxpr


def test_zoo_conv_uses_lowering():
  layer = conv.Conv(4, (3, 3), feature_group_count=1)
  x = jnp.ones((2, 6, 6, 3))
  params = layer.init(jax.random.key(0), x)
  assert "custom_vjp_call" in str(jax.make_jaxpr(layer.apply)(params, x))
