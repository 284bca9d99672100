"""Train or evaluate a model from an ml_collections config.

  python -m cvx.main --config=configs/mnist_lenet.py --workdir=/tmp/cvx/mnist_lenet
  python -m cvx.main --config=configs/mnist_lenet.py:model=mlp --workdir=... \
      --config.optimizer.learning_rate=0.01
  python -m cvx.main --config=... --workdir=... --mode=eval

Rerunning the same command resumes from the newest checkpoint in the workdir.
"""
import sys

if __name__ == "__main__":  # before JAX loads: the restart replaces the process
  from cvx import huge_pages
  huge_pages.restart_with_huge_pages()

from absl import app, flags, logging
from ml_collections import config_flags

from cvx.data.sources import DatasetUnavailableError
from cvx.train import loop, parallel

# Errors that describe bad input or a failed run, reported in one line.
USER_ERRORS = (ValueError, TypeError, DatasetUnavailableError,
               FloatingPointError, FileNotFoundError)

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, optionally with ':args' for its get_config().",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, "
                               "metrics, TensorBoard events and summary.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"], "Train (and "
                          "evaluate), or only evaluate the best checkpoint.")
flags.mark_flags_as_required(["config", "workdir"])


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing with one-line errors for bad config files/overrides."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(f"error: {e}\nPass --helpfull for usage.")
  except (KeyError, AttributeError, TypeError, ValueError) as e:
    # e.g. a misspelled --config.optimizr.lr: ml_collections names the key and
    # its closest valid spelling.
    sys.exit(f"error: invalid config override: {_message(e)}")


def _message(error: BaseException) -> str:
  """The innermost plain-text message of a (possibly wrapped) KeyError."""
  while error.args and isinstance(error.args[0], BaseException):
    error = error.args[0]
  text = str(error.args[0]) if error.args else str(error)
  key, _, rest = text.partition("\n")
  return f"unknown field {key}. {rest}".strip() if rest else text


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:  # Orbax and TF are chatty at INFO.
    logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  parallel.initialize_distributed(config)
  try:
    if _MODE.value == "train":
      loop.train_and_evaluate(config, _WORKDIR.value)
    else:
      loop.evaluate(config, _WORKDIR.value)
  except USER_ERRORS as e:
    logging.info("Traceback of the error below:", exc_info=True)
    sys.exit(f"error: {e}\n(run with -v 1 for the traceback)")


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
