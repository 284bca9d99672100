"""Image classification: batch format, loss and metrics.

Batch: ``image`` N×H×W×C uint8, ``label`` N int32, and for eval ``mask`` N
bool (padding rows are False). Models return ``(logits, features)``; auxiliary
heads (GoogLeNet) put ``aux*_logits`` in ``features`` during training and add
``aux_loss_weight`` × their cross-entropy to the loss.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cvx import metrics as metrics_lib


@dataclasses.dataclass(frozen=True)
class Classification:
  num_classes: int
  label_smoothing: float = 0.0
  aux_loss_weight: float = 0.3

  def check_batch(self, batch) -> None:
    image, label = batch["image"], batch["label"]
    if image.ndim != 4:
      raise ValueError(f"batch['image'] must be N×H×W×C, got shape {image.shape}")
    if label.shape != image.shape[:1]:
      raise ValueError(f"batch['label'] must have shape {image.shape[:1]}, "
                       f"got {label.shape}")

  def cross_entropy(self, logits, labels):
    """Per-example softmax cross-entropy with label smoothing."""
    targets = optax.smooth_labels(jax.nn.one_hot(labels, self.num_classes),
                                  self.label_smoothing)
    return optax.softmax_cross_entropy(logits, targets)

  def loss(self, logits, features, batch):
    """Mean training loss (aux heads included) and per-step metrics."""
    labels = batch["label"]
    main = self.cross_entropy(logits, labels).mean()
    aux = sum((self.cross_entropy(v, labels).mean()
               for k, v in features.items() if k.startswith("aux")
               and k.endswith("_logits")), jnp.zeros(()))
    metrics = {"loss": main,
               "accuracy": (logits.argmax(-1) == labels).mean()}
    return main + self.aux_loss_weight * aux, metrics

  def eval_sums(self, logits, batch):
    """Masked sums over a batch; the loop adds them up over the split."""
    labels, mask = batch["label"], batch["mask"]
    w = mask.astype(jnp.float32)
    predicted = logits.argmax(-1)
    confusion = metrics_lib.confusion_matrix(labels, predicted, self.num_classes, mask)
    return {"loss": (self.cross_entropy(logits, labels) * w).sum(),
            "correct": ((predicted == labels) * w).sum(),
            "count": w.sum(), "confusion": confusion}

  @staticmethod
  def finalize(sums) -> dict:
    """Summed eval outputs → metrics (floats) and the confusion matrix."""
    count = float(sums["count"])
    return {"loss": float(sums["loss"]) / count,
            "accuracy": float(sums["correct"]) / count,
            "count": int(count)}


  def report(self, logits, labels, mask) -> tuple[dict, dict]:
    """Full-split report: (metrics, curves), curves holding one-vs-rest ROC
    ``(fpr, tpr)`` and precision-recall ``(recall, precision)`` per class.

    Metrics: accuracy, top-5 accuracy (K > 5), macro/weighted precision,
    recall and F1, per-class values, one-vs-rest ROC AUC of the softmax, and
    the confusion matrix (rows true, columns predicted).
    """
    probs = jax.nn.softmax(jnp.asarray(logits), axis=-1)
    confusion = metrics_lib.confusion_matrix(labels, logits.argmax(-1),
                                             self.num_classes, mask)
    prf = metrics_lib.precision_recall_f1(confusion)
    per_class_auc, macro_auc = metrics_lib.roc_auc_ovr(probs, labels, mask)
    out = {"accuracy": float(metrics_lib.accuracy(logits, labels, mask)),
           "roc_auc_ovr_macro": float(macro_auc),
           **{k: float(v) for k, v in prf.items() if v.ndim == 0},
           "per_class": {k: np.asarray(prf[k]).tolist()
                         for k in ("precision", "recall", "f1", "support")},
           "confusion_matrix": np.asarray(confusion).astype(int).tolist()}
    out["per_class"]["roc_auc"] = np.asarray(per_class_auc).tolist()
    out["per_class"]["average_precision"] = [
        float(metrics_lib.average_precision(probs[:, c], labels == c, mask))
        for c in range(self.num_classes)]
    if self.num_classes > 5:
      out["top5_accuracy"] = float(metrics_lib.top_k_accuracy(logits, labels, 5, mask))
    curves = {"roc": {}, "pr": {}}
    for c in range(self.num_classes):
      fpr, tpr, _, valid = map(np.asarray, metrics_lib.roc_curve(
          probs[:, c], labels == c, mask))
      curves["roc"][c] = (fpr[valid], tpr[valid])
      precision, recall, _, valid = map(np.asarray, metrics_lib.precision_recall_curve(
          probs[:, c], labels == c, mask))
      curves["pr"][c] = (recall[valid], precision[valid])
    return out, curves
