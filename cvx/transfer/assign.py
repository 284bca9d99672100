"""Shape-checked assignment of named source arrays to every leaf of cvx variables.

A converter names, for each cvx leaf path (collection, *modules, leaf), the
source key that holds it and how to bring the array into cvx's layout. Every
leaf must be found and fit, and every source array must be used: anything else
is a ``ValueError`` naming the first mismatching layer (in source order) with
both shapes and the missing/unexpected keys, never a silent random
initialisation.
"""
import os
import re
from typing import Callable, Mapping

import flax
import jax
import jax.numpy as jnp
import numpy as np

Path = tuple[str, ...]
_SHOWN = 8  # keys listed per category in error messages


def target_shapes(model, size: int) -> dict:
  """``{'params', 'batch_stats'}`` shapes of ``model`` (input 1×size×size×3)."""
  x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
  return {k: flax.core.unfreeze(v) for k, v in variables.items()
          if k in ("params", "batch_stats")}


def _natural(key: str):
  """Sort key that orders 'layer2' before 'layer10'."""
  return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", key)]


def _listing(keys) -> str:
  keys = list(keys)
  more = f", … ({len(keys)} in all)" if len(keys) > _SHOWN else ""
  return ", ".join(repr(k) for k in keys[:_SHOWN]) + more


def assign(shapes: dict, source: Mapping[str, np.ndarray],
           key_of: Callable[[Path], str],
           transform: Callable[[Path, np.ndarray], np.ndarray],
           what: str, ignore: Callable[[str], bool] = lambda key: False) -> dict:
  """Builds cvx variables (tree like ``shapes``) from ``source``.

  Args:
    shapes: tree of arrays or ShapeDtypeStructs, e.g. :func:`target_shapes`.
    source: flat mapping from source keys to arrays (source layout).
    key_of: cvx leaf path → source key.
    transform: (cvx path, source array) → array in cvx layout; may raise
      ``ValueError`` when the array cannot be brought into it.
    what: names the source in error messages, e.g. "torchvision 'resnet18'".
    ignore: source keys that are allowed to stay unused.

  Returns:
    A tree like ``shapes`` of float32 ``jax.Array``s.
  """
  flat = flax.traverse_util.flatten_dict(shapes)
  out, used, missing, mismatches = {}, set(), [], {}
  for path, shape in flat.items():
    key = key_of(path)
    if key not in source:
      missing.append(key)
      continue
    used.add(key)
    array = np.asarray(source[key])
    try:
      converted = transform(path, array)
    except ValueError:
      converted = None
    if converted is not None and converted.shape == tuple(shape.shape):
      out[path] = jnp.asarray(converted, jnp.float32)
      continue
    as_cvx = "" if converted is None else f" ({converted.shape} in cvx layout)"
    mismatches[key] = (f"first mismatching layer {key!r} has shape {array.shape}{as_cvx}, "
                       f"cvx {'/'.join(path)!r} needs {tuple(shape.shape)}")
  first = next((mismatches[k] for k in source if k in mismatches), None)  # source order
  unexpected = [k for k in source if k not in used and not ignore(k)]
  if first or missing or unexpected:
    problems = [first] if first else []
    if missing:
      problems.append(f"missing keys: {_listing(sorted(missing, key=_natural))}")
    if unexpected:
      problems.append(f"unexpected keys: {_listing(unexpected)}")
    raise ValueError(f"{what} weights do not fit: " + "; ".join(problems))
  return flax.traverse_util.unflatten_dict(out)


def require_file(path, source: str, example: str) -> str:
  """``path`` as a string if it is a file, else an error saying how to get weights."""
  path = str(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f"{source} weights {path!r} are not a file: pretrained weights must be downloaded "
        f"by the user first (there is no network access here), e.g. {example}, and "
        "passed as a path")
  return path
