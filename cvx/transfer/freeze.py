"""Freezing policies and per-layer learning rates for fine-tuning.

A *module* here is one that owns variables (a Conv, Dense or BatchNorm); it is
named by its path, e.g. ``stage1_block1/conv1/bn``. The *forward order* is the
order in which the model first calls these modules, recorded with
``flax.linen.intercept_methods`` while tracing ``model.init`` (the params dict
itself is sorted by name, so it cannot give the order). A *layer* is a module
with a ``kernel`` (conv or dense) together with the kernel-less modules called
after it up to the next one (its BatchNorm). The *head* is every module with
``head`` in its path.

``transfer.freeze`` policies: ``'none'``; ``'backbone'`` (everything but the
head: a feature extractor); a fraction ``'0.5'`` (the first ⌊x·L⌋ of the L
layers, head included in L, 0 ≤ x < 1); or comma-separated globs
(``fnmatch``) matched against each module path and its prefixes
(``'conv1,stage1_*'``), each of which must match something.

Frozen parameters get a zero update from ``optax.set_to_zero`` under
``optax.multi_transform``, so their optimizer state is never created and
weight decay cannot move them. Frozen BatchNorm layers run in inference mode:
the train step applies the model under :func:`frozen_batch_norm`, an
interceptor that evaluates each frozen BatchNorm as a clone with
``use_running_average=True`` on its own variables, so it normalises with its
running statistics and never writes them (models need no flag).
"""
import contextlib
import dataclasses
import fnmatch
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

Path = tuple[str, ...]
HEAD = "head"


def name(path: Path) -> str:
  return "/".join(path)


def is_head(path: Path) -> bool:
  """True for variables and modules with a ``head`` component in their path."""
  return HEAD in path


def forward_modules(model: nn.Module, image_shape: tuple[int, ...]):
  """(paths of the modules owning variables in the order the model calls
  them, the abstract variables) from one traced ``model.init``."""
  calls = []

  def record(next_fun, args, kwargs, context):
    calls.append(context.module.path)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    variables = jax.eval_shape(lambda: model.init(
        {"params": jax.random.key(0), "dropout": jax.random.key(1)},
        jnp.zeros((1, *image_shape)), train=False))
  owners = {path[:-1] for collection in ("params", "batch_stats")
            for path in traverse_util.flatten_dict(variables.get(collection, {}))}
  return list(dict.fromkeys(p for p in calls if p in owners)), variables


def group_layers(modules: list[Path], params) -> list[list[Path]]:
  """Modules → layers: each kernel-owning module starts one (see module doc)."""
  has_kernel = {path[:-1] for path in traverse_util.flatten_dict(params)
                if path[-1] == "kernel"}
  layers = []
  for module in modules:
    if module in has_kernel or not layers:
      layers.append([])
    layers[-1].append(module)
  return layers


@dataclasses.dataclass(frozen=True)
class Plan:
  """What a fine-tuning run trains: frozen modules and per-module lr scales."""
  frozen: frozenset[Path] = frozenset()
  lr_scales: dict[Path, float] = dataclasses.field(default_factory=dict)
  layers: tuple[tuple[Path, ...], ...] = ()

  def labels(self, params):
    """``'frozen'`` / ``'train'`` per leaf, for ``optax.multi_transform``."""
    return _per_leaf(params, lambda m: "frozen" if m in self.frozen else "train")

  def scales(self, params):
    """The learning-rate multiplier of each leaf (1 where not listed)."""
    return _per_leaf(params, lambda m: self.lr_scales.get(m, 1.0))

  def count_trainable(self, params) -> int:
    """Parameters not frozen."""
    return sum(int(np.size(p)) for p, label in zip(
        jax.tree.leaves(params), jax.tree.leaves(self.labels(params)))
               if label == "train")

  @property
  def scaled(self) -> bool:
    return any(s != 1.0 for s in self.lr_scales.values())


def _per_leaf(params, fn):
  return jax.tree_util.tree_map_with_path(
      lambda path, _: fn(tuple(k.key for k in path[:-1])), params)


def make_plan(model: nn.Module, image_shape: tuple[int, ...], freeze: str = "none",
              backbone_lr_scale: float = 1.0, layer_decay: float = 1.0) -> Plan:
  """The :class:`Plan` of a ``config.transfer`` on ``model``.

  Raises ValueError for an unknown or empty policy, a fraction outside
  [0, 1), a glob that matches no module, a policy that freezes everything,
  ``backbone_lr_scale`` ≤ 0 or ``layer_decay`` outside (0, 1].
  """
  if not isinstance(freeze, str) or not freeze.strip():
    raise ValueError(f"transfer.freeze={freeze!r}: expected 'none', 'backbone', a "
                     f"fraction such as '0.5', or layer-name globs such as 'conv1,stage1_*'")
  if not backbone_lr_scale > 0:
    raise ValueError(f"transfer.backbone_lr_scale={backbone_lr_scale!r} must be > 0 "
                     f"(freeze layers with transfer.freeze instead)")
  if not 0 < layer_decay <= 1:
    raise ValueError(f"transfer.layer_decay={layer_decay!r} must be in (0, 1]")
  if freeze == "none" and backbone_lr_scale == 1 and layer_decay == 1:
    return Plan()
  modules, variables = forward_modules(model, image_shape)
  layers = group_layers(modules, variables["params"])
  frozen = frozenset(_frozen_modules(freeze, modules, layers))
  if frozen >= set(modules):
    raise ValueError(f"transfer.freeze={freeze!r} freezes every layer; nothing "
                     f"would train")
  scales = {}
  for depth, layer in enumerate(reversed(layers)):
    for module in layer:
      base = 1.0 if is_head(module) else backbone_lr_scale
      scales[module] = base * layer_decay**depth
  return Plan(frozen, scales, tuple(map(tuple, layers)))


def _frozen_modules(freeze: str, modules: list[Path],
                    layers: list[list[Path]]) -> list[Path]:
  if freeze == "none":
    return []
  if freeze == "backbone":
    return [m for m in modules if not is_head(m)]
  try:
    fraction = float(freeze)
  except ValueError:
    return _matching(freeze, modules)
  if not 0 <= fraction < 1:
    raise ValueError(f"transfer.freeze={freeze!r}: a fraction of the layers must "
                     f"be in [0, 1)")
  count = math.floor(fraction * len(layers) + 1e-9)
  return [m for layer in layers[:count] for m in layer]


def _matching(freeze: str, modules: list[Path]) -> list[Path]:
  """Modules whose path, or a prefix of it, matches one of the globs."""
  patterns = [p.strip() for p in freeze.split(",")]
  matched = []
  for pattern in patterns:
    hits = [m for m in modules
            if any(fnmatch.fnmatchcase(name(m[:i]), pattern)
                   for i in range(1, len(m) + 1))]
    if not pattern or not hits:
      top = sorted({m[0] for m in modules})
      raise ValueError(f"transfer.freeze: pattern {pattern!r} matches no layer; "
                       f"top-level layers: {', '.join(top)}")
    matched += hits
  return matched


@contextlib.contextmanager
def frozen_batch_norm(frozen: frozenset[Path]):
  """Within this context, BatchNorm modules at ``frozen`` paths use their running
  statistics (inference mode) and leave them unchanged, even under
  ``train=True``."""

  def intercept(next_fun, args, kwargs, context):
    module = context.module
    if (isinstance(module, nn.BatchNorm) and context.method_name == "__call__"
        and module.path in frozen):
      inference = module.clone(parent=None, use_running_average=True)
      return inference.apply(module.variables, *args, **kwargs)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(intercept):
    yield
