"""recommend(): the seed's four scenarios and the freeze policy each implies."""
import pytest

from cvx.transfer import recommend


@pytest.mark.parametrize("size, similarity, scenario, freeze, text", [
    (50, "similar", 1, "backbone", "Use pretrained network as a feature extractor"),
    (5000, "similar", 2, "0.7", "Freeze 60-80% of the network and fine tune"),
    (50, "different", 3, "0.4", "Freeze 30-50% of the network."),
    (5000, "different", 4, "none", "Fine tune the entire network"),
])
def test_the_four_cells(size, similarity, scenario, freeze, text):
  r = recommend(size, similarity)
  assert (r.scenario, r.freeze, r.similarity) == (scenario, freeze, similarity)
  assert text in r.approach


def test_small_is_below_the_threshold():
  assert recommend(999, "similar").size == "small"
  assert recommend(1000, "similar").size == "large"
  assert recommend(200, "similar", small_below=100).size == "large"


@pytest.mark.parametrize("args, message", [
    ((0, "similar"), "target_size must be a positive int"),
    ((10.5, "similar"), "target_size must be a positive int"),
    ((10, "Similar"), "similarity must be one of \\('similar', 'different'\\)"),
    ((10, "similar", 0), "small_below must be a positive int"),
])
def test_bad_inputs_raise(args, message):
  with pytest.raises(ValueError, match=message):
    recommend(*args)
