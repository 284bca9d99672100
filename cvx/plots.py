"""PNG figures written into workdirs.

Uses matplotlib's object API (``Figure``) rather than pyplot, so it needs no
GUI backend and leaves a notebook's pyplot state alone.
"""
import matplotlib
import numpy as np
from matplotlib.figure import Figure


def confusion_matrix(matrix: np.ndarray, path: str,
                     class_names: list[str] | None = None) -> None:
  """K×K counts (rows: true class, columns: predicted) as an annotated heatmap."""
  k = matrix.shape[0]
  names = class_names or [str(i) for i in range(k)]
  size = max(4.0, 0.45 * k + 2)
  fig = Figure(figsize=(size, size))
  ax = fig.subplots()
  ax.imshow(matrix, cmap="Blues")
  ax.set(xticks=range(k), yticks=range(k), xticklabels=names, yticklabels=names,
         xlabel="predicted", ylabel="true",
         title=f"accuracy {np.trace(matrix) / max(matrix.sum(), 1):.4f}")
  if k <= 20:
    threshold = matrix.max() / 2
    for i in range(k):
      for j in range(k):
        ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", fontsize=8,
                color="white" if matrix[i, j] > threshold else "black")
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def lines(series: dict[str, tuple[list, list]], path: str, xlabel: str,
          ylabel: str, title: str = "") -> None:
  """One line per name: ``{name: (xs, ys)}``."""
  fig = Figure(figsize=(6, 4))
  ax = fig.subplots()
  for name, (xs, ys) in series.items():
    ax.plot(xs, ys, marker="o", markersize=3, label=name)
  ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
  ax.grid(alpha=0.3)
  if len(series) > 1:
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def roc_curves(curves: dict, aucs: list[float], path: str) -> None:
  """One-vs-rest ROC curves ``{class: (fpr, tpr)}`` with their AUCs."""
  _class_curves(curves, [f"AUC {a:.4f}" for a in aucs], path, "ROC, one vs rest",
                "false positive rate", "true positive rate", diagonal=True)


def pr_curves(curves: dict, average_precisions: list[float], path: str) -> None:
  """One-vs-rest precision-recall curves ``{class: (recall, precision)}``."""
  _class_curves(curves, [f"AP {a:.4f}" for a in average_precisions], path,
                "precision-recall, one vs rest", "recall", "precision")


def _class_curves(curves, notes, path, title, xlabel, ylabel, diagonal=False):
  fig = Figure(figsize=(5.5, 5))
  ax = fig.subplots()
  for c, (xs, ys) in curves.items():
    ax.plot(xs, ys, linewidth=1, label=f"{c} ({notes[c]})")
  if diagonal:
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
  ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(0, 1), ylim=(0, 1.01))
  if len(curves) <= 20:
    ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.4,
            colormap: str = "jet") -> np.ndarray:
  """Colour-mapped ``heat`` (H×W in [0, 1]) over ``image`` (H×W[×C], uint8 or
  float in [0, 1]) → H×W×3 uint8."""
  base = np.asarray(image, np.float32)
  base = base / 255.0 if np.asarray(image).dtype == np.uint8 else base
  if base.ndim == 2 or base.shape[-1] == 1:
    base = np.repeat(base.reshape(base.shape[:2] + (1,)), 3, axis=-1)
  colours = matplotlib.colormaps[colormap](np.clip(heat, 0, 1))[..., :3]
  return np.round(255 * ((1 - alpha) * base + alpha * colours)).astype(np.uint8)


def image_grid(images: list[np.ndarray], titles: list[str], path: str,
               columns: int = 8, title: str = "") -> None:
  """Images (H×W×3 uint8) in a grid with a title each, saved as PNG."""
  rows = max(1, -(-len(images) // columns))
  fig = Figure(figsize=(1.6 * columns, 1.8 * rows + 0.4))
  axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
  for ax in axes:
    ax.axis("off")
  for ax, image, text in zip(axes, images, titles):
    ax.imshow(image)
    ax.set_title(text, fontsize=8)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
