"""Model summary without compute: shapes, parameters, multiply-adds, receptive fields.

:func:`summary` traces the model under ``jax.eval_shape`` (shapes only, so a
224×224 ResNet-152 is instant) and records every submodule call through
``flax.linen.intercept_methods``. Conventions:

* Shapes and multiply-adds are per image (the batch dimension is dropped).
* Parameters are the ``params`` collection; BatchNorm running statistics
  (``batch_stats``) and other collections are reported apart, as state
  (``perturbations``, zero probes for explanations, are dropped).
* Multiply-adds (MACs) count convolutions and dense layers only: output
  positions × kernel size, i.e. out_h·out_w·k_h·k_w·(C_in/groups)·C_out for a
  conv and in·out for a dense layer. Biases, normalization, activations and
  pooling are free. This is the convention of the published numbers
  (MobileNet v1 569 M, ResNet-50 4.09 G, VGG-16 15.47 G).
* Receptive field and jump (effective stride) are per spatial axis, in input
  pixels, tracked per tensor: a layer's input field is that of the array it
  receives, looked up by identity. Arrays made between modules by plain
  functions (``nn.relu``, ``nn.max_pool``, ``jnp.mean``) are unknown; they
  take the field of the latest module output of the same spatial size (an
  activation, a concatenation), else of the latest output resampled by
  :func:`_resampled` (a functional pool). A block's field is the widest of its
  input and of its sublayers whose output has the block's spatial size
  (branches, residual adds, Inception concatenation); a squeeze-excitation
  gate, 1×1 by then, does not count. Global pooling, flattening and a dense
  layer on a flat vector see the whole input ('all').
"""
import dataclasses
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cvx.explain import receptive_field
from cvx.layers import pooling


@dataclasses.dataclass(frozen=True)
class Field:
  """Receptive field and jump per spatial axis; ``None`` for the whole input."""
  rf: tuple[int, ...] | None
  jump: tuple[int, ...] | None

  @property
  def whole(self) -> bool:
    return self.rf is None

  def then(self, kernel, stride, dilation) -> "Field":
    """The field after a window ``kernel`` with ``stride`` and ``dilation``."""
    if self.whole:
      return self
    steps = [receptive_field.step(*args)
             for args in zip(self.rf, self.jump, kernel, stride, dilation)]
    rf, jump = zip(*steps)
    return Field(rf, jump)


WHOLE = Field(None, None)


@dataclasses.dataclass(frozen=True)
class Layer:
  """One module call; shapes per image. Blocks total their sublayers' params and MACs."""
  name: str
  type: str
  depth: int
  leaf: bool
  detail: str
  input_shape: tuple[int, ...] | None
  output_shape: tuple[int, ...]
  params: int
  macs: int
  field: Field


@dataclasses.dataclass(frozen=True)
class Summary:
  """Per-layer rows in forward order (blocks before their sublayers), totals."""
  model: str
  input_shape: tuple[int, ...]
  output_shape: tuple[int, ...]
  layers: list[Layer]
  params: int
  state: int
  macs: int

  def __getitem__(self, name: str) -> Layer:
    """The first call of the layer named ``name`` (e.g. ``'layer1/block0/conv1'``)."""
    for layer in self.layers:
      if layer.name == name:
        return layer
    raise KeyError(f"no layer {name!r} in {self.model}; "
                   f"layers: {', '.join(l.name for l in self.layers)}")

  def totals(self) -> str:
    """One line: parameters, state (e.g. BatchNorm statistics), multiply-adds."""
    state = f" (+{self.state:,} in state, e.g. BatchNorm statistics)" if self.state else ""
    return (f"{self.model}, input {_shape(self.input_shape)} → "
            f"{_shape(self.output_shape)}: {self.params:,} parameters{state}, "
            f"{self.macs:,} multiply-adds ({_human(self.macs)}) per image")

  def __str__(self) -> str:
    rows = [[" " * 2 * l.depth + l.name, l.type, l.detail, *_cells(l)]
            for l in self.layers]
    header = ["layer", "type", "", "output", "params", "MACs", "RF", "jump"]
    widths = [max(map(len, col)) for col in zip(header, *rows)]
    right = {4, 5, 6, 7}
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w)
                       for i, (c, w) in enumerate(zip(row, widths))).rstrip()
             for row in [header, *rows]]
    return "\n".join([*lines, "", self.totals()])

  def to_markdown(self) -> str:
    """A Markdown table; block rows in bold, leaf layers in code."""
    lines = ["| layer | type | output | params | MACs | RF | jump |",
             "|---|---|---|--:|--:|--:|--:|"]
    for l in self.layers:
      name = f"`{l.name}`" if l.leaf else f"**{l.name}**"
      kind = f"{l.type} {l.detail}".strip()
      lines.append("| " + " | ".join([name, kind, *_cells(l)]) + " |")
    return "\n".join([*lines, "", self.totals()])


def count_params(params) -> int:
  """Number of scalars in a pytree of arrays (or ``jax.ShapeDtypeStruct``)."""
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params))


def summary(model: nn.Module, input_shape: Sequence[int], **call_kwargs) -> Summary:
  """Traces ``model`` on one image of ``input_shape`` (e.g. (224, 224, 3)).

  ``call_kwargs`` go to ``model.__call__`` (``train`` defaults to the model's).
  Raises ValueError naming the layer that fails on, or shrinks to nothing,
  an input the model cannot take.
  """
  shape = tuple(input_shape)
  if not shape or not all(isinstance(n, int) and n > 0 for n in shape):
    raise ValueError("input_shape must be positive ints, e.g. (224, 224, 3); "
                     f"got {input_shape!r}")
  tracer = _Tracer()
  x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
  rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}

  def init(x):
    tracer.start(x)
    return model.init(rngs, x, **call_kwargs)

  def forward(variables, x):
    tracer.start(x)
    state = [k for k in variables if k != "params"]
    return model.apply(variables, x, rngs=rngs, mutable=state, **call_kwargs)

  try:
    with nn.intercept_methods(tracer):
      variables = jax.eval_shape(init, x)
      # Explanation probes would make every tapped feature a new array.
      variables.pop("perturbations", None)
      jax.eval_shape(forward, variables, x)  # the calls without those probes
  except _LayerError as e:
    raise ValueError(f"{type(model).__name__} on a {_shape(shape)} input: {e}") from e
  params = variables.get("params", {})
  root = tracer.calls[0]
  return Summary(
      model=type(model).__name__, input_shape=shape, output_shape=root.output_shape[1:],
      layers=[_layer(call, params) for call in tracer.calls[1:]],
      params=count_params(params),
      state=count_params({k: v for k, v in variables.items() if k != "params"}),
      macs=_macs(root, params))


class _LayerError(ValueError):
  """Raised once, by the innermost module that failed; outer calls pass it on."""


@dataclasses.dataclass(eq=False)
class _Call:
  module: nn.Module
  input_shape: tuple[int, ...] | None
  field: Field
  children: list["_Call"] = dataclasses.field(default_factory=list)
  output_shape: tuple[int, ...] = ()


class _Tracer:
  """Method interceptor: records module calls and the field of each array."""

  def start(self, x):
    self.calls, self.stack = [], []
    self.fields = {}  # id → (array, Field); holding the array keeps its id unique.
    self.history = []  # (array, Field) in the order they were made
    self._track(x, Field((1,) * (x.ndim - 2), (1,) * (x.ndim - 2)))

  def _track(self, array, field):
    self.fields[id(array)] = (array, field)
    self.history.append((array, field))

  def _input_field(self, arrays) -> Field:
    """The widest known field; for an unknown array, see the module docstring."""
    known = [self.fields[id(a)][1] for a in arrays if id(a) in self.fields]
    if known:
      return _widest(known)
    if not arrays:
      return self.history[-1][1]
    for array, field in reversed(self.history):
      if array.shape[1:-1] == arrays[0].shape[1:-1]:
        return field
    last, field = self.history[-1]
    return _resampled(field, last.shape, arrays[0].shape)

  def __call__(self, next_fun, args, kwargs, context):
    module = context.module
    if context.method_name == "setup" or (self.stack and self.stack[-1].module is module):
      return next_fun(*args, **kwargs)  # setup, or a module calling its own helper
    arrays = _arrays((args, kwargs))
    call = _Call(module, arrays[0].shape if arrays else None, self._input_field(arrays))
    if self.stack:
      self.stack[-1].children.append(call)
    self.calls.append(call)
    self.stack.append(call)
    try:
      y = next_fun(*args, **kwargs)
    except _LayerError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      raise _LayerError(f"{_where(call)} failed on {_its_input(call)}: {e}") from e
    finally:
      self.stack.pop()
    outputs = _arrays(y)
    if not outputs:
      return y
    call.output_shape = outputs[0].shape
    if any(n <= 0 for a in outputs for n in a.shape):
      raise _LayerError(f"{_where(call)} gives an empty output "
                        f"{_shape(call.output_shape[1:])} from {_its_input(call)}: "
                        "the input is too small")
    call.field = self._output_field(call)
    self._track(outputs[0], call.field)
    for a in outputs[1:]:
      if id(a) not in self.fields:
        self._track(a, call.field)
    return y

  def _output_field(self, call) -> Field:
    """Leaf: its own rule. Block: the widest of its input and sublayers at its size."""
    if not call.children:
      return _leaf_field(call.module, call.field, call.input_shape, call.output_shape)
    size = call.output_shape[1:-1]
    same = [c.field for c in call.children if c.output_shape[1:-1] == size]
    if call.input_shape is not None and call.input_shape[1:-1] == size:
      same.append(call.field)  # identity shortcuts and gates
    if same:
      return _widest(same)
    last = call.children[-1]
    return _resampled(last.field, last.output_shape, call.output_shape)


def _arrays(tree) -> list:
  return [a for a in jax.tree.leaves(tree) if isinstance(a, jax.Array)]


def _where(call) -> str:
  name = "/".join(call.module.path) or "(model)"
  return f"layer {name!r} ({type(call.module).__name__})"


def _its_input(call) -> str:
  if call.input_shape is None:
    return "no array input"
  return f"its {_shape(call.input_shape[1:])} input"


def _widest(fields: list[Field]) -> Field:
  if any(f.whole for f in fields):
    return WHOLE
  return Field(tuple(map(max, zip(*(f.rf for f in fields)))),
               tuple(map(max, zip(*(f.jump for f in fields)))))


def _resampled(field: Field, before, after) -> Field:
  """The field through an unseen op from shape ``before`` to ``after``.

  Same spatial size: unchanged. Flattened or reduced to 1×1: the whole input.
  Shrunk by a factor s (rounded): an s×s pool with stride s (LeNet's
  ``nn.max_pool``), exact for the usual non-overlapping pools.
  """
  if len(after) < 3 or len(before) != len(after):
    return WHOLE
  before, after = before[1:-1], after[1:-1]
  if before == after:
    return field
  if all(n == 1 for n in after):
    return WHOLE
  s = tuple(max(round(b / a), 1) for b, a in zip(before, after))
  return field.then(s, s, (1,) * len(s))


def _axes(value, n: int) -> tuple[int, ...]:
  if value is None:
    return (1,) * n
  return (value,) * n if isinstance(value, int) else tuple(value)


def _leaf_field(module, field: Field, x_shape, y_shape) -> Field:
  n = len(y_shape) - 2
  if isinstance(module, nn.Conv):
    return field.then(_axes(module.kernel_size, n), _axes(module.strides, n),
                      _axes(module.kernel_dilation, n))
  if isinstance(module, (pooling.MaxPool, pooling.AvgPool)):
    return field.then(_axes(module.window, n), _axes(module.strides or module.window, n),
                      (1,) * n)
  if isinstance(module, pooling.AdaptiveAvgPool) and any(m > 1 for m in y_shape[1:-1]):
    sizes = list(zip(x_shape[1:-1], y_shape[1:-1]))
    kernel = [max(b - a for a, b in pooling.AdaptiveAvgPool._bins(*s)) for s in sizes]
    return field.then(kernel, [max(size // bins, 1) for size, bins in sizes], (1,) * n)
  return _resampled(field, x_shape, y_shape)


def _kernel(call, params):
  """The ``kernel`` parameter of a conv or dense call, else None."""
  if not isinstance(call.module, (nn.Conv, nn.Dense)):
    return None
  return _subtree(params, call.module.path).get("kernel")


def _subtree(params, path) -> Any:
  for name in path:
    params = params.get(name, {})
  return params


def _macs(call, params) -> int:
  if call.children:
    return sum(_macs(c, params) for c in call.children)
  kernel = _kernel(call, params)
  if kernel is None:
    return 0
  return math.prod(call.output_shape[1:-1]) * math.prod(kernel.shape)


def _detail(call) -> str:
  """Window and stride of convs and pools, width of dense layers."""
  module, n = call.module, len(call.output_shape) - 2
  if isinstance(module, nn.Dense):
    return f"{call.input_shape[-1]}→{module.features}"
  if isinstance(module, nn.Conv):
    kernel, stride = _axes(module.kernel_size, n), _axes(module.strides, n)
    text = f"{_shape(kernel)}/{_axis_text(stride)}"
    dilation, groups = _axes(module.kernel_dilation, n), module.feature_group_count
    if any(d > 1 for d in dilation):
      text += f" dil {_axis_text(dilation)}"
    if groups > 1:
      text += " depthwise" if groups == call.input_shape[-1] else f" {groups} groups"
    return text
  if isinstance(module, (pooling.MaxPool, pooling.AvgPool)):
    return f"{module.window}×{module.window}/{module.strides or module.window}"
  return ""


def _layer(call, params) -> Layer:
  return Layer(
      name="/".join(call.module.path), type=type(call.module).__name__,
      depth=len(call.module.path) - 1, leaf=not call.children,
      detail=_detail(call), output_shape=call.output_shape[1:],
      input_shape=call.input_shape and call.input_shape[1:],
      params=count_params(_subtree(params, call.module.path)),
      macs=_macs(call, params), field=call.field)


def _shape(shape) -> str:
  return "×".join(map(str, shape))


def _human(n: int) -> str:
  for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
    if n >= size:
      return f"{n / size:.3g} {unit}"
  return str(n)


def _cells(layer: Layer) -> list[str]:
  """Output, params, MACs, RF, jump; an RF of the whole input reads 'all'."""
  f = layer.field
  rf, jump = ("all", "—") if f.whole else (_axis_text(f.rf), _axis_text(f.jump))
  return [_shape(layer.output_shape), f"{layer.params:,}", f"{layer.macs:,}", rf, jump]


def _axis_text(values) -> str:
  """``7`` when every axis agrees, ``1×7`` when they differ."""
  return str(values[0]) if len(set(values)) == 1 else _shape(values)
