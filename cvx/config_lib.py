"""Helpers for ``configs/*.py``: the base config, variant args and sweeps.

Every field a run reads is declared here, so a misspelled command-line override
fails at once (``--config.optimzer.lr``) instead of being ignored.
"""
import ast
import itertools
from typing import Any

import ml_collections
from ml_collections import config_dict


def parse_args(arg: str | None, **defaults) -> dict[str, str]:
  """Parses ``"k=v,k2=v2"`` (the text after ``:`` in ``--config=FILE:ARG``).

  Keys must be among ``defaults``; values stay strings.
  """
  args = dict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, sep, value = item.partition("=")
    if not sep or key not in defaults:
      raise ValueError(f"config argument {item!r}: expected key=value with key "
                       f"in {sorted(defaults)}")
    args[key] = value
  return args


def parse_kwargs(items) -> dict[str, Any]:
  """``['k=v', ...]`` (a CLI's ``--kwarg``) → keywords; values parsed as Python
  literals when possible, else kept as strings."""
  kwargs = {}
  for item in items:
    key, sep, value = item.partition("=")
    if not sep or not key:
      raise ValueError(f"--kwarg must be KEY=VALUE, got {item!r}")
    try:
      kwargs[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      kwargs[key] = value
  return kwargs


def product(axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
  """Cartesian product of override axes: ``{"a": [1, 2], "b": [3]}`` → 2 points."""
  keys = list(axes)
  return [dict(zip(keys, values)) for values in itertools.product(*axes.values())]


def base_config() -> ml_collections.ConfigDict:
  """Defaults shared by all configs; a config file overrides what it needs."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  # Data: a tfds name (builders in cvx.data.builders or the tfds catalog) or
  # "folder:/path/to/root" (one sub-folder of images per class).
  c.dataset = "mnist5k"
  c.data_dir = config_dict.placeholder(str)  # tfds data_dir; default $CVX_DATA_DIR or ~/tensorflow_datasets
  c.train_split = "train"
  c.eval_split = "test"
  c.data = ml_collections.ConfigDict(dict(
      # scale | standardize | minmax | init_from (what config.init_from's source
      # expects: a converted model's preprocessing or the source run's data fields).
      normalize="scale",
      mean=config_dict.placeholder(tuple),  # standardize: per channel, in [0, 1] units
      std=config_dict.placeholder(tuple),
      channel_order="RGB",  # standardize: "BGR" reverses channels first (Keras 'caffe')
      image_size=config_dict.placeholder(tuple),  # (H, W) to resize to
      cache=True,  # decode the split into memory once (small datasets)
      prefetch=2,  # batches prepared ahead on a background thread
      # Processes decoding stored examples: per batch when cache=False, once
      # for the whole split when cache=True (0 = the prefetch/main thread).
      workers=0,
      # Subsets (cvx.data.subset.select): "5,6,7" keeps those labels in both
      # splits, relabelled 0, 1, 2 in the listed order ("" = all classes);
      # examples_per_class=N > 0 keeps N training examples of each class, the
      # first N of a per-(seed, class) permutation (nested: N=10 ⊂ N=50).
      classes="",
      examples_per_class=0,
  ))
  c.augment = ""  # comma-separated cvx.augment names, e.g. "flip,crop,jitter"
  # Model.
  c.model = "lenet5"
  c.num_classes = 10
  c.model_kwargs = ml_collections.ConfigDict()
  c.model_dtype = "float32"  # compute dtype; "bfloat16" for mixed precision
  # Transfer (cvx.transfer): start from the params/batch_stats in init_from (a
  # converted model's directory or a cvx workdir; the head is re-initialised
  # when num_classes differs or reset_head is set), unless the workdir already
  # has checkpoints.
  c.init_from = config_dict.placeholder(str)
  c.transfer = ml_collections.ConfigDict(dict(
      # none | backbone (all but the head) | a fraction "0.5" of the layers in
      # forward order | comma-separated layer-name globs "conv1,stage1_*".
      freeze="none",
      backbone_lr_scale=1.0,  # learning rate of the non-head layers ÷ the head's
      layer_decay=1.0,  # lr × layer_decay^(layers between this one and the top)
      reset_head=False,  # re-initialise the head even when its shape matches
  ))
  # Task.
  c.task = "classification"
  c.label_smoothing = 0.0
  c.aux_loss_weight = 0.3  # auxiliary classifier heads (GoogLeNet)
  # Optimisation.
  c.batch_size = 128  # global, over all devices and processes
  c.eval_batch_size = 500  # rounded up to a multiple of the device count
  c.num_epochs = 10.0
  c.num_train_steps = -1  # > 0 overrides num_epochs
  c.optimizer = ml_collections.ConfigDict(dict(
      name="sgd",  # sgd | momentum | nesterov | adam | adamw | rmsprop
      learning_rate=0.1, momentum=0.9, weight_decay=0.0,
      b1=0.9, b2=0.999, eps=1e-8, decay=0.9))
  c.schedule = ml_collections.ConfigDict(dict(
      name="constant",  # constant | piecewise | exponential | cosine | warmup_cosine | onecycle
      warmup_epochs=0.0,
      boundaries_epochs=(), scales=(),  # piecewise: lr *= scale at each boundary
      decay_rate=0.1, decay_epochs=1.0,  # exponential
      end_value=0.0))
  c.grad_clip_norm = 0.0  # 0 = off
  c.regularization = ml_collections.ConfigDict(dict(l1=0.0, l2=0.0))  # both: elastic net
  # Bookkeeping.
  c.log_every_steps = 50
  c.eval_every_epochs = 1.0
  c.checkpoint_every_steps = 500
  c.keep_checkpoints = 3
  # The validation metric that picks the best checkpoint and drives early
  # stopping (after `early_stopping_patience` evals without improvement; 0 = off).
  c.best_metric = "accuracy"
  c.best_mode = "max"  # max | min
  c.early_stopping_patience = 0
  c.progress_bar = True
  # Parallelism: "jit" (Mesh + NamedSharding) or "pmap".
  c.parallel = "jit"
  c.distributed = ml_collections.ConfigDict(dict(
      coordinator_address=config_dict.placeholder(str),
      num_processes=config_dict.placeholder(int),
      process_id=config_dict.placeholder(int)))
  return c
