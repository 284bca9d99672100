"""How much of a pretrained network to freeze: seed 000's four scenarios.

Target data is *small* below ``small_below`` training examples per class,
by default 1,000: seed 001's rule of thumb for what a CNN needs without
transfer learning. The freeze policy of each scenario is a
``config.transfer.freeze`` value: the middle of the seed's range where it
gives one (60–80% → ``'0.7'``, 30–50% → ``'0.4'``).
"""
from typing import NamedTuple

SMALL_BELOW = 1000
SIMILARITIES = ("similar", "different")

_SCENARIOS = {
    ("small", "similar"): (
        1, "Use pretrained network as a feature extractor", "backbone"),
    ("large", "similar"): (
        2, "Freeze 60-80% of the network and fine tune the rest of the network",
        "0.7"),
    ("small", "different"): (
        3, "Since target dataset is different it might not be the best to freeze "
           "the higher level features of the pretrained network because they "
           "contain source dataset specific features. It will be better to "
           "retrain layers from somewhere early in the network. Freeze 30-50% of "
           "the network.", "0.4"),
    ("large", "different"): (
        4, "Fine tune the entire network/Train the entire network by using the "
           "existing weights of the pretrained network", "none"),
}


class Recommendation(NamedTuple):
  scenario: int  # 1..4, the seed's row
  size: str  # "small" | "large"
  similarity: str  # "similar" | "different"
  approach: str  # the seed's text
  freeze: str  # config.transfer.freeze


def recommend(target_size: int, similarity: str,
              small_below: int = SMALL_BELOW) -> Recommendation:
  """The scenario for ``target_size`` training examples per class of a target
  domain ``similarity`` ('similar' or 'different') to the source."""
  if isinstance(target_size, bool) or not isinstance(target_size, int) or target_size < 1:
    raise ValueError(f"target_size must be a positive int (training examples per "
                     f"class), got {target_size!r}")
  if isinstance(small_below, bool) or not isinstance(small_below, int) or small_below < 1:
    raise ValueError(f"small_below must be a positive int, got {small_below!r}")
  if similarity not in SIMILARITIES:
    raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
  size = "small" if target_size < small_below else "large"
  scenario, approach, freeze = _SCENARIOS[size, similarity]
  return Recommendation(scenario, size, similarity, approach, freeze)
