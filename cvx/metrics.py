"""Classification metrics in JAX, matching scikit-learn's definitions.

Inputs are fixed-size arrays (jit-able); an optional ``mask`` (N bool) drops
padding rows, as in the eval loop. Conventions follow scikit-learn: ties in
scores form one threshold; precision/recall/F1 with no support are 0; ROC AUC
equals ``roc_auc_score`` (the Mann–Whitney statistic, ties counted half);
average precision is Σₙ (Rₙ − Rₙ₋₁) Pₙ over distinct thresholds.
"""
import jax
import jax.numpy as jnp


def _weights(n: int, mask) -> jax.Array:
  return jnp.ones(n, jnp.float32) if mask is None else jnp.asarray(mask, jnp.float32)


def accuracy(logits, labels, mask=None) -> jax.Array:
  """Fraction of rows whose arg-max class is the label."""
  w = _weights(labels.shape[0], mask)
  return ((logits.argmax(-1) == labels) * w).sum() / w.sum()


def top_k_accuracy(logits, labels, k: int, mask=None) -> jax.Array:
  """Fraction of rows whose label is among the ``k`` highest logits."""
  if not 1 <= k <= logits.shape[-1]:
    raise ValueError(f"k={k} must be in [1, {logits.shape[-1]}] (the number of classes)")
  w = _weights(labels.shape[0], mask)
  _, top = jax.lax.top_k(logits, k)
  return ((top == labels[:, None]).any(-1) * w).sum() / w.sum()


def confusion_matrix(labels, predictions, num_classes: int, mask=None) -> jax.Array:
  """K×K counts; rows are true classes, columns predictions."""
  w = _weights(labels.shape[0], mask)
  return jnp.einsum("n,ni,nj->ij", w, jax.nn.one_hot(labels, num_classes),
                    jax.nn.one_hot(predictions, num_classes))


def precision_recall_f1(confusion) -> dict[str, jax.Array]:
  """Per-class ``precision``, ``recall``, ``f1``, ``support`` (K each) and their
  ``macro``/``weighted`` averages and ``micro`` (= accuracy for single-label)."""
  tp = jnp.diag(confusion)
  predicted, support = confusion.sum(0), confusion.sum(1)
  div = lambda a, b: jnp.where(b > 0, a / jnp.where(b > 0, b, 1), 0.0)
  precision, recall = div(tp, predicted), div(tp, support)
  f1 = div(2 * precision * recall, precision + recall)
  out = {"precision": precision, "recall": recall, "f1": f1, "support": support}
  share = support / support.sum()
  for name in ("precision", "recall", "f1"):
    out[f"macro_{name}"] = out[name].mean()
    out[f"weighted_{name}"] = (out[name] * share).sum()
  out["micro_f1"] = tp.sum() / confusion.sum()
  return out


def _ranked(scores, labels, mask):
  """Sorted by descending score: positive and negative weights per row, the
  tie-group id of each row, and whether the row ends its group."""
  scores, labels = jnp.asarray(scores), jnp.asarray(labels)
  w = _weights(scores.shape[0], mask)
  order = jnp.argsort(-scores, stable=True)
  s, y, w = scores[order], labels[order].astype(jnp.float32), w[order]
  group_end = jnp.append(s[1:] != s[:-1], True)
  group = jnp.cumsum(jnp.append(True, group_end[:-1])) - 1
  return s, y * w, (1 - y) * w, group, group_end


def _per_group(values, group):
  """(total of the row's tie group, running total through that group)."""
  sums = jax.ops.segment_sum(values, group, num_segments=values.shape[0])
  return sums[group], jnp.cumsum(sums)[group]


def roc_curve(scores, labels, mask=None):
  """(fpr, tpr, thresholds, valid), each N + 1 long, starting at (0, 0).

  Row i + 1 is the point for threshold ``scores`` sorted descending; rows inside
  a tie group are not thresholds and have ``valid`` False (scikit-learn's
  ``roc_curve(..., drop_intermediate=False)`` returns the valid rows).
  """
  s, pos, neg, group, group_end = _ranked(scores, labels, mask)
  _, tp = _per_group(pos, group)
  _, fp = _per_group(neg, group)
  valid = group_end & ((pos + neg) > 0)
  return (jnp.append(0.0, fp / neg.sum()), jnp.append(0.0, tp / pos.sum()),
          jnp.append(jnp.inf, s), jnp.append(True, valid))


def roc_auc(scores, labels, mask=None) -> jax.Array:
  """Area under the ROC curve for binary ``labels`` (1 positive)."""
  _, pos, neg, group, _ = _ranked(scores, labels, mask)
  tied, through = _per_group(neg, group)
  # Each positive beats the negatives ranked below its tie group, half the tied.
  beaten = neg.sum() - through + 0.5 * tied
  return (pos * beaten).sum() / (pos.sum() * neg.sum())


def precision_recall_curve(scores, labels, mask=None):
  """(precision, recall, thresholds, valid), N long, by descending threshold."""
  s, pos, neg, group, group_end = _ranked(scores, labels, mask)
  _, tp = _per_group(pos, group)
  _, fp = _per_group(neg, group)
  valid = group_end & ((pos + neg) > 0)
  return tp / jnp.maximum(tp + fp, 1e-12), tp / pos.sum(), s, valid


def average_precision(scores, labels, mask=None) -> jax.Array:
  """Σₙ (Rₙ − Rₙ₋₁) Pₙ over thresholds (scikit-learn's average_precision_score)."""
  precision, _, _, _ = precision_recall_curve(scores, labels, mask)
  _, pos, _, _, _ = _ranked(scores, labels, mask)
  return (pos * precision).sum() / pos.sum()


def roc_auc_ovr(probabilities, labels, mask=None, average: str = "macro"):
  """One-vs-rest ROC AUC over K classes: per class (K) and its average.

  ``average``: ``macro`` (plain mean) or ``weighted`` (by class prevalence), as
  scikit-learn's ``roc_auc_score(multi_class='ovr')``.
  """
  if average not in ("macro", "weighted"):
    raise ValueError(f"average={average!r}; allowed: 'macro', 'weighted'")
  k = probabilities.shape[-1]
  one_hot = jax.nn.one_hot(jnp.asarray(labels), k)
  per_class = jax.vmap(roc_auc, in_axes=(1, 1, None))(
      jnp.asarray(probabilities), one_hot, mask)
  if average == "macro":
    return per_class, per_class.mean()
  w = _weights(one_hot.shape[0], mask)
  prevalence = (one_hot * w[:, None]).sum(0)
  return per_class, (per_class * prevalence).sum() / prevalence.sum()
