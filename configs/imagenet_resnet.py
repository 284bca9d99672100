"""ResNet-50 (v1.5) on ImageNet-1k: the large-batch recipe of Goyal et al. (2017).

Batch 1024 over all devices and hosts; SGD momentum 0.9 with the learning rate
0.1 × batch / 256 warmed up linearly for 5 epochs, then cosine-decayed over 90
epochs; weight decay 1e-4 on weights; label smoothing 0.1; bfloat16 compute.
Training crops: Inception-style random resized crop and horizontal flip.
Variants: ``configs/imagenet_resnet.py:model=resnet18,batch=256``.

Images are read example by example from the prepared ``imagenet2012`` tfds
dataset (``tfds build imagenet2012 --file_format=array_record`` after placing
the archives in the manual dir) and resized to 224×224 on read without keeping
the aspect ratio; the usual resize-256 / centre-crop-224 evaluation is not
implemented, so expect top-1 slightly below the published 76.1%.
"""
from cvx import config_lib as common

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def get_config(arg=None):
  args = common.parse_args(arg, model="resnet50", batch="1024")
  if not args["model"].startswith("resnet"):
    raise ValueError(f"configs/imagenet_resnet.py: model={args['model']!r}; expected "
                     f"a resnet* model (cvx.models.list_models())")
  batch = int(args["batch"])
  config = common.base_config()
  config.dataset = "imagenet2012"
  config.eval_split = "validation"
  config.num_classes = 1000
  config.model = args["model"]
  config.model_dtype = "bfloat16"
  config.data.update(normalize="standardize", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                     image_size=(224, 224), cache=False, prefetch=4)
  config.augment = "resized_crop,flip"
  config.batch_size = batch
  config.eval_batch_size = 1000
  config.num_epochs = 90.0
  config.label_smoothing = 0.1
  config.optimizer.update(name="momentum", learning_rate=0.1 * batch / 256,
                          momentum=0.9, weight_decay=1e-4)
  config.schedule.update(name="warmup_cosine", warmup_epochs=5.0)
  config.best_metric = "accuracy"
  config.log_every_steps = 100
  config.checkpoint_every_steps = 1000
  config.progress_bar = False
  return config
