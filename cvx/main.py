"""Train or evaluate a model from an ml_collections config.

  python -m cvx.main --config=configs/mnist_lenet.py --workdir=/tmp/cvx/mnist_lenet
  python -m cvx.main --config=configs/mnist_lenet.py:model=mlp --workdir=... \
      --config.optimizer.learning_rate=0.01
  python -m cvx.main --config=... --workdir=... --mode=eval

Rerunning the same command resumes from the newest checkpoint in the workdir.
"""
from absl import app, flags, logging
from ml_collections import config_flags

from cvx.train import loop, parallel

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, optionally with ':args' for its get_config().",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, "
                               "metrics, TensorBoard events and summary.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"], "Train (and "
                          "evaluate), or only evaluate the best checkpoint.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:  # Orbax and TF are chatty at INFO.
    logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  parallel.initialize_distributed(config)
  if _MODE.value == "train":
    loop.train_and_evaluate(config, _WORKDIR.value)
  else:
    loop.evaluate(config, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
