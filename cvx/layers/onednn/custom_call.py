"""2-D convolution on CPU through oneDNN (the library PyTorch's CPU convs use).

:func:`conv` computes ``lax.conv_general_dilated`` for float32 NHWC inputs
and HWIO kernels (I = C_in / groups; any strides, explicit pads, kernel
dilation, feature groups) as XLA FFI custom calls into oneDNN, one for each
of the forward pass, the input gradient and the kernel gradient (``conv.cc``
runs oneDNN's direct convolution, Winograd F(2×2, 3×3) for all three passes
of stride-1 3×3 convs with ≥ 32 channels, one matmul per pass for unpadded
1×1 convs, col2im for the input gradient of ≤ 4-channel first layers, and
on AVX-512 cvx's own loops: ``single_channel.cc``'s row-vectorised ones for
stride-1 convs of grey images, ``narrow_input.cc``'s for the gradients of
convs of ≤ 8 channels, ``depthwise.cc``'s for stride-1 depthwise convs).
Each pass is a
``jax.custom_vjp`` whose VJP is made of the other two, so gradients of any
order (gradient penalties) run on oneDNN. The calls exist only on the CPU
platform: callers choose
this path at trace time on CPU (see :mod:`cvx.layers.conv_lowering`).
Under ``jax.vmap`` the calls run once per mapped element; in a batch-sharded
``jit`` each device runs them on its own shard (:mod:`.sharding`).
"""
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from cvx.layers.onednn import build, sharding

_TARGETS = {"forward": "CvxOneDnnConvForward", "input_grad": "CvxOneDnnConvBackwardData",
            "kernel_grad": "CvxOneDnnConvBackwardWeights"}


@functools.cache
def _register() -> None:
  library = build.load()
  for target in _TARGETS.values():
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, target)),
                                platform="cpu")


def ensure_available() -> None:
  """Builds and registers the custom calls; raises ``OneDnnUnavailable`` with
  the reason (no oneDNN wheel, no compiler, a failed build) if it cannot."""
  _register()


@functools.cache
def available() -> bool:
  """Whether :func:`conv` can run here (checked, and built, once per process)."""
  try:
    ensure_available()
  except build.OneDnnUnavailable as error:
    logging.warning("oneDNN convolutions unavailable, using the matmul lowering: %s", error)
    return False
  return True


def supports(x, w) -> bool:
  """Whether :func:`conv` takes these operands (float32, rank 4)."""
  return x.dtype == jnp.float32 and w.dtype == jnp.float32 and x.ndim == w.ndim == 4


class Geometry(NamedTuple):
  """Static conv parameters: (h, w) strides and dilation (1 = none), and
  non-negative ((top, bottom), (left, right)) pads."""
  strides: tuple[int, int]
  pads: tuple[tuple[int, int], tuple[int, int]]
  dilation: tuple[int, int]
  groups: int


def _call(target: str, result_shape, a, b, geometry: Geometry):
  ensure_available()
  return jax.ffi.ffi_call(
      _TARGETS[target], jax.ShapeDtypeStruct(result_shape, jnp.float32))(
          a, b, strides=np.asarray(geometry.strides, np.int64),
          pads=np.asarray([p for pair in geometry.pads for p in pair], np.int64),
          dilation=np.asarray(geometry.dilation, np.int64), groups=np.int64(geometry.groups))


def _out_hw(x_shape, w_shape, geometry: Geometry):
  return tuple((n + lo + hi - (k - 1) * d - 1) // s + 1
               for n, (lo, hi), k, d, s in zip(x_shape[1:3], geometry.pads, w_shape[:2],
                                               geometry.dilation, geometry.strides))


def conv(x, w, strides, pads, dilation, groups):
  """x N×H×W×C ⋆ w kh×kw×(C/groups)×C_out → N×H_out×W_out×C_out (float32).

  ``strides`` and ``dilation`` are (h, w) int pairs (dilation 1 = none),
  ``pads`` ((top, bottom), (left, right)); negative pads crop (before the
  call: oneDNN pads only).
  """
  (top, bottom), (left, right) = ((max(0, -lo), max(0, -hi)) for lo, hi in pads)
  x = x[:, top:x.shape[1] - bottom, left:x.shape[2] - right]
  pads = tuple((max(0, lo), max(0, hi)) for lo, hi in pads)
  return _forward(x, w, Geometry(tuple(strides), pads, tuple(dilation), groups))


def _forward_call(x, w, geometry: Geometry):
  y_shape = (x.shape[0], *_out_hw(x.shape, w.shape, geometry), w.shape[3])
  return _call("forward", y_shape, x, w, geometry)


def _input_grad_call(g, w, geometry: Geometry, x_hwc):
  return _call("input_grad", (g.shape[0], *x_hwc), g, w, geometry)


def _kernel_grad_call(x, g, geometry: Geometry, w_shape):
  return _call("kernel_grad", w_shape, x, g, geometry)


# The calls as XLA's partitioner splits them over a batch-sharded mesh.
_forward_sharded = sharding.along_batch(_forward_call, sharding.FORWARD_RULE, (2,))
_input_grad_sharded = sharding.along_batch(_input_grad_call, sharding.INPUT_GRAD_RULE, (2, 3))
_kernel_grad_sharded = sharding.summed_over_batch(
    _kernel_grad_call, sharding.KERNEL_GRAD_RULE, (2, 3))


# The three passes are bilinear, and each one's VJP is made of the other two,
# so every order of reverse-mode derivative runs on oneDNN.
@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _forward(x, w, geometry: Geometry):
  return _forward_sharded(x, w, geometry)


def _forward_bwd(geometry, residuals, g):
  x, w = residuals
  return (_input_grad(g, w, geometry, x.shape), _kernel_grad(x, g, geometry, w.shape))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _input_grad(g, w, geometry: Geometry, x_shape):
  """∂⟨g, conv(x, w)⟩/∂x: x-shaped."""
  return _input_grad_sharded(g, w, geometry, tuple(x_shape[1:]))


def _input_grad_bwd(geometry, x_shape, residuals, ct):
  g, w = residuals
  return _forward(ct, w, geometry), _kernel_grad(ct, g, geometry, w.shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _kernel_grad(x, g, geometry: Geometry, w_shape):
  """∂⟨g, conv(x, w)⟩/∂w: w-shaped."""
  return _kernel_grad_sharded(x, g, geometry, tuple(w_shape))


def _kernel_grad_bwd(geometry, w_shape, residuals, ct):
  x, g = residuals
  return _input_grad(g, ct, geometry, x.shape), _forward(x, ct, geometry)


_forward.defvjp(lambda x, w, geometry: (_forward(x, w, geometry), (x, w)), _forward_bwd)
_input_grad.defvjp(
    lambda g, w, geometry, x_shape: (_input_grad(g, w, geometry, x_shape), (g, w)),
    _input_grad_bwd)
_kernel_grad.defvjp(
    lambda x, g, geometry, w_shape: (_kernel_grad(x, g, geometry, w_shape), (x, g)),
    _kernel_grad_bwd)
