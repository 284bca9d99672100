"""Transfer between the halves of the embedded MNIST (experiments/transfer_table.py).

``:stage=pretrain``: LeNet-5 with BatchNorm on digits 0–4 (2,000 training
digits, 10 epochs). ``:stage=target`` (default): digits 5–9 relabelled 0–4
with ``data.examples_per_class`` training digits each (default 10, drawn per
seed), 200 steps of 25 and a new head; start from a pretraining run with
``--config.init_from=WORKDIR`` and pick ``--config.transfer.freeze`` (and
``transfer.backbone_lr_scale``). Both use Adam at 1e-2 with cosine decay and
evaluate on the 100 test digits of each of their classes, once at the end.
"""
import ml_collections

from cvx import config_lib as common

STAGES = {
    "pretrain": dict(classes="0,1,2,3,4", examples_per_class=0),
    "target": dict(classes="5,6,7,8,9", examples_per_class=10),
}


def get_config(arg=None):
  args = common.parse_args(arg, stage="target")
  if args["stage"] not in STAGES:
    raise ValueError(f"configs/mnist_transfer.py: stage={args['stage']!r}; "
                     f"allowed: {sorted(STAGES)}")
  config = common.base_config()
  config.dataset = "mnist5k"
  config.model = "lenet5"
  config.model_kwargs = ml_collections.ConfigDict(dict(batch_norm=True))
  config.num_classes = 5
  config.data.update(**STAGES[args["stage"]])
  config.transfer.reset_head = True  # Digits 5–9 reuse labels 0–4: a new head.
  config.optimizer.update(name="adam", learning_rate=1e-2)
  config.schedule.name = "cosine"
  if args["stage"] == "pretrain":
    config.batch_size, config.num_epochs = 64, 10.0
  else:
    config.batch_size, config.num_train_steps = 25, 200
  config.eval_every_epochs = 1e6  # Only at the end.
  config.checkpoint_every_steps = 10**6  # Only at the end.
  return config
