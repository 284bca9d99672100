"""Classification loss and metrics against numpy and scikit-learn."""
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, log_loss

from cvx import tasks

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(12, 4)).astype(np.float32)
LABELS = RNG.integers(0, 4, 12).astype(np.int32)


def _batch(mask=None):
  return {"image": np.zeros((12, 2, 2, 1), np.uint8), "label": LABELS,
          "mask": np.ones(12, bool) if mask is None else mask}


def test_loss_is_sklearn_log_loss():
  task = tasks.create("classification", num_classes=4)
  loss, metrics = task.loss(jnp.asarray(LOGITS), {}, _batch())
  probs = np.exp(LOGITS) / np.exp(LOGITS).sum(1, keepdims=True)
  assert float(loss) == pytest.approx(log_loss(LABELS, probs, labels=range(4)), rel=1e-5)
  assert float(metrics["accuracy"]) == pytest.approx(np.mean(LOGITS.argmax(1) == LABELS))


def test_label_smoothing_mixes_in_the_uniform_target():
  task = tasks.create("classification", num_classes=4, label_smoothing=0.2)
  loss, _ = task.loss(jnp.asarray(LOGITS), {}, _batch())
  log_p = LOGITS - np.log(np.exp(LOGITS).sum(1, keepdims=True))
  target = 0.8 * np.eye(4)[LABELS] + 0.2 / 4
  assert float(loss) == pytest.approx(-(target * log_p).sum(1).mean(), rel=1e-5)


def test_aux_heads_add_their_weighted_loss():
  task = tasks.create("classification", num_classes=4, aux_loss_weight=0.3)
  aux = RNG.normal(size=(12, 4)).astype(np.float32)
  main, _ = task.loss(jnp.asarray(LOGITS), {}, _batch())
  aux_only, _ = task.loss(jnp.asarray(aux), {}, _batch())
  both, metrics = task.loss(jnp.asarray(LOGITS), {"aux1_logits": jnp.asarray(aux),
                                                  "pre_logits": jnp.zeros(3)}, _batch())
  assert float(both) == pytest.approx(float(main) + 0.3 * float(aux_only), rel=1e-6)
  assert float(metrics["loss"]) == pytest.approx(float(main))


def test_eval_sums_skip_padding_rows():
  mask = np.arange(12) < 9
  task = tasks.create("classification", num_classes=4)
  sums = task.eval_sums(jnp.asarray(LOGITS), _batch(mask))
  np.testing.assert_array_equal(
      np.asarray(sums["confusion"]),
      confusion_matrix(LABELS[:9], LOGITS[:9].argmax(1), labels=range(4)))
  metrics = task.finalize(sums)
  assert metrics["count"] == 9
  assert metrics["accuracy"] == pytest.approx(np.mean(LOGITS[:9].argmax(1) == LABELS[:9]))


def test_bad_batches_and_names():
  task = tasks.create("classification", num_classes=4)
  with pytest.raises(ValueError, match=r"batch\['image'\] must be N×H×W×C"):
    task.check_batch({"image": np.zeros((2, 3)), "label": np.zeros(2)})
  with pytest.raises(ValueError, match=r"batch\['label'\] must have shape \(2,\)"):
    task.check_batch({"image": np.zeros((2, 3, 3, 1)), "label": np.zeros(3)})
  with pytest.raises(ValueError, match="unknown task 'segmentation'.*classification"):
    tasks.create("segmentation", num_classes=2)
