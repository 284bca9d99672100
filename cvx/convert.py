"""Import Keras-application or torchvision weights into a cvx checkpoint.

  python -m cvx.convert --source torchvision --model resnet50 --weights resnet50.pth --out DIR
  python -m cvx.convert --source keras --model resnet50 \\
      --weights resnet50_weights_tf_dim_ordering_tf_kernels.h5 --out DIR
  python -m cvx.convert --source keras --model mobilenet_v1 --weights mobilenet.keras --out DIR

``--weights`` is a file the user has downloaded (nothing is fetched): a
torch state dict (``torch.save(model.state_dict(), path)``, or torchvision's
published ``.pth``), a Keras ``.keras`` model, or a Keras ``.h5``
(whole model or weights of the application; ``--kwarg alpha=0.5`` for
MobileNet weights). ``--num_classes`` asserts the head size of the weights.

Output layout (what ``config.init_from=DIR`` restores):

- ``DIR/``: an orbax checkpoint written by ``orbax.checkpoint.StandardCheckpointer``
  whose PyTree is ``{'params': ..., 'batch_stats': ...}``, exactly the
  variables of ``cvx.models.create(model, num_classes=N, **model_kwargs)``
  (``batch_stats`` is ``{}`` for models without BatchNorm). Restore with
  ``ocp.StandardCheckpointer().restore(DIR)`` or
  ``cvx.transfer.restore_converted(DIR)``; a run with a different
  ``num_classes`` takes everything but the ``head``.
- ``DIR/cvx_model.json``: ``{"model": name, "model_kwargs": {...},
  "num_classes": N, "source": "keras" | "torchvision", "preprocessing":
  {"mode", "mean", "std", "channel_order"}}``: inputs are
  ``(x[..., ::-1 if BGR] − mean) / std`` for images x in [0, 1]
  (``cvx.transfer.Preprocessing``).
"""
import sys

from absl import app, flags, logging

from cvx import config_lib, transfer

SOURCES = ("keras", "torchvision")

_SOURCE = flags.DEFINE_string("source", None, f"Where the weights come from: {'|'.join(SOURCES)}.")
_MODEL = flags.DEFINE_string("model", None, "cvx model name, e.g. resnet50, mobilenet_v1.")
_WEIGHTS = flags.DEFINE_string("weights", None, "Downloaded weights file (.pth, .keras, .h5).")
_OUT = flags.DEFINE_string("out", None, "New (or empty) output directory.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", None,
                                    "Expected head size (default: the weights').")
_KWARGS = flags.DEFINE_multi_string(
    "kwarg", [], "Converter/model keyword KEY=VALUE (VALUE a Python literal, else a "
    "string), e.g. alpha=0.5 (Keras MobileNet .h5), transform_input=True (googlenet).")


def convert(source: str, model: str, weights: str, **kwargs) -> transfer.Converted:
  """Dispatches to ``from_keras``/``from_torchvision``."""
  if source not in SOURCES:
    raise ValueError(f"unknown source {source!r}; allowed: {', '.join(SOURCES)}")
  importer = transfer.from_keras if source == "keras" else transfer.from_torchvision
  return importer(model, weights, **kwargs)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:  # JAX logs missing backends at INFO.
    logging.set_verbosity(logging.WARNING)
  try:
    converted = convert(_SOURCE.value, _MODEL.value, _WEIGHTS.value, **config_lib.parse_kwargs(_KWARGS.value))
    if _NUM_CLASSES.value is not None and _NUM_CLASSES.value != converted.num_classes:
      raise ValueError(f"the weights have a {converted.num_classes}-class head, not "
                       f"--num_classes={_NUM_CLASSES.value} (training with config.init_from "
                       "replaces a head of another size)")
    transfer.save_converted(converted, _OUT.value)
  except (ValueError, TypeError, OSError) as e:
    sys.exit(f"error: {e}")
  print(f"wrote {_OUT.value}: {converted.model_name} {converted.model_kwargs}, "
        f"{converted.num_classes} classes, preprocessing {converted.preprocessing.mode!r}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["source", "model", "weights", "out"])
  app.run(main)
