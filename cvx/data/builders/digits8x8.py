"""tfds builder for scikit-learn's bundled 8×8 digits (1,797 images).

Pixel values 0..16 are rescaled to uint8 0..255 (×255/16, rounded). Split:
every fifth image (file order, index % 5 == 4) is ``test`` (359), the rest
``train`` (1,438).
"""
import numpy as np
import tensorflow_datasets as tfds


def read_digits8x8() -> tuple[np.ndarray, np.ndarray]:
  """All 1,797 digits: images N×8×8×1 uint8 (0..255), labels N int64."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
  return images[..., None], digits.target.astype(np.int64)


class Digits8x8(tfds.core.GeneratorBasedBuilder):
  """scikit-learn's 8×8 handwritten digits, built offline."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Every fifth image is test."}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(8, 8, 1)),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
        homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the data ships with scikit-learn.
    images, labels = read_digits8x8()
    is_test = np.arange(len(labels)) % 5 == 4
    return {
        "train": self._generate_examples(images, labels, np.flatnonzero(~is_test)),
        "test": self._generate_examples(images, labels, np.flatnonzero(is_test)),
    }

  def _generate_examples(self, images, labels, indices):
    for i in indices:
      yield int(i), {"image": images[i], "label": int(labels[i])}
