"""Metric writers: ``metrics.jsonl`` and TensorBoard events (process 0 only).

Each ``write`` appends one JSON object ``{"step", "split", <metric>: value}``
to ``WORKDIR/metrics.jsonl`` and logs ``<split>/<metric>`` scalars to
TensorBoard event files under ``WORKDIR/tensorboard``.
"""
import json
import os

import jax
import numpy as np
from tensorboardX import SummaryWriter


class MetricWriter:

  def __init__(self, workdir: str):
    self.enabled = jax.process_index() == 0
    if self.enabled:
      self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, split: str, metrics: dict) -> None:
    if not self.enabled:
      return
    scalars = {k: float(v) for k, v in metrics.items()}
    self._jsonl.write(json.dumps({"step": int(step), "split": split, **scalars}) + "\n")
    self._jsonl.flush()
    for name, value in scalars.items():
      self._tb.add_scalar(f"{split}/{name}", value, int(step))
    self._tb.flush()

  def write_image(self, step: int, tag: str, image: np.ndarray) -> None:
    """``image`` H×W×3 uint8."""
    if self.enabled:
      self._tb.add_image(tag, image, int(step), dataformats="HWC")
      self._tb.flush()

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tb.close()
