"""Random-access data sources: ``len(src)`` and ``src.read(indices)``.

A source yields batches as dicts of numpy arrays: ``image`` N×H×W×C uint8 and
``label`` N int32. Three kinds:

* the local builders in :mod:`cvx.data.builders` (built offline on first use),
* any tfds catalog dataset whose data is already prepared in ``data_dir``,
* ``folder:/root`` — tfds's ImageFolder: ``root/<split>/<class>/<image>``.

Random access (rather than a stream) makes the example order a pure function
of (seed, step): resuming and changing the number of devices or hosts never
changes which examples form a global batch.
"""
import difflib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Before TF is first imported.
from typing import Protocol

import numpy as np

from cvx.data import builders
from cvx.data import workers as workers_lib

LOCAL_BUILDERS = {"mnist5k": builders.Mnist5k, "digits8x8": builders.Digits8x8}
FOLDER_PREFIX = "folder:"
_CHUNK = 512  # Examples per read when decoding a whole split.


class DatasetUnavailableError(RuntimeError):
  """The dataset exists but its data is not on this machine."""


class Source(Protocol):
  num_classes: int
  image_shape: tuple[int, ...]
  decodes: bool  # Reads decode stored examples (worth worker processes).

  def __len__(self) -> int: ...

  def read(self, indices: np.ndarray) -> dict[str, np.ndarray]: ...


class ArraySource:
  """Examples held in memory as arrays."""

  decodes = False

  def __init__(self, images: np.ndarray, labels: np.ndarray, num_classes: int):
    if images.ndim != 4 or images.dtype != np.uint8:
      raise ValueError(f"images must be N×H×W×C uint8, got {images.shape} {images.dtype}")
    self.images, self.labels = images, labels.astype(np.int32)
    self.num_classes = num_classes
    self.image_shape = images.shape[1:]

  def __len__(self) -> int:
    return len(self.labels)

  def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    return {"image": self.images[indices], "label": self.labels[indices]}


class RecordSource:
  """A tfds ``ArrayRecord`` data source read example by example."""

  decodes = True

  def __init__(self, data_source, image_key: str, label_key: str,
               num_classes: int, image_shape: tuple[int, ...],
               image_size: tuple[int, int] | None = None):
    """``image_size`` (H, W): resize every example on read (images of varying size)."""
    self._src, self._image_key, self._label_key = data_source, image_key, label_key
    self._image_size = image_size
    self.num_classes = num_classes
    self.image_shape = (*image_size, image_shape[-1]) if image_size else image_shape

  def __len__(self) -> int:
    return len(self._src)

  def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    examples = self._src.__getitems__([int(i) for i in indices])
    return {
        "image": np.stack([_resize(_as_hwc(e[self._image_key]), self._image_size)
                           for e in examples]),
        "label": np.array([e[self._label_key] for e in examples], np.int32),
    }

  def materialize(self, workers: int = 0) -> ArraySource:
    """Every example decoded into memory, by ``workers`` processes (0: here)."""
    chunks = np.array_split(np.arange(len(self)), -(-len(self) // _CHUNK))
    batches = list(workers_lib.read_in_order(self, chunks, workers))
    return ArraySource(np.concatenate([b["image"] for b in batches]),
                       np.concatenate([b["label"] for b in batches]),
                       self.num_classes)


def _as_hwc(image: np.ndarray) -> np.ndarray:
  return image[..., None] if image.ndim == 2 else image


def default_data_dir() -> str:
  return os.environ.get("CVX_DATA_DIR",
                        os.path.expanduser("~/tensorflow_datasets"))


def load(dataset: str, split: str, data_dir: str | None = None,
         cache: bool = True, image_size: tuple[int, int] | None = None,
         workers: int = 0) -> Source:
  """Opens ``split`` of ``dataset`` for random access.

  ``cache`` decodes the whole split into memory once (fast for small data),
  in ``workers`` processes when > 0. ``image_size`` is required for datasets
  whose images differ in size.
  """
  data_dir = data_dir or default_data_dir()
  if dataset.startswith(FOLDER_PREFIX):
    return _load_folder(dataset[len(FOLDER_PREFIX):], split, image_size)
  builder = _prepared_builder(dataset, data_dir)
  if split not in builder.info.splits:
    raise ValueError(f"dataset {dataset!r} has no split {split!r}; "
                     f"splits: {sorted(builder.info.splits)}")
  image_key, label_key = _supervised_keys(builder, dataset)
  num_classes = builder.info.features[label_key].num_classes
  image_shape = builder.info.features[image_key].shape
  if builder.info.file_format.value != "array_record":
    return _load_stream_into_memory(builder, split, image_key, label_key,
                                    num_classes, image_size)
  records = builder.as_data_source(split)
  varying = None in image_shape[:2]
  if varying and image_size is None:
    raise ValueError(f"the images of {dataset!r} differ in size; set "
                     f"config.data.image_size=(H, W)")
  source = RecordSource(records, image_key, label_key, num_classes, image_shape,
                        image_size if varying else None)
  return source.materialize(workers) if cache else source


def _prepared_builder(dataset: str, data_dir: str):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if dataset in LOCAL_BUILDERS:
    builder = LOCAL_BUILDERS[dataset](data_dir=data_dir,
                                      file_format="array_record")
    if not builder.is_prepared():
      builder.download_and_prepare()
    return builder
  try:
    builder = tfds.builder(dataset, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    close = difflib.get_close_matches(dataset, list(LOCAL_BUILDERS)
                                      + tfds.list_builders(), n=3)
    raise ValueError(
        f"unknown dataset {dataset!r}. Local datasets: {sorted(LOCAL_BUILDERS)}; "
        f"any tfds catalog name (tfds.list_builders()); or 'folder:/path'. "
        f"Close matches: {close}") from None
  if not builder.is_prepared():
    raise DatasetUnavailableError(
        f"dataset {dataset!r} is not prepared in {data_dir} and cannot be "
        f"downloaded by a training run. On a machine with internet access run "
        f"`tfds build {dataset} --data_dir={data_dir} --file_format=array_record` "
        f"and copy {os.path.join(data_dir, dataset)} here (or point "
        f"--config.data_dir / $CVX_DATA_DIR at it).")
  return builder


def _supervised_keys(builder, dataset: str) -> tuple[str, str]:
  keys = builder.info.supervised_keys
  if not keys or len(keys) != 2 or not all(isinstance(k, str) for k in keys):
    raise ValueError(f"dataset {dataset!r} has no (image, label) supervised keys; "
                     f"got {keys!r}")
  return keys


def _load_stream_into_memory(builder, split, image_key, label_key, num_classes,
                             image_size):
  """Reads a tfrecord-format split through tf.data into memory."""
  ds = builder.as_dataset(split=split, shuffle_files=False)
  images, labels = [], []
  for example in ds.as_numpy_iterator():
    images.append(example[image_key])
    labels.append(example[label_key])
  return ArraySource(_stack_images(images, image_size), np.array(labels),
                     num_classes)


def _stack_images(images: list[np.ndarray], image_size) -> np.ndarray:
  """Stacks H×W[×C] uint8 images, resizing (bilinear, PIL) when sizes differ."""
  images = [_as_hwc(im) for im in images]
  if len({im.shape for im in images}) == 1:
    return np.stack(images)
  if image_size is None:
    raise ValueError("the images differ in size; set config.data.image_size=(H, W)")
  return np.stack([_resize(im, image_size) for im in images])


def _resize(image: np.ndarray, image_size: tuple[int, int] | None) -> np.ndarray:
  """H×W×C uint8 → image_size (bilinear, PIL); unchanged when None or equal."""
  if image_size is None or tuple(image_size) == image.shape[:2]:
    return image
  from PIL import Image  # pylint: disable=g-import-not-at-top
  h, w = image_size
  pil = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
  return _as_hwc(np.asarray(pil.resize((w, h), Image.BILINEAR)))


def _load_folder(root: str, split: str, image_size):
  """``root/<split>/<class>/<image>`` through tfds's ImageFolder builder."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(os.path.join(root, split)):
    raise ValueError(f"image folder {root!r} has no split folder {split!r}; "
                     f"expected {root}/{split}/<class>/<image files>")
  builder = tfds.ImageFolder(root)
  num_classes = builder.info.features["label"].num_classes
  return _load_stream_into_memory(builder, split, "image", "label", num_classes,
                                  image_size)
