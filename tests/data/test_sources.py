"""Catalog datasets, image folders and the errors for what is missing."""
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from cvx.data import sources
from tests.helpers import write_image_folder


def test_unknown_dataset_lists_what_exists(data_dir):
  with pytest.raises(ValueError, match=r"unknown dataset 'mnist_5k'.*mnist5k"):
    sources.load("mnist_5k", "train", data_dir)


def test_unprepared_catalog_dataset_fails_fast_with_instructions(tmp_path):
  start = time.time()
  with pytest.raises(sources.DatasetUnavailableError,
                     match=r"'cifar10' is not prepared.*tfds build cifar10"):
    sources.load("cifar10", "train", str(tmp_path))
  assert time.time() - start < 30  # No download attempt, no hang.


def test_missing_split_names_the_splits(data_dir):
  with pytest.raises(ValueError, match=r"no split 'validation'.*'test', 'train'"):
    sources.load("mnist5k", "validation", data_dir)


def test_image_folder_reads_every_image_with_its_class(tmp_path):
  expected = write_image_folder(tmp_path, [(6, 5)] * 3)
  src = sources.load(f"folder:{tmp_path}", "train")
  batch = src.read(np.arange(len(src)))
  assert len(src) == 6 and src.num_classes == 2
  assert np.bincount(batch["label"]).tolist() == [3, 3]
  for label in (0, 1):
    want = sorted(expected[("train", label, i)].tobytes() for i in range(3))
    got = sorted(im.tobytes() for im in batch["image"][batch["label"] == label])
    assert got == want


def test_image_folder_of_mixed_sizes_needs_image_size(tmp_path):
  write_image_folder(tmp_path, [(6, 5), (9, 7)])
  with pytest.raises(ValueError, match="image_size"):
    sources.load(f"folder:{tmp_path}", "train")
  src = sources.load(f"folder:{tmp_path}", "train", image_size=(8, 8))
  assert src.image_shape == (8, 8, 3)
  with pytest.raises(ValueError, match="no split folder 'val'"):
    sources.load(f"folder:{tmp_path}", "val")


class VaryingSizes(tfds.core.GeneratorBasedBuilder):
  """Six RGB images of different sizes (a stand-in for ImageNet's layout)."""

  VERSION = tfds.core.Version("1.0.0")
  SIZES = [(5, 7), (9, 4), (8, 8), (3, 6), (10, 12), (7, 5)]

  def _info(self):
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)),
            "label": tfds.features.ClassLabel(num_classes=2)}),
        supervised_keys=("image", "label"))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    for i, image in enumerate(varying_images()):
      yield i, {"image": image, "label": i % 2}


def varying_images():
  rng = np.random.default_rng(0)
  return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for size in VaryingSizes.SIZES]


def test_array_record_images_of_varying_size_are_resized_on_read_without_caching(tmp_path):
  VaryingSizes(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
  with pytest.raises(ValueError, match="differ in size.*image_size"):
    sources.load("varying_sizes", "train", str(tmp_path), cache=False)
  src = sources.load("varying_sizes", "train", str(tmp_path), cache=False, image_size=(6, 6))
  assert isinstance(src, sources.RecordSource) and src.image_shape == (6, 6, 3)
  batch = src.read(np.arange(len(src)))  # tfds orders examples by key hash.
  want = [np.asarray(Image.fromarray(im).resize((6, 6), Image.BILINEAR))
          for im in varying_images()]
  assert sorted(im.tobytes() for im in batch["image"]) == sorted(w.tobytes() for w in want)
  cached = sources.load("varying_sizes", "train", str(tmp_path), image_size=(6, 6))
  np.testing.assert_array_equal(cached.read(np.arange(6))["image"], batch["image"])
