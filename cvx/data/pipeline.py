"""Batches from a random-access source, per process, as global ``jax.Array``s.

Train order is a pure function of ``(seed, step)``: epoch ``e`` visits a
permutation drawn from ``default_rng([seed, e])`` and step ``s`` takes global
rows ``[i·B, (i+1)·B)`` of it (remainder dropped). Process ``p`` of ``P`` reads
only its contiguous ``B/P`` rows, which land on its own devices. Resuming at
any step, or changing the number of devices or processes, leaves every global
batch unchanged.

Eval batches cover the split once in order; the last one is padded and its
``mask`` marks real examples, so each example counts exactly once.
"""
import queue
import threading
from typing import Callable, Iterator

import jax
import numpy as np

from cvx.data import workers as workers_lib
from cvx.data.sources import Source

Batch = dict[str, np.ndarray]


class Sampler:
  """Global indices of the training batch at each step."""

  def __init__(self, num_examples: int, global_batch_size: int, seed: int):
    if global_batch_size > num_examples:
      raise ValueError(f"batch_size={global_batch_size} exceeds the "
                       f"{num_examples} training examples")
    self.num_examples, self.batch_size, self.seed = (num_examples,
                                                     global_batch_size, seed)
    self.steps_per_epoch = num_examples // global_batch_size
    self._epoch, self._perm = -1, None

  def indices(self, step: int) -> np.ndarray:
    epoch, i = divmod(step, self.steps_per_epoch)
    if epoch != self._epoch:
      rng = np.random.default_rng([self.seed, epoch])
      self._epoch, self._perm = epoch, rng.permutation(self.num_examples)
    return self._perm[i * self.batch_size:(i + 1) * self.batch_size]


def process_rows(global_batch_size: int, index: int | None = None,
                 count: int | None = None, devices: int | None = None) -> slice:
  """Process ``index`` of ``count``'s contiguous share of a global batch.

  Defaults: this process, all processes and all devices of the JAX runtime.
  """
  index = jax.process_index() if index is None else index
  count = jax.process_count() if count is None else count
  devices = jax.device_count() if devices is None else devices
  if global_batch_size % devices:
    raise ValueError(f"batch size {global_batch_size} must be divisible by the "
                     f"{devices} devices")
  share = global_batch_size // count
  return slice(index * share, (index + 1) * share)


def train_batches(source: Source, sampler: Sampler, start_step: int,
                  num_steps: int, workers: int = 0) -> Iterator[Batch]:
  """Local training batches for steps ``start_step .. num_steps - 1``.

  ``workers`` > 0 decodes them in that many processes (same batches, same order).
  """
  rows = process_rows(sampler.batch_size)
  return workers_lib.read_in_order(
      source, (sampler.indices(step)[rows] for step in range(start_step, num_steps)),
      workers)


def eval_batches(source: Source, global_batch_size: int,
                 process: tuple[int, int] | None = None,
                 workers: int = 0) -> Iterator[Batch]:
  """Local eval batches with ``mask``: the split once, last batch padded.

  ``process`` is (index, count), default this process of the runtime;
  ``workers`` as in ``train_batches``.
  """
  index, count = process or (None, None)
  rows = process_rows(global_batch_size, index, count,
                      devices=None if process is None else count)
  n = len(source)
  examples = [np.arange(start, start + global_batch_size)[rows]
              for start in range(0, n, global_batch_size)]
  reads = workers_lib.read_in_order(
      source, (np.where(e < n, e, 0) for e in examples), workers)
  for batch, e in zip(reads, examples):
    batch["mask"] = e < n
    yield batch


def prefetch(batches: Iterator[Batch], put: Callable[[Batch], object],
             size: int = 2) -> Iterator[object]:
  """Reads and transfers ``size`` batches ahead on a background thread."""
  if size <= 0:
    yield from map(put, batches)
    return
  buffer: queue.Queue = queue.Queue(maxsize=size)
  done = object()

  def produce():
    try:
      for batch in batches:
        buffer.put(put(batch))
    except Exception as e:  # pylint: disable=broad-except
      buffer.put(e)
    buffer.put(done)

  threading.Thread(target=produce, daemon=True).start()
  while (item := buffer.get()) is not done:
    if isinstance(item, Exception):
      raise item
    yield item


def global_put(sharding) -> Callable[[Batch], dict]:
  """Local numpy batch → global ``jax.Array``s laid out by ``sharding``."""
  return lambda batch: {
      k: jax.make_array_from_process_local_data(sharding, v)
      for k, v in batch.items()}


def pmap_batch(batch: Batch) -> dict:
  """Local batch → leading axis of local devices, for ``jax.pmap``."""
  n = jax.local_device_count()
  return {k: v.reshape((n, -1) + v.shape[1:]) for k, v in batch.items()}


