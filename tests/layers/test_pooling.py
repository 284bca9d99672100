"""Pooling layers against torch.nn's, and the CPU tiled max pool against XLA's."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from cvx.layers import conv_lowering, pooling

X = np.random.default_rng(0).normal(size=(2, 13, 11, 3)).astype(np.float32)


def _torch(layer, x):
  out = layer(torch.from_numpy(x).permute(0, 3, 1, 2))
  return out.permute(0, 2, 3, 1).numpy()


def _apply(module, x):
  return module.apply({}, jnp.asarray(x))


@pytest.mark.parametrize("window,stride,padding,ceil_mode", [
    (2, 2, 0, False), (2, 2, 0, True), (3, 2, 1, False), (3, 2, 0, True), (3, 1, 1, False),
])
def test_max_and_avg_pool_match_torch(window, stride, padding, ceil_mode):
  got = _apply(pooling.MaxPool(window, stride, padding, ceil_mode), X)
  want = _torch(torch.nn.MaxPool2d(window, stride, padding, ceil_mode=ceil_mode), X)
  np.testing.assert_array_equal(got, want)
  for include in (True, False):
    got = _apply(pooling.AvgPool(window, stride, padding, ceil_mode, include), X)
    want = _torch(torch.nn.AvgPool2d(window, stride, padding, ceil_mode=ceil_mode,
                                     count_include_pad=include), X)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_adaptive_average_pool_matches_torch_bins():
  got = _apply(pooling.AdaptiveAvgPool((4, 3)), X)
  np.testing.assert_allclose(got, _torch(torch.nn.AdaptiveAvgPool2d((4, 3)), X), rtol=1e-6)


@pytest.mark.parametrize("window", [2, 3])
def test_cpu_tiled_max_pool_is_xlas_max_pool_with_its_gradient(window):
  """Tie-free input: values and gradients equal reduce_window's exactly."""
  module = pooling.MaxPool(window)
  x = jnp.asarray(X)
  cotangent = jax.random.normal(jax.random.PRNGKey(0), _apply(module, X).shape)

  def value_and_grad(mode):
    conv_lowering.set_cpu_conv(mode)
    try:
      out, vjp = jax.vjp(jax.jit(lambda x: module.apply({}, x)), x)
      return out, vjp(cotangent)[0], jax.make_jaxpr(lambda x: module.apply({}, x))(x)
    finally:
      conv_lowering.set_cpu_conv(None)

  tiled, tiled_grad, tiled_jaxpr = value_and_grad("matmul")
  native, native_grad, native_jaxpr = value_and_grad("xla")
  assert "reduce_window_max" in str(native_jaxpr) and "reduce_window" not in str(tiled_jaxpr)
  np.testing.assert_array_equal(tiled, native)
  np.testing.assert_array_equal(tiled_grad, native_grad)


@pytest.mark.parametrize("window", [2, 3])
def test_tied_maxima_give_the_gradient_to_the_first_as_xla_and_torch_do(window):
  x = np.zeros((1, 7, 8, 2), np.float32)  # Every tile ties; odd edges are cropped.
  x[0, 0, 1, 0] = x[0, 1, 0, 0] = 1.0  # A tie of two maxima in the first tile.
  grad = jax.grad(lambda x: pooling.MaxPool(window).apply({}, x).sum())(jnp.asarray(x))
  conv_lowering.set_cpu_conv("xla")
  try:
    want = jax.grad(lambda x: pooling.MaxPool(window).apply({}, x).sum())(jnp.asarray(x))
  finally:
    conv_lowering.set_cpu_conv(None)
  torch_x = torch.from_numpy(x).permute(0, 3, 1, 2).requires_grad_()
  torch.nn.functional.max_pool2d(torch_x, window).sum().backward()
  np.testing.assert_array_equal(grad, want)
  np.testing.assert_array_equal(grad, torch_x.grad.permute(0, 2, 3, 1).numpy())
