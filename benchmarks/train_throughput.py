"""CPU training throughput of cvx models against the same network in PyTorch.

  python benchmarks/train_throughput.py --model resnet18 --batch 128 --vs torch
  python benchmarks/train_throughput.py --model all --layers

One SGD-nesterov (momentum 0.9) train step with BatchNorm updates and dropout,
cross-entropy on 10 classes, random NHWC (cvx) / NCHW (torch) inputs. Each
runner is warmed up (compilation excluded), then timed for ``--steps`` steps
per repeat after one untimed step, repeats interleaved between runners; medians
are reported. Runners:
``cvx`` (the default CPU convs: oneDNN custom calls, jitted with the
lowering's ``compiler_options``), ``cvx-matmul`` (``CVX_CPU_CONV=matmul``: the
XLA matmul lowering), ``cvx-xla`` (``CVX_CPU_CONV=xla``: XLA's native conv and
default options) and ``torch`` (eager, as many threads as XLA uses).
``--layers`` adds per-conv-layer GFLOP/s of forward, dX and dW and the
measured matmul rate.
The last line printed is the cvx/torch images/s ratio of the last model.
The script restarts itself with malloc on transparent huge pages
(:mod:`cvx.huge_pages`, as ``cvx.main`` does; ``CVX_HUGE_PAGES=0`` keeps 4 KiB
pages), for every runner alike; the header names the ``GLIBC_TUNABLES``.
"""
import functools
import os
import time
from typing import Callable

if __name__ == "__main__":  # before JAX loads: the restart replaces the process
  from cvx import huge_pages
  huge_pages.restart_with_huge_pages()

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
import torchvision
from absl import app, flags
from jax import lax
from torch import nn as tnn
from torch.nn import functional as F

from cvx import models
from cvx.layers import conv_lowering

_MODEL = flags.DEFINE_string("model", "resnet18", "A key of MODELS, or 'all'.")
_BATCH = flags.DEFINE_integer("batch", 128, "Batch size.")
_VS = flags.DEFINE_enum("vs", "torch", ["torch", "none"], "Peer to compare with.")
_STEPS = flags.DEFINE_integer("steps", 3, "Train steps timed per repeat.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Interleaved repeats per runner.")
_MATMUL = flags.DEFINE_bool("matmul", True, "Also time cvx with the matmul lowering.")
_NATIVE = flags.DEFINE_bool("native", True, "Also time cvx with XLA's native conv.")
_LAYERS = flags.DEFINE_bool("layers", False, "Print the per-layer GFLOP/s table.")

NUM_CLASSES = 10
THREADS = len(os.sched_getaffinity(0))


# ---------------------------------------------------------------- torch twins
def _torch_resnet18() -> tnn.Module:
  """torchvision ResNet-18 with the CIFAR stem (3×3/1 conv, no max pool)."""
  net = torchvision.models.resnet18(num_classes=NUM_CLASSES)
  net.conv1 = tnn.Conv2d(3, 64, 3, 1, 1, bias=False)
  net.maxpool = tnn.Identity()
  return net


def _torch_lenet5() -> tnn.Module:
  return tnn.Sequential(
      tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
      tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
      tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(),
      tnn.Linear(84, NUM_CLASSES))


def _torch_vgg11() -> tnn.Module:
  """VGG-11 features, 1×1 average pool, 512 → 512 → 512 → classes head."""
  layers, width = [], 3
  for stage in ((64,), (128,), (256, 256), (512, 512), (512, 512)):
    for channels in stage:
      layers += [tnn.Conv2d(width, channels, 3, padding=1), tnn.ReLU()]
      width = channels
    layers.append(tnn.MaxPool2d(2))
  head = [tnn.AdaptiveAvgPool2d(1), tnn.Flatten()]
  for _ in range(2):
    head += [tnn.Linear(512, 512), tnn.ReLU(), tnn.Dropout(0.5)]
  return tnn.Sequential(*layers, *head, tnn.Linear(512, NUM_CLASSES))


def _torch_mobilenet_v1() -> tnn.Module:
  """MobileNet v1 α=1; strided convs pad (0, 1) like cvx (Keras layout)."""

  def conv_bn(cin, cout, k, stride, groups=1):
    pad = tnn.ZeroPad2d((0, 1, 0, 1)) if stride == 2 else tnn.ZeroPad2d(k // 2)
    return [pad, tnn.Conv2d(cin, cout, k, stride, groups=groups, bias=False),
            tnn.BatchNorm2d(cout, momentum=0.01, eps=1e-3), tnn.ReLU6()]

  layers, width = conv_bn(3, 32, 3, 2), 32
  for channels, stride in ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                           *[(512, 1)] * 5, (1024, 2), (1024, 1)):
    layers += conv_bn(width, width, 3, stride, groups=width) + conv_bn(width, channels, 1, 1)
    width = channels
  return tnn.Sequential(*layers, tnn.AdaptiveAvgPool2d(1), tnn.Flatten(),
                        tnn.Dropout(1e-3), tnn.Linear(1024, NUM_CLASSES))


# name → (cvx model name, create kwargs, input H×W×C, torch builder)
MODELS = {
    "resnet18": ("resnet18", {"stem": "cifar"}, (32, 32, 3), _torch_resnet18),
    "lenet5": ("lenet5", {}, (28, 28, 1), _torch_lenet5),
    "vgg11": ("vgg11", {"pool_size": (1, 1), "hidden": 512}, (32, 32, 3), _torch_vgg11),
    "mobilenet_v1": ("mobilenet_v1", {}, (32, 32, 3), _torch_mobilenet_v1),
    "mobilenet_v1@128": ("mobilenet_v1", {}, (128, 128, 3), _torch_mobilenet_v1),
}


# ------------------------------------------------------------------- runners
def _optimizer():
  return optax.sgd(0.01, momentum=0.9, nesterov=True)


def cvx_runner(name: str, batch: int, mode: str) -> Callable[[], None]:
  """A closure running one jitted cvx train step; conv lowering ``mode``."""
  model_name, kwargs, shape, _ = MODELS[name]
  model = models.create(model_name, num_classes=NUM_CLASSES, **kwargs)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((batch, *shape)), jnp.float32)
  y = jnp.asarray(rng.integers(0, NUM_CLASSES, batch))
  variables = model.init(jax.random.key(0), x[:1], train=False)
  params, stats = variables["params"], variables.get("batch_stats", {})
  tx = _optimizer()

  def step(params, stats, opt_state, key, x, y):
    def loss_fn(params):
      (logits, _), updates = model.apply(
          {"params": params, "batch_stats": stats}, x, train=True,
          rngs={"dropout": key}, mutable=["batch_stats"])
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      return loss, updates.get("batch_stats", {})

    (_, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), stats, opt_state

  conv_lowering.set_cpu_conv(mode)
  try:
    jitted = jax.jit(step, donate_argnums=(0, 1, 2),
                     compiler_options=conv_lowering.compiler_options()).lower(
        params, stats, tx.init(params), jax.random.key(1), x, y).compile()
  finally:
    conv_lowering.set_cpu_conv(None)
  state = [params, stats, tx.init(params)]
  key = jax.random.key(1)

  def run():
    state[:] = jitted(*state, key, x, y)  # the batch as an argument, as in training
    jax.block_until_ready(state)

  return run


def torch_runner(name: str, batch: int) -> Callable[[], None]:
  """A closure running one eager PyTorch train step (NCHW)."""
  _, _, (h, w, c), build = MODELS[name]
  torch.manual_seed(0)
  net = build().train()
  opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True)
  x = torch.randn(batch, c, h, w)
  y = torch.randint(0, NUM_CLASSES, (batch,))

  def run():
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(net(x), y).backward()
    opt.step()

  return run


def time_runners(runners: dict, steps: int, repeats: int) -> dict:
  """Median seconds per step of each runner; warm-up excluded, interleaved.

  Each repeat of a runner starts with one untimed step: the runners before it
  freed their buffers back to the OS, and the first step after them pays to
  page its own back in (MobileNet-v1 at 128×128 after XLA's native-conv
  runner: 6.9 s against 3.3 s), which training, repeating one step, never does.
  """
  for run in runners.values():
    run(), run()
  times = {name: [] for name in runners}
  for _ in range(repeats):
    for name, run in runners.items():
      run()
      start = time.perf_counter()
      for _ in range(steps):
        run()
      times[name].append((time.perf_counter() - start) / steps)
  return {name: float(np.median(t)) for name, t in times.items()}


# ------------------------------------------------------------ per-layer table
def conv_layers(name: str, batch: int) -> list[dict]:
  """Distinct conv layers of a cvx model with their input shape and count."""
  model_name, kwargs, shape, _ = MODELS[name]
  model = models.create(model_name, num_classes=NUM_CLASSES, **kwargs)
  found = {}

  def record(next_fun, args, kwargs_, context):
    module = context.module
    if isinstance(module, nn.Conv) and context.method_name == "__call__":
      x_shape = (batch, *args[0].shape[1:])
      k = tuple(module.kernel_size)
      strides = _pair(module.strides)
      dilation = _pair(module.kernel_dilation)
      pads = _pads(module.padding, x_shape[1:3], k, strides, dilation)
      key = (x_shape, k, x_shape[3] // module.feature_group_count, module.features,
             strides, pads, dilation, module.feature_group_count)
      found[key] = found.get(key, 0) + 1
    return next_fun(*args, **kwargs_)

  x = jnp.zeros((1, *shape))
  with nn.intercept_methods(record):
    jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  keys = ("x_shape", "kernel", "cin_group", "cout", "strides", "pads", "dilation",
          "groups")
  return [dict(zip(keys, k), count=n) for k, n in found.items()]


def _pair(v):
  return (v, v) if isinstance(v, int) else tuple(v) if v is not None else (1, 1)


def _pads(padding, hw, kernel, strides, dilation):
  if isinstance(padding, str):
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    return tuple(lax.padtype_to_pads(hw, eff, strides, padding))
  if isinstance(padding, int):
    return ((padding, padding),) * 2
  return tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)


# Calls timed per layer pass: single sub-millisecond calls swing with bursts
# of host load, so the median is taken over enough calls to stay clear of them.
LAYER_REPEATS = 21


def _median_time(fn, *args, repeats=LAYER_REPEATS):
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def jax_layer_times(layer: dict, conv, options=None) -> tuple[float, float, float]:
  """Seconds for forward, dX and dW of ``conv`` (lax signature) on ``layer``,
  jitted with XLA compiler ``options``."""
  n, h, w, c = layer["x_shape"]
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((n, h, w, c)), jnp.float32)
  k = jnp.asarray(rng.standard_normal((*layer["kernel"], layer["cin_group"],
                                       layer["cout"])), jnp.float32)

  def f(x, k):
    return conv(x, k, layer["strides"], layer["pads"], rhs_dilation=layer["dilation"],
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                feature_group_count=layer["groups"])

  g = jnp.ones(jax.eval_shape(f, x, k).shape)
  jit = functools.partial(jax.jit, compiler_options=options)
  fwd = jit(f)
  dx = jit(lambda x, k, g: jax.vjp(lambda x: f(x, k), x)[1](g)[0])
  dw = jit(lambda x, k, g: jax.vjp(lambda k: f(x, k), k)[1](g)[0])
  return (_median_time(fwd, x, k), _median_time(dx, x, k, g), _median_time(dw, x, k, g))


def torch_layer_times(layer: dict) -> tuple[float, float, float]:
  """Seconds for forward, dX and dW of the same conv in PyTorch (NCHW)."""
  n, h, w, c = layer["x_shape"]
  (top, bottom), (left, right) = layer["pads"]
  x = torch.randn(n, c, h, w)
  k = torch.randn(layer["cout"], layer["cin_group"], *layer["kernel"])

  def f(x, k):
    x = F.pad(x, (left, right, top, bottom)) if top != bottom or left != right else x
    pad = (top, left) if top == bottom and left == right else 0
    return F.conv2d(x, k, stride=layer["strides"], padding=pad,
                    dilation=layer["dilation"], groups=layer["groups"])

  with torch.no_grad():
    g = torch.ones_like(f(x, k))
  times = [_torch_time(lambda: f(x, k), no_grad=True)]
  for wrt in ("x", "k"):
    xs, ks = x.clone().requires_grad_(wrt == "x"), k.clone().requires_grad_(wrt == "k")
    y = f(xs, ks)
    target = xs if wrt == "x" else ks
    times.append(_torch_time(lambda y=y, target=target: torch.autograd.grad(
        y, target, g, retain_graph=True)))
  return tuple(times)


def _torch_time(fn, no_grad=False, repeats=LAYER_REPEATS):
  with torch.set_grad_enabled(not no_grad):
    fn()
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      fn()
      times.append(time.perf_counter() - start)
  return float(np.median(times))


def matmul_rates(size: int = 2048) -> tuple[float, float]:
  """fp32 GFLOP/s of a size×size matmul through XLA and through PyTorch."""
  a = jnp.asarray(np.random.default_rng(0).standard_normal((size, size)), jnp.float32)
  t = torch.randn(size, size)
  flops = 2 * size**3 / 1e9
  return (flops / _median_time(jax.jit(jnp.matmul), a, a),
          flops / _torch_time(lambda: t @ t, no_grad=True))


def stream_bandwidth(mib: int = 256) -> float:
  """GB/s read + written by XLA adding 1 to a float32 array of ``mib`` MiB in
  place (donated, so no fresh pages)."""
  add_one = jax.jit(lambda a: a + 1, donate_argnums=0)
  a = add_one(jnp.zeros(mib * 2**18, jnp.float32))
  times = []
  for _ in range(5):
    start = time.perf_counter()
    a = jax.block_until_ready(add_one(a))
    times.append(time.perf_counter() - start)
  return 2 * mib * 2**20 / float(np.median(times)) / 1e9


def _output_hw(layer: dict) -> tuple[int, int]:
  _, h, w, _ = layer["x_shape"]
  (kh, kw), (sh, sw), (dh, dw) = layer["kernel"], layer["strides"], layer["dilation"]
  (pt, pb), (pl, pr) = layer["pads"]
  return (h + pt + pb - (kh - 1) * dh - 1) // sh + 1, (w + pl + pr - (kw - 1) * dw - 1) // sw + 1


def layer_flops(layer: dict) -> float:
  ho, wo = _output_hw(layer)
  kh, kw = layer["kernel"]
  return 2.0 * layer["x_shape"][0] * ho * wo * kh * kw * layer["cin_group"] * layer["cout"]


def layer_bytes(layer: dict) -> float:
  """Bytes each pass must move at least: forward, dX and dW each read two of
  x, kernel and y (or their gradients) and write the third, once."""
  n, h, w, c = layer["x_shape"]
  ho, wo = _output_hw(layer)
  kh, kw = layer["kernel"]
  return 4.0 * (n * h * w * c + n * ho * wo * layer["cout"]
                + kh * kw * layer["cin_group"] * layer["cout"])


def matmul_ceiling(layer: dict, matmul_rate: float, bandwidth: float) -> float:
  """The largest fraction of ``matmul_rate`` (GFLOP/s) the layer's passes can
  reach: 1 where the multiplies bound them, less where moving their bytes at
  ``bandwidth`` (GB/s) takes longer (depthwise convs)."""
  compute = layer_flops(layer) / 1e9 / matmul_rate
  return compute / max(compute, layer_bytes(layer) / 1e9 / bandwidth)


# Idle OpenMP threads spin for a while after their last parallel region; on
# few cores another library's threads then share the cores with them (a
# batch-1 depthwise conv through cvx: 9 µs alone, 24–89 µs right after
# PyTorch's steps; benchmarks/RESULTS.md). The layer table times the JAX
# convs of all layers, then PyTorch's, each after this pause.
SETTLE_SECONDS = 1.0


def print_layer_table(name: str, batch: int) -> None:
  """Markdown table: GFLOP/s of fwd/dX/dW per distinct conv layer.

  "% matmul" is cvx's rate over all three passes against the matmul rate;
  "% roofline" its time against the least time the three passes could take:
  each at the matmul rate or moving its bytes at the stream bandwidth,
  whichever is slower; "ceiling" the % matmul that least time means (below
  100% for depthwise convs, bound by memory, not multiplies). A last line
  counts the layers under 50% of the matmul rate, and those whose ceiling
  is under it too.
  """
  mm_xla, mm_torch = matmul_rates()
  bandwidth = stream_bandwidth()
  print(f"\n{name}, batch {batch}: matmul 2048² fp32 = {mm_xla:.0f} GFLOP/s (XLA), "
        f"{mm_torch:.0f} GFLOP/s (torch); stream {bandwidth:.1f} GB/s (XLA)\n")
  print("| layer (in → out, k/s, groups) | × | cvx (oneDNN) fwd / dX / dW "
        "| matmul lowering | XLA | torch | cvx all, % matmul | % roofline | ceiling |")
  print("|---|---|---|---|---|---|---|---|---|")
  below, capped = 0, 0
  layers = conv_layers(name, batch)
  time.sleep(SETTLE_SECONDS)
  jax_times = [(*(_lowering_times(layer, mode) for mode in ("onednn", "matmul")),
                jax_layer_times(layer, lax.conv_general_dilated)) for layer in layers]
  time.sleep(SETTLE_SECONDS)
  torch_times = [torch_layer_times(layer) for layer in layers]
  for layer, (cvx_t, matmul_t, xla_t), torch_t in zip(layers, jax_times, torch_times):
    flops = layer_flops(layer) / 1e9
    rates = [" / ".join(f"{flops / t:.0f}" for t in ts)
             for ts in (cvx_t, matmul_t, xla_t, torch_t)]
    total = 3 * flops / sum(cvx_t)
    ceiling = matmul_ceiling(layer, mm_xla, bandwidth)
    bound = 3 * flops / mm_xla / ceiling
    below += total < mm_xla / 2
    capped += total < mm_xla / 2 and ceiling < 0.5
    n, h, w, c = layer["x_shape"]
    desc = (f"{h}×{w}×{c} → {layer['cout']}, {layer['kernel'][0]}×{layer['kernel'][1]}"
            f"/{layer['strides'][0]}, g{layer['groups']}")
    print(f"| {desc} | {layer['count']} | {' | '.join(rates)} "
          f"| {total:.0f} ({100 * total / mm_xla:.0f}%) | {100 * bound / sum(cvx_t):.0f}% "
          f"| {100 * ceiling:.0f}% |")
  print(f"\n{below} layers under 50% of the matmul rate; {capped} of them with a ceiling "
        "under 50% (memory-bound: no implementation reaches it on this machine)")


def _lowering_times(layer: dict, mode: str) -> tuple[float, float, float]:
  conv_lowering.set_cpu_conv(mode)
  try:
    return jax_layer_times(layer, conv_lowering.conv_general_dilated,
                           conv_lowering.compiler_options())
  finally:
    conv_lowering.set_cpu_conv(None)


# ---------------------------------------------------------------------- main
def benchmark(name: str, batch: int) -> float:
  """Prints images/s of the runners; returns the cvx/torch ratio (or nan)."""
  runners = {"cvx": cvx_runner(name, batch, "onednn")}
  if _MATMUL.value:
    runners["cvx-matmul"] = cvx_runner(name, batch, "matmul")
  if _NATIVE.value:
    runners["cvx-xla"] = cvx_runner(name, batch, "xla")
  if _VS.value == "torch":
    runners["torch"] = torch_runner(name, batch)
  seconds = time_runners(runners, _STEPS.value, _REPEATS.value)
  rates = {r: batch / s for r, s in seconds.items()}
  print(f"{name} (batch {batch}): " + ", ".join(f"{r} {v:.1f} images/s"
                                                for r, v in rates.items()))
  return rates["cvx"] / rates["torch"] if "torch" in rates else float("nan")


def main(argv):
  del argv
  torch.set_num_threads(THREADS)
  names = list(MODELS) if _MODEL.value == "all" else [_MODEL.value]
  for name in names:
    if name not in MODELS:
      raise ValueError(f"--model must be 'all' or one of {list(MODELS)}, got {name!r}")
  print(f"JAX {jax.__version__} ({jax.default_backend()}), PyTorch {torch.__version__}, "
        f"{THREADS} threads; "
        f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset)')}")
  ratios = {}
  for name in names:
    ratios[name] = benchmark(name, _BATCH.value)
    if _LAYERS.value:
      print_layer_table(name, _BATCH.value)
  summary = ", ".join(f"{n} {r:.2f}×" for n, r in ratios.items())
  print(f"cvx/torch images/s: {summary}")


if __name__ == "__main__":
  app.run(main)
