"""CPU lowerings of 2-D convolutions (NHWC input, HWIO kernel).

:func:`conv_general_dilated` has the signature of ``lax.conv_general_dilated``
and computes the same function. On CPU, by mode (``CVX_CPU_CONV``):

- ``onednn`` (the default on one device where it builds): float32 convs as
  oneDNN custom calls (:mod:`cvx.layers.onednn`): the direct convolutions
  PyTorch's CPU training uses, Winograd F(2×2, 3×3) for stride-1 3×3 convs
  with ≥ 32 channels; split over a batch-sharded mesh by XLA's partitioner;
  other dtypes take the matmul lowering.
- ``matmul`` (the default otherwise, see :func:`cpu_conv_mode`): a
  ``jax.custom_vjp`` that picks, per conv, the formulation that measured
  fastest in XLA (``benchmarks/RESULTS.md``):

  - forward: inputs of at most 3 channels (the first layer) as one fused sum of
    broadcast multiplies; ≥ 32 output channels with shallow patches
    (kh·kw·C ≤ 640) or outputs of ≤ 4 pixels as a batch-chunked im2col matmul;
    else XLA's conv.
  - input gradient: fewer than 32 input channels by col2im (the patch gradients,
    each tap's block added at its place: NHWC, or batch minor for stride-1
    kernels of 5×5 and up); stride 1 with shallow flipped patches as the im2col
    conv of g with the flipped kernel; else XLA's.
  - kernel gradient: the batch-chunked im2col matmul (XLA:CPU's native weight
    gradient runs at a fraction of the matmul rate), except XLA's for one input
    channel or fewer than 32 output channels.
  - depthwise convs (all three) as sums over the k² taps of shifted products,
    the kernel gradient's over batch chunks (XLA:CPU's grouped convolution is
    slow, jax#23713); other grouped convs keep XLA's forward and dX.
- ``xla``: XLA's native convolution.

The lowering is chosen at trace time: only when ``jax.default_backend()`` is
``'cpu'``; GPU/TPU always get XLA's native convolution. The convs the matmul
lowering leaves to XLA run faster through XLA:CPU's Eigen convolution than
through YNNPACK, which XLA picks by default: jit the program with
``compiler_options=`` :func:`compiler_options` (cvx's training loop and
benchmarks do). Choose the mode with the environment variable
``CVX_CPU_CONV`` or ``set_cpu_conv``; other layouts (not NHWC/HWIO), 1-D/3-D
convs, input dilation, ``batch_group_count`` and ``preferred_element_type``
fall back to the native op in every mode.
"""
import functools
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from cvx.layers import onednn

MODES = ("onednn", "matmul", "xla")
ENV_VAR = "CVX_CPU_CONV"
# Batch chunk size of the kernel-gradient im2col: about this many patch bytes,
# so each chunk stays in cache instead of materialising all patches at once.
_CHUNK_BYTES = 8 << 20
# Forward / stride-1 dX use im2col only up to this patch depth (kh·kw·C): for
# deeper patches XLA's native conv was faster in benchmarks/train_throughput.py.
_IM2COL_MAX_DEPTH = 640
# ...and at any depth for outputs of at most this many pixels: XLA:CPU's native
# conv runs a 3×3 conv on 2×2×512 maps at ~2 GFLOP/s (VGG's last stage at 32×32).
_IM2COL_MAX_AREA = 4
# ...and only with at least this many output channels: a matmul with fewer
# columns is bound by building the patches (LeNet-5's 6 → 16 conv: im2col
# 1.9–3 ms, XLA's conv 1.1–1.9 ms; its patch slices dominated the train step).
# Narrow dX (fewer input channels) goes through col2im instead (LeNet-5's
# 14×14×6 dX: 1.2 ms against 3.2 ms for XLA's), narrow dW through XLA's.
_IM2COL_MIN_OUT_CHANNELS = 32
# Inputs with at most this many channels (grey and RGB images: the first layer)
# take the forward as one fused sum of k²·C broadcast multiplies: LeNet-5's
# 28×28×1 → 6 5×5 conv in 0.4–0.7 ms against 4–10 ms for XLA's conv or im2col
# (on ResNet's 32×32×3 → 64 stem as fast as XLA's, im2col 1.4× slower).
_TAPS_MAX_CHANNELS = 3
# col2im input gradients of stride-1 kernels with at least this many taps run
# batch minor (C_in×H×W×N): LeNet-5's 14×14×6 5×5 dX 0.8 ms against 2.1 ms
# NHWC, 28×28×6 9 ms against 40; for 3×3 kernels NHWC was as fast or faster.
_COL2IM_BATCH_MINOR_MIN_TAPS = 25
_NHWC = ("NHWC", "HWIO", "NHWC")
# XLA:CPU's default YNNPACK fusion types without INDIVIDUAL_CONVOLUTION (dots and
# reductions stay with YNNPACK): the convs left to XLA above then run on Eigen.
# LeNet-5's narrow kernel gradients 1.14 → 0.73 ms (6 → 16) and 1.61 → 1.00 ms
# (1 → 6); whole train steps LeNet-5 9.2 → 6.9 ms, MobileNet-v1 at 128×128
# 3.9 → 3.3 s, ResNet-18 and VGG-11 within noise (benchmarks/RESULTS.md).
_YNN_FUSION_OPTION = "xla_cpu_experimental_ynn_fusion_type"
_CPU_COMPILER_OPTIONS = {
    _YNN_FUSION_OPTION: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}

_mode_override = None


def set_cpu_conv(mode: str | None) -> None:
  """Selects the CPU lowering: 'onednn', 'matmul', 'xla' (native), or None to
  defer to ``$CVX_CPU_CONV`` (else the default). Takes effect for functions
  traced afterwards."""
  global _mode_override
  if mode is not None and mode not in MODES:
    raise ValueError(f"cpu conv mode must be one of {MODES} or None, got {mode!r}")
  _mode_override = mode


def cpu_lowering_active() -> bool:
  """True when tracing for the CPU backend with a lowering ('onednn' or
  'matmul') selected."""
  return jax.default_backend() == "cpu" and cpu_conv_mode() != "xla"


def cpu_conv_mode() -> str:
  """The active mode: ``set_cpu_conv``'s, else ``$CVX_CPU_CONV``, else
  'onednn' on a single device where oneDNN builds (checked once), else
  'matmul'. Several devices or processes keep the matmul lowering by default:
  oneDNN splits over a batch-sharded mesh, but its rounding depends on the
  OpenMP threads each call gets, so two ``jax.distributed`` processes trained
  to other rounding than one process with as many devices (a loss 4e-4 apart
  at step 10 of 12; 1e-7 with one thread per call), which the matmul lowering
  does not."""
  mode = _mode_override or os.environ.get(ENV_VAR)
  if mode is None:
    return "onednn" if jax.device_count() == 1 and onednn.available() else "matmul"
  if mode not in MODES:
    raise ValueError(f"${ENV_VAR} must be one of {MODES}, got {mode!r}")
  return mode


def compiler_options() -> dict[str, str]:
  """XLA options for ``jax.jit(fn, compiler_options=...)`` of a program using
  this lowering: convs left to XLA go to Eigen instead of YNNPACK. Empty (XLA's
  defaults) when the lowering is off, when ``$XLA_FLAGS`` sets the YNN fusion
  types itself, or when this XLA does not know the option."""
  if not cpu_lowering_active() or _YNN_FUSION_OPTION in os.environ.get("XLA_FLAGS", ""):
    return {}
  return dict(_CPU_COMPILER_OPTIONS) if _options_supported() else {}


@functools.cache
def _options_supported() -> bool:
  try:
    jax.jit(lambda: jnp.zeros(()), compiler_options=_CPU_COMPILER_OPTIONS).lower().compile()
  except jax.errors.JaxRuntimeError:  # an XLA without this option or its values
    return False
  return True


class _Spec(NamedTuple):
  """Static conv parameters; ``pads`` are explicit (low, high) pairs."""
  strides: tuple[int, int]
  pads: tuple[tuple[int, int], tuple[int, int]]
  dilation: tuple[int, int]
  groups: int
  precision: lax.PrecisionLike


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None,
                         feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
  """``lax.conv_general_dilated`` with the CPU lowering where it applies."""
  native = functools.partial(
      lax.conv_general_dilated, lhs, rhs, window_strides, padding,
      lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
      dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
      batch_group_count=batch_group_count, precision=precision,
      preferred_element_type=preferred_element_type)
  if (not cpu_lowering_active()
      or lhs.ndim != 4 or rhs.ndim != 4 or batch_group_count != 1
      or preferred_element_type is not None
      or any(d != 1 for d in (lhs_dilation or (1, 1)))
      or not _is_nhwc(lhs.shape, rhs.shape, dimension_numbers)):
    return native()
  dilation = tuple(rhs_dilation or (1, 1))
  if isinstance(padding, str):
    kernel = [(k - 1) * d + 1 for k, d in zip(rhs.shape[:2], dilation)]
    padding = lax.padtype_to_pads(lhs.shape[1:3], kernel, window_strides, padding)
  spec = _Spec(tuple(window_strides), tuple(tuple(p) for p in padding), dilation,
               feature_group_count, precision)
  if min(lhs.shape[0], *_out_hw(lhs.shape, rhs.shape, spec)) <= 0:  # Empty output.
    return native()
  if cpu_conv_mode() == "onednn" and onednn.supports(lhs, rhs):
    return onednn.conv(lhs, rhs, spec.strides, spec.pads, spec.dilation, spec.groups)
  return _conv(lhs, rhs, spec)


def _is_nhwc(lhs_shape, rhs_shape, dimension_numbers) -> bool:
  if dimension_numbers is None:  # lax's default is NCHW/OIHW.
    return False
  dn = lax.conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers)
  return dn == lax.conv_dimension_numbers(lhs_shape, rhs_shape, _NHWC)


def _is_depthwise(x, w, spec: _Spec) -> bool:
  return spec.groups == x.shape[-1] and w.shape[2] == 1 and spec.groups > 1


def _native(x, w, spec: _Spec):
  return lax.conv_general_dilated(
      x, w, spec.strides, spec.pads, rhs_dilation=spec.dilation,
      dimension_numbers=_NHWC, feature_group_count=spec.groups,
      precision=spec.precision)


def _shifted(xp, i, j, out_hw, spec: _Spec):
  """The padded input seen by kernel tap (i, j): N×H_out×W_out×C."""
  (sh, sw), (dh, dw) = spec.strides, spec.dilation
  start = (0, i * dh, j * dw, 0)
  limit = (xp.shape[0], i * dh + (out_hw[0] - 1) * sh + 1,
           j * dw + (out_hw[1] - 1) * sw + 1, xp.shape[3])
  return lax.slice(xp, start, limit, (1, sh, sw, 1))


def _pad(x, spec: _Spec):
  config = ((0, 0, 0), *[(lo, hi, 0) for lo, hi in spec.pads], (0, 0, 0))
  return lax.pad(x, jnp.zeros((), x.dtype), config)


def _out_hw(x_shape, w_shape, spec: _Spec):
  return tuple((n + lo + hi - (k - 1) * d - 1) // s + 1
               for n, (lo, hi), k, d, s in zip(x_shape[1:3], spec.pads, w_shape[:2],
                                               spec.dilation, spec.strides))


def _per_output_channel(x, out_channels: int):
  """x with its channels repeated for a depthwise multiplier m: output
  channel c·m + q reads input channel c."""
  multiplier = out_channels // x.shape[3]
  return jnp.repeat(x, multiplier, axis=3) if multiplier > 1 else x


def _depthwise(x, w, spec: _Spec):
  """Depthwise conv (kernel kh×kw×1×C·m) as k² shifted multiply-adds."""
  x = _per_output_channel(x, w.shape[3])
  xp, out_hw = _pad(x, spec), _out_hw(x.shape, w.shape, spec)
  taps = [_shifted(xp, i, j, out_hw, spec) * w[i, j, 0]
          for i in range(w.shape[0]) for j in range(w.shape[1])]
  return functools.reduce(jnp.add, taps)


def _in_batch_chunks(fn, x):
  """``fn(x)`` computed on at least two batch chunks in a loop XLA keeps, so
  consumers read the result instead of fusing (and recomputing) ``fn``'s
  elementwise sums into each of them."""
  n = x.shape[0]
  chunk = max([d for d in range(1, n // 2 + 1) if n % d == 0] or [n])
  ys = lax.map(fn, x.reshape(n // chunk, chunk, *x.shape[1:]))
  return ys.reshape(n, *ys.shape[2:])


def _broadcast_taps(x, w, spec: _Spec):
  """Ungrouped conv of a few-channel input as Σ over taps and input channels of
  a shifted channel times its kernel row (one fused elementwise loop)."""
  out_hw = _out_hw(x.shape, w.shape, spec)

  def chunk_out(xc):
    xp = _pad(xc, spec)
    terms = [_shifted(xp, i, j, out_hw, spec)[..., c:c + 1] * w[i, j, c]
             for i in range(w.shape[0]) for j in range(w.shape[1]) for c in range(w.shape[2])]
    return functools.reduce(jnp.add, terms)

  return _in_batch_chunks(chunk_out, x)


def _chunk(n: int, per_example_bytes: int) -> int:
  """Largest divisor of the batch n whose im2col chunk fits ``_CHUNK_BYTES``."""
  bound = min(n, max(1, _CHUNK_BYTES // max(1, per_example_bytes)))
  return max(d for d in range(1, bound + 1) if n % d == 0)


def _im2col(xp, kernel_hw, out_hw, spec: _Spec):
  """Patches N×H_out×W_out×(kh·kw·C), ordered like a flattened HWIO kernel."""
  return jnp.concatenate([_shifted(xp, i, j, out_hw, spec)
                          for i in range(kernel_hw[0]) for j in range(kernel_hw[1])],
                         axis=3)


def _dense(x, w, spec: _Spec):
  """Ungrouped conv as batch-chunked im2col @ kernel (patches stay in cache)."""
  out_hw, w2 = _out_hw(x.shape, w.shape, spec), w.reshape(-1, w.shape[3])
  chunk = _chunk(x.shape[0], out_hw[0] * out_hw[1] * w2.shape[0] * x.dtype.itemsize)

  def chunk_out(_, xc):
    cols = _im2col(_pad(xc, spec), w.shape[:2], out_hw, spec)
    return None, jnp.dot(cols, w2, precision=spec.precision)

  _, ys = lax.scan(chunk_out, None, x.reshape(-1, chunk, *x.shape[1:]))
  return ys.reshape(x.shape[0], *out_hw, w.shape[3])


def _input_grad_stride1(w, g, spec: _Spec):
  """dX of a stride-1 ungrouped conv: the full conv of g with the flipped kernel."""
  pads = tuple(((k - 1) * d - lo, (k - 1) * d - hi)
               for (lo, hi), k, d in zip(spec.pads, w.shape[:2], spec.dilation))
  flipped = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
  return _dense(g, flipped, spec._replace(pads=pads))


def _input_grad_col2im(x_shape, w, g, spec: _Spec):
  """dX of a conv with few input channels from its patch gradients (col2im)."""
  if spec.strides == (1, 1) and w.shape[0] * w.shape[1] >= _COL2IM_BATCH_MINOR_MIN_TAPS:
    dxp = _col2im_batch_minor(x_shape, w, g, spec)
  else:
    dxp = _col2im_nhwc(x_shape, w, g, spec)
  (top, bottom), (left, right) = spec.pads  # dxp is in padded-input coordinates
  return lax.pad(dxp, jnp.zeros((), g.dtype),
                 ((0, 0, 0), (-top, -bottom, 0), (-left, -right, 0), (0, 0, 0)))


def _padded_hw(x_shape, spec: _Spec):
  return tuple(n + lo + hi for n, (lo, hi) in zip(x_shape[1:3], spec.pads))


def _col2im_nhwc(x_shape, w, g, spec: _Spec):
  """The patch gradients g @ Wᵀ, each tap's slice zero-padded (with holes for
  strides) to its place in the padded input and summed."""
  kh, kw, cin, cout = w.shape
  (sh, sw), (dh, dw) = spec.strides, spec.dilation
  hp, wp = _padded_hw(x_shape, spec)
  zero = jnp.zeros((), g.dtype)

  def chunk_grad(gc):
    n, oh, ow, _ = gc.shape
    cols = jnp.dot(gc, w.reshape(-1, cout).T, precision=spec.precision)
    cols = cols.reshape(n, oh, ow, kh, kw, cin)
    parts = [lax.pad(cols[:, :, :, i, j], zero,
                     ((0, 0, 0), (i * dh, hp - i * dh - (oh - 1) * sh - 1, sh - 1),
                      (j * dw, wp - j * dw - (ow - 1) * sw - 1, sw - 1), (0, 0, 0)))
             for i in range(kh) for j in range(kw)]
    return functools.reduce(jnp.add, parts)

  if kh * kw == 1:  # A single tap: nothing to sum, no fusion to keep apart.
    return chunk_grad(g)
  return _in_batch_chunks(chunk_grad, g)


def _col2im_batch_minor(x_shape, w, g, spec: _Spec):
  """Stride-1 col2im computed C_in×H×W×N, in batch chunks of about
  ``_CHUNK_BYTES`` of patch gradients: W @ gᵀ is a wide matmul, and each tap's
  block is added in place to its window along the batch axis (NHWC's few
  channels vectorise poorly; g @ Wᵀ is a tall, narrow matmul)."""
  kh, kw, cin, cout = w.shape
  dh, dw = spec.dilation
  hp, wp = _padded_hw(x_shape, spec)
  n, oh, ow, _ = g.shape

  def chunk_grad(gc):
    gt = gc.transpose(3, 1, 2, 0).reshape(cout, -1)
    cols = jnp.dot(w.reshape(-1, cout), gt, precision=spec.precision)
    cols = cols.reshape(kh, kw, cin, oh, ow, gc.shape[0])
    dxp = jnp.zeros((cin, hp, wp, gc.shape[0]), g.dtype)
    for i in range(kh):
      for j in range(kw):
        start = (0, i * dh, j * dw, 0)
        window = lax.dynamic_slice(dxp, start, cols[i, j].shape)
        dxp = lax.dynamic_update_slice(dxp, window + cols[i, j], start)
    return dxp.transpose(3, 1, 2, 0)

  chunk = _chunk(n, kh * kw * cin * oh * ow * g.dtype.itemsize)
  if chunk == n:
    return chunk_grad(g)
  dxp = lax.map(chunk_grad, g.reshape(n // chunk, chunk, *g.shape[1:]))
  return dxp.reshape(n, hp, wp, cin)


def _use_im2col(w, spec: _Spec, out_hw) -> bool:
  """For kernel ``w`` (kh×kw×C_in×C_out) producing ``out_hw`` maps."""
  shallow = w.shape[0] * w.shape[1] * w.shape[2] <= _IM2COL_MAX_DEPTH
  return (spec.groups == 1 and w.shape[3] >= _IM2COL_MIN_OUT_CHANNELS
          and (shallow or out_hw[0] * out_hw[1] <= _IM2COL_MAX_AREA))


def _forward(x, w, spec: _Spec):
  if _is_depthwise(x, w, spec):
    return _depthwise(x, w, spec)
  if spec.groups == 1 and x.shape[3] <= _TAPS_MAX_CHANNELS:
    return _broadcast_taps(x, w, spec)
  use_im2col = _use_im2col(w, spec, _out_hw(x.shape, w.shape, spec))
  return (_dense if use_im2col else _native)(x, w, spec)


def _sum_over_batch_chunks(chunk_sum, x, g, per_example_bytes: int):
  """Σ of ``chunk_sum(x_chunk, g_chunk)`` over batch chunks of about
  ``_CHUNK_BYTES`` (``per_example_bytes`` each), in a loop XLA keeps."""
  n = x.shape[0]
  chunk = _chunk(n, per_example_bytes)
  xs = x.reshape(n // chunk, chunk, *x.shape[1:])
  gs = g.reshape(n // chunk, chunk, *g.shape[1:])
  out = jax.eval_shape(chunk_sum, xs[0], gs[0])
  acc, _ = lax.scan(lambda acc, xg: (acc + chunk_sum(*xg), None),
                    jnp.zeros(out.shape, out.dtype), (xs, gs))
  return acc


def _kernel_grad(x, w_shape, g, spec: _Spec):
  """dW (kh×kw×C_in/G×C_out) = Σ_batch-chunks g^T @ im2col(x), per group."""
  kh, kw, groups = w_shape[0], w_shape[1], spec.groups
  cg, og = x.shape[3] // groups, g.shape[3] // groups

  def chunk_grad(xc, gc):
    xp = _pad(xc, spec)
    cols = jnp.stack([_shifted(xp, i, j, g.shape[1:3], spec)
                      for i in range(kh) for j in range(kw)], axis=3)
    cols = cols.reshape(-1, kh * kw, groups, cg)
    return jnp.einsum("mgo,mkgc->gokc", gc.reshape(-1, groups, og), cols,
                      precision=spec.precision)

  per_example = g.shape[1] * g.shape[2] * kh * kw * x.shape[3] * x.dtype.itemsize
  acc = _sum_over_batch_chunks(chunk_grad, x, g, per_example)
  return acc.transpose(2, 3, 0, 1).reshape(w_shape).astype(x.dtype)


def _depthwise_kernel_grad(x, w_shape, g, spec: _Spec):
  """dW (kh×kw×1×C·m) of a depthwise conv: each tap's Σ shifted(x)·g, over
  batch chunks. XLA materialises the shifted copies its YNNPACK reductions
  read; per chunk they stay in cache (MobileNet-v1's step 190 → 170 ms)."""
  x = _per_output_channel(x, w_shape[3])
  kh, kw = w_shape[:2]

  def chunk_grad(xc, gc):
    xp = _pad(xc, spec)
    return jnp.stack([jnp.sum(_shifted(xp, i, j, g.shape[1:3], spec) * gc, axis=(0, 1, 2))
                      for i in range(kh) for j in range(kw)])

  per_example = kh * kw * g.shape[1] * g.shape[2] * g.shape[3] * g.dtype.itemsize
  return _sum_over_batch_chunks(chunk_grad, x, g, per_example).reshape(w_shape).astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv(x, w, spec: _Spec):
  return _forward(x, w, spec)


def _conv_fwd(x, w, spec: _Spec):
  return _forward(x, w, spec), (x, w)


def _conv_bwd(spec: _Spec, residuals, g):
  x, w = residuals
  if _is_depthwise(x, w, spec):
    _, vjp = jax.vjp(lambda x: _depthwise(x, w, spec), x)
    return vjp(g)[0], _depthwise_kernel_grad(x, w.shape, g, spec)
  if spec.groups == 1 and x.shape[3] < _IM2COL_MIN_OUT_CHANNELS:
    dx = _input_grad_col2im(x.shape, w, g, spec)
  elif spec.strides == (1, 1) and _use_im2col(w.transpose(0, 1, 3, 2), spec, x.shape[1:3]):
    dx = _input_grad_stride1(w, g, spec)
  else:
    dx = jax.vjp(lambda x: _native(x, w, spec), x)[1](g)[0]
  if x.shape[3] == 1 or w.shape[3] < _IM2COL_MIN_OUT_CHANNELS:  # see the constants
    return dx, jax.vjp(lambda w: _native(x, w, spec), w)[1](g)[0]
  return dx, _kernel_grad(x, w.shape, g, spec)


_conv.defvjp(_conv_fwd, _conv_bwd)

