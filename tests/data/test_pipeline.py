"""Sampler order, per-process shares and exactly-once evaluation."""
import numpy as np
import pytest

from cvx.data import pipeline, sources


def test_each_epoch_is_a_seeded_permutation_without_repeats():
  sampler = pipeline.Sampler(100, 32, seed=7)
  assert sampler.steps_per_epoch == 3
  for epoch in range(3):
    seen = np.concatenate([sampler.indices(epoch * 3 + i) for i in range(3)])
    assert len(set(seen.tolist())) == 96  # 4 dropped (remainder), none repeated
  first, second = sampler.indices(0), sampler.indices(3)
  assert not np.array_equal(first, second)  # Reshuffled each epoch.
  np.testing.assert_array_equal(pipeline.Sampler(100, 32, 7).indices(4),
                                sampler.indices(4))  # Random access = replay.
  assert not np.array_equal(pipeline.Sampler(100, 32, 8).indices(0), first)


def test_batch_larger_than_dataset_is_an_error():
  with pytest.raises(ValueError, match="batch_size=64 exceeds the 10"):
    pipeline.Sampler(10, 64, 0)


@pytest.mark.parametrize("count", [1, 2, 4])
def test_process_shares_tile_the_global_batch(count):
  rows = [pipeline.process_rows(16, i, count, devices=4) for i in range(count)]
  covered = np.concatenate([np.arange(16)[r] for r in rows])
  np.testing.assert_array_equal(covered, np.arange(16))


def test_batch_not_divisible_by_devices_is_an_error():
  with pytest.raises(ValueError, match="divisible by the 8 devices"):
    pipeline.process_rows(12, 0, 1, devices=8)


@pytest.mark.parametrize("count", [1, 2])
def test_eval_counts_every_example_exactly_once(count):
  n = 23
  src = sources.ArraySource(np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1),
                            np.arange(n), num_classes=n)
  seen = []
  for index in range(count):
    batches = list(pipeline.eval_batches(src, 8, process=(index, count)))
    assert len(batches) == 3  # ⌈23 / 8⌉ on every process.
    for batch in batches:
      assert len(batch["label"]) == 8 // count
      seen.extend(batch["label"][batch["mask"]].tolist())
  assert sorted(seen) == list(range(n))


def test_prefetch_keeps_order_and_reraises():
  assert list(pipeline.prefetch(iter(range(10)), lambda x: x * 2, size=3)) == \
      [2 * i for i in range(10)]

  def broken():
    yield 1
    raise OSError("disk gone")

  with pytest.raises(OSError, match="disk gone"):
    list(pipeline.prefetch(broken(), lambda x: x, size=2))
