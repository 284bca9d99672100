"""Class subsets and N examples per class of a source (``config.data.classes``,
``config.data.examples_per_class``), for transfer and few-shot experiments.

``classes="5,6,7"`` keeps the examples of those labels, relabelled 0, 1, 2 in
the listed order. ``examples_per_class=N`` keeps, of each class, the first N
examples of ``numpy.random.default_rng([seed, label]).permutation`` of that
class's examples (source order); for one seed a smaller N is therefore a
subset of a larger one, and another seed draws another sample. Kept examples
stay in source order.
"""
import numpy as np

from cvx.data.sources import Source

_CHUNK = 1024


class Subset:
  """The examples ``indices`` of ``source`` with labels mapped by ``relabel``."""

  def __init__(self, source: Source, indices: np.ndarray, relabel: np.ndarray):
    self._source, self._indices, self._relabel = source, indices, relabel
    self.num_classes = int(relabel.max()) + 1
    self.image_shape, self.decodes = source.image_shape, source.decodes

  def __len__(self) -> int:
    return len(self._indices)

  def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    batch = self._source.read(self._indices[indices])
    return {**batch, "label": self._relabel[batch["label"]]}


def parse_classes(classes: str, num_classes: int) -> list[int]:
  """``"5,6,7"`` → [5, 6, 7]; ``""`` → every class. ValueError when malformed."""
  if not classes.strip():
    return list(range(num_classes))
  try:
    labels = [int(c) for c in classes.split(",")]
  except ValueError:
    raise ValueError(f"data.classes={classes!r}: expected comma-separated labels "
                     f"such as '5,6,7'") from None
  if len(set(labels)) != len(labels) or not all(0 <= c < num_classes for c in labels):
    raise ValueError(f"data.classes={classes!r}: labels must be distinct and in "
                     f"[0, {num_classes})")
  return labels


def select(source: Source, classes: str = "", examples_per_class: int = 0,
           seed: int = 0) -> Source:
  """``source`` restricted as the module doc says (unchanged for the defaults)."""
  if not classes.strip() and not examples_per_class:
    return source
  if examples_per_class < 0:
    raise ValueError(f"data.examples_per_class={examples_per_class} must be ≥ 0 "
                     f"(0 keeps every example)")
  keep = parse_classes(classes, source.num_classes)
  labels = np.concatenate([source.read(np.arange(i, min(i + _CHUNK, len(source))))["label"]
                           for i in range(0, len(source), _CHUNK)])
  chosen = []
  for label in keep:
    members = np.flatnonzero(labels == label)
    if examples_per_class:
      if len(members) < examples_per_class:
        raise ValueError(f"data.examples_per_class={examples_per_class}: class "
                         f"{label} has only {len(members)} examples")
      rng = np.random.default_rng([seed, label])
      members = rng.permutation(members)[:examples_per_class]
    chosen.append(members)
  relabel = np.full(source.num_classes, -1, np.int32)
  relabel[keep] = np.arange(len(keep))
  return Subset(source, np.sort(np.concatenate(chosen)), relabel)
