"""cvx.metrics against scikit-learn, eagerly and under jit, with ties and masks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from cvx import metrics

RNG = np.random.default_rng(0)


def _binary(n=200, ties=False):
  labels = RNG.integers(0, 2, n)
  scores = RNG.normal(size=n) + labels
  if ties:  # Coarse scores: many tie groups mixing both classes.
    scores = np.round(scores, 1)
  return scores.astype(np.float32), labels


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("jit", [False, True])
def test_roc_auc_and_average_precision_match_sklearn(ties, jit):
  scores, labels = _binary(ties=ties)
  auc = jax.jit(metrics.roc_auc) if jit else metrics.roc_auc
  ap = jax.jit(metrics.average_precision) if jit else metrics.average_precision
  assert float(auc(scores, labels)) == pytest.approx(
      skm.roc_auc_score(labels, scores), abs=1e-6)
  assert float(ap(scores, labels)) == pytest.approx(
      skm.average_precision_score(labels, scores), abs=1e-6)


def test_masked_rows_do_not_count():
  scores, labels = _binary(ties=True)
  mask = RNG.random(len(labels)) < 0.7
  assert float(metrics.roc_auc(scores, labels, mask)) == pytest.approx(
      skm.roc_auc_score(labels[mask], scores[mask]), abs=1e-6)
  assert float(metrics.average_precision(scores, labels, mask)) == pytest.approx(
      skm.average_precision_score(labels[mask], scores[mask]), abs=1e-6)


def test_roc_curve_points_are_sklearns():
  scores, labels = _binary(ties=True)
  fpr, tpr, thresholds, valid = map(np.asarray, metrics.roc_curve(scores, labels))
  want_fpr, want_tpr, want_thr = skm.roc_curve(labels, scores, drop_intermediate=False)
  np.testing.assert_allclose(fpr[valid], want_fpr, atol=1e-6)
  np.testing.assert_allclose(tpr[valid], want_tpr, atol=1e-6)
  np.testing.assert_allclose(thresholds[valid][1:], want_thr[1:])


def test_precision_recall_curve_points_are_sklearns():
  scores, labels = _binary(ties=True)
  precision, recall, thresholds, valid = map(
      np.asarray, metrics.precision_recall_curve(scores, labels))
  want_p, want_r, want_t = skm.precision_recall_curve(labels, scores)
  # sklearn: increasing thresholds, plus a final (1, 0) point; stops at full recall.
  got = sorted(zip(thresholds[valid], precision[valid], recall[valid]))
  got = [g for g in got if g[0] >= want_t[0]]
  np.testing.assert_allclose([g[1] for g in got], want_p[:-1], atol=1e-6)
  np.testing.assert_allclose([g[2] for g in got], want_r[:-1], atol=1e-6)


@pytest.mark.parametrize("average", ["macro", "weighted"])
def test_one_vs_rest_auc_matches_sklearn(average):
  labels = RNG.integers(0, 4, 300)
  logits = RNG.normal(size=(300, 4)) + 1.5 * np.eye(4)[labels]
  probs = np.asarray(jax.nn.softmax(jnp.asarray(logits, jnp.float32)))
  per_class, mean = metrics.roc_auc_ovr(probs, labels, average=average)
  assert float(mean) == pytest.approx(skm.roc_auc_score(
      labels, probs, multi_class="ovr", average=average), abs=1e-6)
  for c in range(4):
    assert float(per_class[c]) == pytest.approx(
        skm.roc_auc_score(labels == c, probs[:, c]), abs=1e-6)


def test_accuracy_top_k_confusion_and_f1_match_sklearn():
  labels = RNG.integers(0, 5, 400)
  logits = (RNG.normal(size=(400, 5)) + np.eye(5)[labels]).astype(np.float32)
  predicted = logits.argmax(1)
  assert float(metrics.accuracy(logits, labels)) == pytest.approx(
      skm.accuracy_score(labels, predicted))
  for k in (1, 2, 3):
    assert float(metrics.top_k_accuracy(logits, labels, k)) == pytest.approx(
        skm.top_k_accuracy_score(labels, logits, k=k))
  confusion = metrics.confusion_matrix(labels, predicted, 5)
  np.testing.assert_array_equal(confusion, skm.confusion_matrix(labels, predicted))
  got = metrics.precision_recall_f1(confusion)
  p, r, f, s = skm.precision_recall_fscore_support(labels, predicted, zero_division=0)
  for name, want in (("precision", p), ("recall", r), ("f1", f), ("support", s)):
    np.testing.assert_allclose(got[name], want, rtol=1e-6)
  for avg in ("macro", "weighted"):
    p, r, f, _ = skm.precision_recall_fscore_support(labels, predicted, average=avg,
                                                     zero_division=0)
    np.testing.assert_allclose([got[f"{avg}_precision"], got[f"{avg}_recall"],
                                got[f"{avg}_f1"]], [p, r, f], rtol=1e-6)
  assert float(got["micro_f1"]) == pytest.approx(skm.f1_score(labels, predicted,
                                                             average="micro"))


def test_a_class_never_predicted_scores_zero_precision():
  confusion = metrics.confusion_matrix(np.array([0, 1, 2]), np.array([0, 0, 0]), 3)
  got = metrics.precision_recall_f1(confusion)
  np.testing.assert_allclose(got["precision"], [1 / 3, 0, 0])
  np.testing.assert_allclose(got["f1"], [0.5, 0, 0])


def test_bad_arguments():
  with pytest.raises(ValueError, match=r"k=6 must be in \[1, 5\]"):
    metrics.top_k_accuracy(jnp.zeros((2, 5)), jnp.zeros(2, int), 6)
  with pytest.raises(ValueError, match="average='micro'"):
    metrics.roc_auc_ovr(jnp.zeros((2, 3)), jnp.zeros(2, int), average="micro")
