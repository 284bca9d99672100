"""Print a model's per-layer table: shapes, parameters, multiply-adds, receptive field.

  python -m cvx.summary resnet50 --input 224
  python -m cvx.summary mobilenet_v1 --input 160 --width 0.5 --markdown
  python -m cvx.summary resnet50 --kwarg version=v1
  python -m cvx.summary lenet5 --input 28 --channels 1 --num_classes 10

Shapes only (``jax.eval_shape``): nothing is computed, any size is instant.
"""
import sys

from absl import app, flags, logging

from cvx import analysis, config_lib, models

_INPUT = flags.DEFINE_integer("input", 224, "Input height and width in pixels.")
_CHANNELS = flags.DEFINE_integer("channels", 3, "Input channels.")
_WIDTH = flags.DEFINE_float("width", None, "Width multiplier α (MobileNet's alpha).")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 1000, "Classes of the head.")
_KWARGS = flags.DEFINE_multi_string(
    "kwarg", [], "Extra model keyword KEY=VALUE (VALUE a Python literal, else a "
    "string), e.g. --kwarg version=v1.")
_MARKDOWN = flags.DEFINE_boolean("markdown", False, "Print a Markdown table.")


def model_kwargs() -> dict:
  """Keywords for ``models.create`` from --width and --kwarg."""
  kwargs = {} if _WIDTH.value is None else {"alpha": _WIDTH.value}
  return {**kwargs, **config_lib.parse_kwargs(_KWARGS.value)}


def main(argv):
  if len(argv) != 2:
    raise app.UsageError(f"expected one MODEL (one of: {', '.join(models.list_models())}), "
                         f"got {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:  # JAX logs missing backends at INFO.
    logging.set_verbosity(logging.WARNING)
  try:
    model = models.create(argv[1], num_classes=_NUM_CLASSES.value, **model_kwargs())
    result = analysis.summary(model, (_INPUT.value, _INPUT.value, _CHANNELS.value))
  except TypeError as e:
    hint = " (--width sets alpha, MobileNet's width multiplier)" if _WIDTH.value else ""
    sys.exit(f"error: {e}{hint}")
  except ValueError as e:
    sys.exit(f"error: {e}")
  print(result.to_markdown() if _MARKDOWN.value else result)


if __name__ == "__main__":
  app.run(main)
