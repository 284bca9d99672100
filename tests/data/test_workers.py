"""Reads in worker processes: the same batches in the same order as one thread."""
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cvx.data import pipeline, sources, subset, workers


@pytest.fixture(scope="module")
def records(data_dir):
  return sources.load("mnist5k", "test", data_dir, cache=False)


def _assert_same_batches(got, want):
  got, want = list(got), list(want)
  assert len(got) == len(want)
  for g, w in zip(got, want):
    assert g.keys() == w.keys()
    for key in w:
      np.testing.assert_array_equal(g[key], w[key], err_msg=key)


@pytest.mark.parametrize("count", [1, 3])
def test_train_batches_do_not_depend_on_the_worker_count(records, count):
  sampler = pipeline.Sampler(len(records), 32, seed=3)
  _assert_same_batches(pipeline.train_batches(records, sampler, 2, 14, workers=count),
                       pipeline.train_batches(records, sampler, 2, 14))


def test_eval_batches_and_subsets_in_workers(records):
  picked = subset.select(records, "3,1", examples_per_class=20, seed=1)
  assert picked.decodes
  _assert_same_batches(pipeline.eval_batches(picked, 16, workers=2),
                       pipeline.eval_batches(picked, 16))


def test_materialize_in_workers_equals_one_thread(records):
  a, b = records.materialize(workers=2), records.materialize()
  np.testing.assert_array_equal(a.images, b.images)
  np.testing.assert_array_equal(a.labels, b.labels)


def test_a_workers_error_is_raised_in_the_reader(records):
  batches = workers.read_in_order(records, [np.arange(4), np.array([len(records)])], 2)
  assert next(batches)["image"].shape == (4, 28, 28, 1)
  with pytest.raises(ValueError, match="num_records"):
    next(batches)


def test_only_decoding_sources_start_processes(records):
  in_memory = sources.ArraySource(np.zeros((8, 2, 2, 1), np.uint8), np.arange(8), 8)
  for source, started in ((in_memory, False), (records, True)):
    batches = workers.read_in_order(source, [np.arange(4)] * 3, workers=2)
    next(batches)
    assert bool(multiprocessing.active_children()) == started
    assert len(list(batches)) == 2
  assert not multiprocessing.active_children()  # The pool shut down at the end.


def test_negative_workers_is_an_error_at_the_call(records):
  with pytest.raises(ValueError, match=r"data.workers=-1 must be ≥ 0"):
    workers.read_in_order(records, [], -1)


_READER = """
import multiprocessing, sys, time
import numpy as np
from cvx.data import sources, workers
if __name__ == "__main__":
  source = sources.load("mnist5k", "test", sys.argv[1], cache=False)
  batches = workers.read_in_order(source, (np.arange(4) for _ in range(1000)), 2)
  next(batches)
  print(*[p.pid for p in multiprocessing.active_children()], flush=True)
  time.sleep(120)
"""


def _running(pid: int) -> bool:
  """Exists and is not a zombie."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except FileNotFoundError:
    return False


def _wait_until(condition, timeout_s: float = 15.0) -> None:
  deadline = time.time() + timeout_s
  while not condition() and time.time() < deadline:
    time.sleep(0.1)
  assert condition()


def test_workers_leave_the_group_and_exit_when_the_reader_is_killed(data_dir):
  reader = subprocess.Popen([sys.executable, "-c", _READER, data_dir],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
  try:
    pids = [int(p) for p in reader.stdout.readline().split()]
    assert len(pids) == 2 and all(_running(p) for p in pids)
    # Each worker leaves the group in its initializer, which may still be running.
    _wait_until(lambda: all(os.getpgid(p) != os.getpgid(reader.pid) for p in pids))
  finally:
    reader.send_signal(signal.SIGKILL)
    reader.wait()
  _wait_until(lambda: not any(_running(p) for p in pids))
