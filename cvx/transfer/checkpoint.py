"""A converted model (name, options, imported variables) and its on-disk layout.

``save_converted(converted, DIR)`` writes

- ``DIR/``: an orbax checkpoint (``StandardCheckpointer``) of the PyTree
  ``{'params': ..., 'batch_stats': ...}`` (``batch_stats`` empty for models
  without BatchNorm, e.g. AlexNet, VGG);
- ``DIR/cvx_model.json``: ``{"model": name, "model_kwargs": {...},
  "num_classes": N, "source": "keras" | "torchvision", "preprocessing":
  {"mode", "mean", "std", "channel_order"}}`` (see :mod:`preprocessing`).

``models.create(model, num_classes=N, **model_kwargs)`` rebuilds the module
the variables belong to.
"""
import json
import os
from typing import NamedTuple

import flax.linen as nn
import orbax.checkpoint as ocp

from cvx import models
from cvx.transfer.preprocessing import Preprocessing

SIDECAR = "cvx_model.json"


class Converted(NamedTuple):
  """A cvx model description with weights imported from ``source``."""
  model_name: str
  model_kwargs: dict
  num_classes: int
  variables: dict
  source: str
  preprocessing: Preprocessing

  def model(self) -> nn.Module:
    return models.create(self.model_name, num_classes=self.num_classes, **self.model_kwargs)

  def logits(self, images, **apply_kwargs):
    """Eval-mode logits of raw images (uint8, or float in [0, 1]), preprocessed."""
    logits, _ = self.model().apply(self.variables, self.preprocessing(images), **apply_kwargs)
    return logits

  def metadata(self) -> dict:
    return {"model": self.model_name, "model_kwargs": self.model_kwargs,
            "num_classes": self.num_classes, "source": self.source,
            "preprocessing": self.preprocessing.to_json()}


def save_converted(converted: Converted, directory: str) -> None:
  """Writes the checkpoint and the JSON sidecar into a new (or empty) ``directory``."""
  directory = os.path.abspath(directory)
  if os.path.isdir(directory):
    if os.listdir(directory):
      raise ValueError(f"output directory {directory} exists and is not empty")
    os.rmdir(directory)  # orbax creates the checkpoint directory itself
  elif os.path.exists(directory):
    raise ValueError(f"output path {directory} exists and is not a directory")
  variables = {"params": converted.variables["params"],
               "batch_stats": converted.variables.get("batch_stats", {})}
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(directory, variables)
  with open(os.path.join(directory, SIDECAR), "w") as f:
    json.dump(converted.metadata(), f, indent=2)


def restore_converted(directory: str) -> Converted:
  """Reads what :func:`save_converted` wrote."""
  directory = os.path.abspath(directory)
  with open(os.path.join(directory, SIDECAR)) as f:
    meta = json.load(f)
  with ocp.StandardCheckpointer() as checkpointer:
    variables = checkpointer.restore(directory)
  kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["model_kwargs"].items()}
  return Converted(meta["model"], kwargs, meta["num_classes"], variables, meta["source"],
                   Preprocessing.from_json(meta["preprocessing"]))
