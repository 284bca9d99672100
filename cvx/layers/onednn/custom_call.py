"""2-D convolution on CPU through oneDNN (the library PyTorch's CPU convs use).

:func:`conv` computes ``lax.conv_general_dilated`` for float32 NHWC inputs
and HWIO kernels (I = C_in / groups; any strides, explicit pads, kernel
dilation, feature groups) as XLA FFI custom calls into oneDNN, one for each
of the forward pass, the input gradient and the kernel gradient, tied by a
``jax.custom_vjp``. The calls exist only on the CPU platform: callers choose
this path at trace time on CPU (see :mod:`cvx.layers.conv_lowering`).
Under ``jax.vmap`` the calls run once per mapped element.
"""
import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np

from cvx.layers.onednn import build

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


def _call(target: str, result_shape, a, b, strides, pads, dilation, groups):
  ensure_available()
  return jax.ffi.ffi_call(
      _TARGETS[target], jax.ShapeDtypeStruct(result_shape, jnp.float32),
      vmap_method="sequential")(
          a, b, strides=np.asarray(strides, np.int64),
          pads=np.asarray([p for pair in pads for p in pair], np.int64),
          dilation=np.asarray(dilation, np.int64), groups=np.int64(groups))


def _out_hw(x_shape, w_shape, strides, pads, dilation):
  return tuple((n + lo + hi - (k - 1) * d - 1) // s + 1
               for n, (lo, hi), k, d, s in zip(x_shape[1:3], pads, w_shape[:2], dilation,
                                               strides))


def conv(x, w, strides, pads, dilation, groups):
  """x N×H×W×C ⋆ w kh×kw×(C/groups)×C_out → N×H_out×W_out×C_out (float32).

  ``strides`` and ``dilation`` are (h, w) int pairs (dilation 1 = none),
  ``pads`` ((top, bottom), (left, right)); negative pads crop (before the
  call: oneDNN pads only).
  """
  (top, bottom), (left, right) = ((max(0, -lo), max(0, -hi)) for lo, hi in pads)
  x = x[:, top:x.shape[1] - bottom, left:x.shape[2] - right]
  pads = tuple((max(0, lo), max(0, hi)) for lo, hi in pads)
  return _conv(x, w, tuple(strides), pads, tuple(dilation), groups)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _conv(x, w, strides, pads, dilation, groups):
  y_shape = (x.shape[0], *_out_hw(x.shape, w.shape, strides, pads, dilation), w.shape[3])
  return _call("forward", y_shape, x, w, strides, pads, dilation, groups)


def _conv_fwd(x, w, strides, pads, dilation, groups):
  return _conv(x, w, strides, pads, dilation, groups), (x, w)


def _conv_bwd(strides, pads, dilation, groups, residuals, g):
  x, w = residuals
  dx = _call("input_grad", x.shape, g, w, strides, pads, dilation, groups)
  dw = _call("kernel_grad", w.shape, x, g, strides, pads, dilation, groups)
  return dx, dw


_conv.defvjp(_conv_fwd, _conv_bwd)
