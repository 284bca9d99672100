"""MobileNet v1 (α = 0.5) on the embedded MNIST digits, upsampled to 64×64.

The two knobs of Howard et al. (2017): the width multiplier α
(``--config.model_kwargs.alpha``) and the resolution multiplier ρ, set here
through the input size (``--config.data.image_size='(64, 64)'``). Variants:
``configs/mnist_mobilenet.py:alpha=0.25,size=64``. ``get_sweep()`` is the
α × ρ grid; ``python -m cvx.summary mobilenet_v1 --input 64 --width 0.5``
prints the cost of each point. On a 2-core CPU the default reaches ≈ 95% test
accuracy in about 4 minutes; at 32×32 (a 1×1 last feature map) only ≈ 80%.
"""
import ml_collections

from cvx import config_lib as common


def get_config(arg=None):
  args = common.parse_args(arg, alpha="0.5", size="64")
  size = int(args["size"])
  config = common.base_config()
  config.dataset = "mnist5k"
  config.num_classes = 10
  config.model = "mobilenet_v1"
  config.model_kwargs = ml_collections.ConfigDict(dict(
      alpha=float(args["alpha"]), bn_momentum=0.9))  # Keras uses 0.99
  config.data.update(image_size=(size, size))
  config.augment = "affine"
  config.batch_size = 64
  config.num_epochs = 15.0
  config.label_smoothing = 0.1
  config.optimizer.update(name="adamw", learning_rate=2e-3, weight_decay=1e-4)
  config.schedule.update(name="warmup_cosine", warmup_epochs=1.0)
  return config


def get_sweep():
  """Width × resolution multipliers."""
  return common.product({
      "model_kwargs.alpha": [0.25, 0.5, 1.0],
      "data.image_size": [(32, 32), (64, 64)],
  })
