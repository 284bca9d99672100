"""Source reads in worker processes, delivered in order (``config.data.workers``).

Decoding stored examples (PNG/JPEG in ArrayRecord files) is Python-bound: one
thread cannot decode faster than ~20k small images/s and threads do not help
(the GIL). ``read_in_order`` hands each index batch to one of ``workers``
processes and yields the batches in the order they were asked for, so the
examples of every batch, and their order, do not depend on the worker count.

Workers fork from a ``forkserver`` (forking the process that runs JAX's
threads is unsafe) that has imported the data modules once, so a pool after
the first, e.g. each evaluation pass, starts in milliseconds; each worker
unpickles the source once. Sources whose reads do not decode (arrays in
memory: ``source.decodes`` is False) are read in the calling thread.

Workers leave the reader's process group, so a Ctrl-C or a scheduler's
SIGTERM to the group reaches only the reader (which saves its checkpoint and
shuts the pool down), and each exits on its own within a second of the reader
being killed outright.
"""
import collections
import multiprocessing
import os
import threading
import time
from concurrent import futures
from typing import Iterable, Iterator

import numpy as np

Batch = dict[str, np.ndarray]

_source = None  # The worker process's source, set by _init.


def _init(source, reader_pid: int) -> None:
  global _source
  _source = source
  os.setpgrp()
  threading.Thread(target=_exit_after, args=(reader_pid,), daemon=True).start()


def _exit_after(pid: int, poll_s: float = 1.0) -> None:
  """Ends this worker once process ``pid`` is gone (killed before it could shut
  the pool down; the worker would otherwise wait on the task queue forever)."""
  while True:
    time.sleep(poll_s)
    try:
      os.kill(pid, 0)
    except ProcessLookupError:
      os._exit(0)


def _read(indices: np.ndarray) -> Batch:
  return _source.read(indices)


def read_in_order(source, index_batches: Iterable[np.ndarray],
                  workers: int = 0) -> Iterator[Batch]:
  """``source.read(indices)`` for each of ``index_batches``, in order.

  ``workers`` > 0 reads in that many processes, 2 batches per worker ahead of
  the consumer; 0 (or a source that does not decode) reads in this thread.
  A worker's exception is re-raised here when its batch is reached.
  """
  if workers < 0:
    raise ValueError(f"data.workers={workers} must be ≥ 0 (0 reads in the "
                     f"calling thread)")
  if workers == 0 or not source.decodes:
    return map(source.read, index_batches)
  return _read_in_processes(source, index_batches, workers)


def _read_in_processes(source, index_batches, workers: int) -> Iterator[Batch]:
  context = multiprocessing.get_context("forkserver")
  context.set_forkserver_preload(["cvx.data.sources"])
  pool = futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init,
                                     initargs=(source, os.getpid()))
  pending = collections.deque()
  try:
    for indices in index_batches:
      pending.append(pool.submit(_read, indices))
      if len(pending) > 2 * workers:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()
  finally:
    pool.shutdown(wait=True, cancel_futures=True)
