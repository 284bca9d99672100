"""Pretrained variables for ``config.init_from``.

Two layouts are read. A converted model's directory (``python -m cvx.convert``):
``cvx_model.json`` (``model``, ``model_kwargs``, ``num_classes``, ``source``,
``preprocessing``) in the orbax checkpoint directory of ``{'params',
'batch_stats'}`` (:mod:`cvx.transfer.checkpoint`). A cvx workdir: the params
and batch_stats of its best (else newest) checkpoint.

Every model variable takes the checkpoint's value of the same path and shape.
Head variables (a ``head`` module in the path) that are absent or shaped
differently (another ``num_classes``), or all of them with ``reset_head`` (a
new task with as many classes), keep their fresh initialisation; any
other absent or differently shaped variable is an error. Checkpoint variables
the model lacks are ignored and counted.
"""
import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from flax import traverse_util

from cvx.transfer.checkpoint import SIDECAR
from cvx.transfer.freeze import is_head, name
from cvx.transfer.preprocessing import Preprocessing

COLLECTIONS = ("params", "batch_stats")


def locate(directory: str) -> tuple[str, dict]:
  """(orbax checkpoint path, model description) of a converted model or workdir
  (a workdir's description includes its config's ``data`` fields)."""
  info_path = os.path.join(directory, SIDECAR)
  if os.path.exists(info_path):
    with open(info_path) as f:
      return directory, json.load(f)
  for which in ("best", "latest"):
    root = os.path.join(directory, "checkpoints", which)
    steps = [int(d) for d in os.listdir(root) if d.isdigit()] if os.path.isdir(root) else []
    if steps:
      with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
      info = {"model": config["model"], "num_classes": config["num_classes"],
              "source": f"cvx workdir, {which} checkpoint at step {max(steps)}",
              "data": config["data"]}
      return os.path.join(root, str(max(steps)), "state"), info
  raise FileNotFoundError(
      f"init_from={directory!r} is neither a converted model ({SIDECAR} beside "
      f"an orbax checkpoint) nor a cvx workdir with checkpoints/best or checkpoints/latest")


def normalization(directory: str) -> dict:
  """config.data fields that feed the model what ``directory``'s weights were
  trained on: a converted model's recorded preprocessing as ``standardize``
  (mean, std, channel order), or a cvx workdir's own data fields."""
  _, info = locate(directory)
  if "preprocessing" in info:
    p = Preprocessing.from_json(info["preprocessing"])
    return {"normalize": "standardize", "mean": p.mean, "std": p.std,
            "channel_order": "BGR" if p.bgr else "RGB"}
  data = info["data"]
  return {"normalize": data["normalize"], "mean": data.get("mean"), "std": data.get("std"),
          "channel_order": data.get("channel_order", "RGB")}


def read(path: str) -> dict:
  """``{'params', 'batch_stats'}`` of an orbax checkpoint, as numpy arrays."""
  handler = ocp.PyTreeCheckpointHandler()  # Reads an item folder as it is.
  tree = handler.metadata(epath.Path(path)).tree
  item = {c: tree.get(c, {}) for c in COLLECTIONS}
  args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), item,
                      is_leaf=lambda m: hasattr(m, "shape"))
  restored = handler.restore(epath.Path(path), args=ocp.args.PyTreeRestore(
      item=item, restore_args=args, partial_restore=True))
  handler.close()
  return {c: restored.get(c) or {} for c in COLLECTIONS}


def merge(fresh: dict, loaded: dict,
          reset_head: bool = False) -> tuple[dict, dict[str, int]]:
  """(``fresh`` with the matching ``loaded`` values, counts of ``restored``,
  re-initialised ``head`` and ``ignored`` variables); see the module doc."""
  merged, problems = {}, []
  counts = {"restored": 0, "head": 0, "ignored": 0}
  for collection in COLLECTIONS:
    mine = traverse_util.flatten_dict(fresh.get(collection, {}))
    theirs = traverse_util.flatten_dict(loaded.get(collection, {}))
    values = {}
    for path, value in mine.items():
      got = theirs.get(path)
      if got is not None and got.shape == value.shape and not (
          reset_head and is_head(path)):
        values[path] = np.asarray(got, value.dtype)
        counts["restored"] += 1
      elif is_head(path):
        values[path] = value
        counts["head"] += 1
      else:
        problems.append(f"{collection}/{name(path)}: model {tuple(value.shape)}, "
                        f"checkpoint {'absent' if got is None else tuple(got.shape)}")
    counts["ignored"] += len(theirs.keys() - mine.keys())
    merged[collection] = traverse_util.unflatten_dict(values) if values else {}
  if problems:
    raise ValueError(f"init_from: {len(problems)} variables do not match the "
                     f"checkpoint: " + "; ".join(problems[:10]))
  return merged, counts


def load(directory: str, fresh: dict, model: str,
         reset_head: bool = False) -> tuple[dict, str]:
  """(``fresh`` variables initialised from ``directory``, a one-line report).

  Raises ValueError when the directory describes another model than ``model``
  or a non-head variable does not match.
  """
  path, info = locate(directory)
  if info.get("model", model) != model:
    raise ValueError(f"init_from={directory!r} holds a {info['model']!r} model but "
                     f"config.model is {model!r}")
  variables, counts = merge(fresh, read(path), reset_head)
  report = (f"Initialised from {directory} ({info.get('source', 'converted')}): "
            f"{counts['restored']} variables restored, {counts['head']} head "
            f"variables re-initialised, {counts['ignored']} checkpoint variables "
            f"not in the model ignored.")
  if info.get("preprocessing"):
    report += (f" Its inputs were preprocessed as {info['preprocessing']}; "
               f"config.data.normalize='init_from' applies that.")
  return variables, report
