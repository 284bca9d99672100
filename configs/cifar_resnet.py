"""ResNets on CIFAR-10/100: the CIFAR stem (one 3×3 conv, no pooling) on 32×32.

Recipe: SGD with Nesterov momentum 0.9, learning rate 0.1 at batch 128 with a
cosine decay over 200 epochs, weight decay 5e-4, random crop (4-pixel reflect
pad) and horizontal flip, per-channel standardization. Variants:
``configs/cifar_resnet.py:model=resnet50,dataset=cifar100``; ``model`` is any
``resnet*`` in the registry, including the ``*_plain`` nets without shortcuts.
``get_sweep()`` is He et al.'s plain-vs-residual depth ablation.

The dataset must be prepared in the tfds data dir (``tfds build cifar10
--file_format=array_record``); ``dataset=folder:/root`` trains on an image folder.
"""
import ml_collections

from cvx import config_lib as common

NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
# Per-channel mean and std of the CIFAR-10 training images, in [0, 1] units.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def get_config(arg=None):
  args = common.parse_args(arg, model="resnet18", dataset="cifar10")
  if not args["model"].startswith("resnet"):
    raise ValueError(f"configs/cifar_resnet.py: model={args['model']!r}; expected a "
                     f"resnet* model (cvx.models.list_models())")
  config = common.base_config()
  config.dataset = args["dataset"]
  config.num_classes = NUM_CLASSES.get(args["dataset"], 10)
  config.model = args["model"]
  config.model_kwargs = ml_collections.ConfigDict(dict(stem="cifar"))
  config.data.update(normalize="standardize", mean=CIFAR_MEAN, std=CIFAR_STD)
  config.augment = "flip,crop"
  config.batch_size = 128
  config.num_epochs = 200.0
  config.optimizer.update(name="nesterov", learning_rate=0.1, momentum=0.9,
                          weight_decay=5e-4)
  config.schedule.update(name="cosine")
  config.log_every_steps = 100
  config.checkpoint_every_steps = 2000
  return config


def get_sweep():
  """Plain vs residual at two depths (He et al. 2016, Fig. 6)."""
  return common.product({
      "model": ["resnet18_plain", "resnet18", "resnet34_plain", "resnet34"],
  })
