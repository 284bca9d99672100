"""Class subsets and N examples per class: relabelling, nesting, errors."""
import numpy as np
import pytest

from cvx.data import sources, subset


def _source():
  labels = np.repeat(np.arange(4), 6)  # 6 examples of each of 4 classes
  images = np.arange(len(labels), dtype=np.uint8).reshape(-1, 1, 1, 1)
  return sources.ArraySource(images, labels, num_classes=4)


def test_classes_are_kept_in_order_and_relabelled():
  src = subset.select(_source(), "3,1")
  assert len(src) == 12 and src.num_classes == 2
  batch = src.read(np.arange(12))
  assert batch["image"].ravel().tolist() == list(range(6, 12)) + list(range(18, 24))
  assert batch["label"].tolist() == [1] * 6 + [0] * 6


def test_examples_per_class_is_a_nested_deterministic_sample_per_seed():
  pick = lambda n, seed: set(subset.select(_source(), "0,2", n, seed)
                             .read(np.arange(2 * n))["image"].ravel())
  assert pick(2, 0) == pick(2, 0) and pick(2, 0) <= pick(4, 0)
  assert pick(2, 0) != pick(2, 1)
  chosen = subset.select(_source(), "", 3, 0).read(np.arange(12))["label"]
  assert np.bincount(chosen).tolist() == [3, 3, 3, 3]


def test_defaults_return_the_source_itself():
  src = _source()
  assert subset.select(src) is src


@pytest.mark.parametrize("classes, n, message", [
    ("1,x", 0, "expected comma-separated labels"),
    ("1,1", 0, "distinct and in \\[0, 4\\)"),
    ("4", 0, "distinct and in \\[0, 4\\)"),
    ("0", 7, "class 0 has only 6 examples"),
    ("0", -1, "must be ≥ 0"),
])
def test_bad_selections_raise(classes, n, message):
  with pytest.raises(ValueError, match=message):
    subset.select(_source(), classes, n)
