"""The training loop: data → model → task → step → checkpoints and writers.

``train_and_evaluate(config, workdir)`` trains (resuming from the newest
checkpoint in ``workdir``, else starting from ``init_from`` when set; the
layers ``transfer.freeze`` names stay frozen), evaluates every
``eval_every_epochs``, keeps the best checkpoint, stops early or on SIGTERM
after saving, and writes ``summary.json``. ``evaluate(config, workdir)`` restores the best (else newest)
checkpoint and writes an evaluation report.
"""
import dataclasses
import json
import math
import os
import signal
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from tqdm import tqdm

from cvx import augment, models, plots, tasks
from cvx.data import pipeline, sources, subset
from cvx.explain import cam, overlay, visualize
from cvx.train import checkpoint, optim, parallel, step as step_lib
from cvx.train import state as state_lib
from cvx.train.writers import MetricWriter
from cvx.transfer import freeze, pretrained


@dataclasses.dataclass
class Run:
  """Everything built from the config before the first step."""
  config: ml_collections.ConfigDict
  workdir: str
  train_src: sources.Source
  eval_src: sources.Source
  model: object
  task: object
  par: object
  sampler: pipeline.Sampler
  total_steps: int
  tx: object
  augment_fn: object
  state: object
  plan: freeze.Plan


def _resolved(config: ml_collections.ConfigDict, workdir: str) -> ml_collections.ConfigDict:
  """``config``, or a copy with ``data.normalize='init_from'`` replaced by the
  normalization ``config.init_from``'s weights expect (a run that resumes
  keeps the one its workdir recorded)."""
  if config.data.normalize != "init_from":
    return config
  try:
    normalization = pretrained.normalization(workdir)
  except FileNotFoundError:
    if not config.init_from:
      raise ValueError("data.normalize='init_from' needs config.init_from") from None
    normalization = pretrained.normalization(config.init_from)
  config = config.copy_and_resolve_references()
  config.data.update(normalization)
  return config


def setup(config: ml_collections.ConfigDict, workdir: str) -> Run:
  """Loads data, builds model/task/optimizer and the initial (or restored)
  state; ``run.config`` is ``config`` with ``data.normalize`` resolved."""
  config = _resolved(config, workdir)
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2, sort_keys=True))
  load = lambda split: sources.load(config.dataset, split, config.data_dir,
                                    config.data.cache, config.data.image_size,
                                    config.data.workers)
  train_src = subset.select(load(config.train_split), config.data.classes,
                            config.data.examples_per_class, config.seed)
  eval_src = subset.select(load(config.eval_split), config.data.classes)
  if train_src.num_classes != config.num_classes:
    raise ValueError(f"config.num_classes={config.num_classes} but dataset "
                     f"{config.dataset!r} has {train_src.num_classes} classes")
  image_shape = _model_input_shape(config, train_src)
  if _model_input_shape(config, eval_src) != image_shape:
    raise ValueError(f"{config.eval_split!r} images {eval_src.image_shape} differ "
                     f"from {config.train_split!r} images {train_src.image_shape}")
  model = models.create(config.model, num_classes=config.num_classes,
                        dtype=jnp.dtype(config.model_dtype), **config.model_kwargs)
  par = parallel.create(config.parallel)
  if par.name == "pmap" and "bn_axis_name" in {f.name for f in dataclasses.fields(model)}:
    model = model.clone(bn_axis_name=parallel.AXIS)
  _check_model_input(config.model, model, image_shape)
  task = tasks.create(config.task, num_classes=config.num_classes,
                      label_smoothing=config.label_smoothing,
                      aux_loss_weight=config.aux_loss_weight)
  sampler = pipeline.Sampler(len(train_src), config.batch_size, config.seed)
  total_steps = (config.num_train_steps if config.num_train_steps > 0 else
                 max(1, round(config.num_epochs * sampler.steps_per_epoch)))
  schedule = optim.make_schedule(config, sampler.steps_per_epoch, total_steps)
  t = config.transfer
  plan = freeze.make_plan(model, image_shape, t.freeze, t.backbone_lr_scale,
                          t.layer_decay)
  tx = optim.make_optimizer(config, schedule, plan)
  augment_fn = augment.build(config.augment)
  state = par.init_state(lambda: state_lib.create(model, tx, image_shape, config.seed))
  return Run(config, workdir, train_src, eval_src, model, task, par, sampler,
             total_steps, tx, augment_fn, state, plan)


def _model_input_shape(config, source) -> tuple[int, ...]:
  if config.data.image_size is None:
    return tuple(source.image_shape)
  return (*config.data.image_size, source.image_shape[-1])


def _check_model_input(name: str, model, image_shape) -> None:
  """Traces init once (no compilation) so a bad input shape fails early."""
  try:
    jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                      jnp.zeros((1, *image_shape)), train=False))
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"model {name!r} cannot take images of shape {image_shape} "
                     f"(H, W, C): {type(e).__name__}: {e}") from None


def _say(message: str) -> None:
  """Logs ``message`` and prints it on process 0 (visible at any verbosity)."""
  logging.info(message)
  if jax.process_index() == 0:
    print(message, flush=True)


class _Preemption:
  """Set by SIGTERM (single process) or JAX's preemption sync (multi-host)."""

  def __init__(self):
    self.requested = False
    if jax.process_count() == 1:
      signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def reached(self, step: int) -> bool:
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      return multihost_utils.reached_preemption_sync_point(step)
    return self.requested


def _first_nonfinite(pending: list[tuple[int, dict]]) -> tuple[int, float] | None:
  for step, metrics in pending:
    loss = float(metrics["loss"])
    if not math.isfinite(loss):
      return step, loss
  return None


@jax.jit
def _all_finite(tree) -> jax.Array:
  """True iff no floating leaf of ``tree`` holds a NaN or ±inf."""
  checks = [jnp.isfinite(x).all() for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.stack(checks).all() if checks else jnp.asarray(True)


def _mean_metrics(pending) -> dict:
  return {k: float(np.mean([m[k] for _, m in pending])) for k in pending[0][1]}


def _eval_batches(run: Run):
  """The eval split once, prefetched onto the devices (see pipeline.eval_batches)."""
  return pipeline.prefetch(
      pipeline.eval_batches(run.eval_src, _eval_batch_size(run.config),
                            workers=run.config.data.workers),
      run.par.put_batch, run.config.data.prefetch)


def run_eval(run: Run, state, eval_step) -> tuple[dict, np.ndarray]:
  """Metrics over the whole eval split (each example once) and the confusion."""
  total = None
  for batch in _eval_batches(run):
    sums = run.par.metrics(eval_step(state, batch))
    total = sums if total is None else jax.tree.map(jnp.add, total, sums)
  total = jax.device_get(total)
  return run.task.finalize(total), np.asarray(total["confusion"])


def _eval_batch_size(config) -> int:
  """``eval_batch_size`` rounded up to a multiple of the devices (the padding
  rows are masked out, so this changes no metric)."""
  devices = jax.device_count()
  return -(-config.eval_batch_size // devices) * devices


def _improved(value: float, best: float | None, mode: str) -> bool:
  if best is None:
    return True
  return value > best if mode == "max" else value < best


class _Throughput:
  """Training images/s: from the end of the first (compiling) step, with
  evaluation time left out."""

  def __init__(self):
    self.images, self.start, self.paused = 0, None, 0.0

  def step_done(self, batch_size: int, metrics) -> None:
    if self.start is None:
      jax.block_until_ready(metrics)
      self.start = time.time()
    else:
      self.images += batch_size

  def exclude(self, seconds: float) -> None:
    self.paused += seconds

  @property
  def seconds(self) -> float:
    return 0.0 if self.start is None else time.time() - self.start - self.paused

  @property
  def rate(self) -> float | None:
    return self.images / self.seconds if self.seconds > 0 else None


def _resume(run: Run, ckpts: checkpoint.Checkpoints):
  """(state, meta, start step) from the newest checkpoint, else the fresh state
  (initialised from ``init_from`` when set)."""
  meta = {"best_metric": None, "best_step": None, "evals_without_improvement": 0,
          "stopped_early": False}
  state = run.state
  restored = ckpts.restore(run.par.abstract_state(state))
  if restored is not None:
    state, meta = run.par.device_state(restored[0]), restored[1]
  elif run.config.init_from:
    state = run.par.device_state(_init_from(run, run.par.host_state(state)))
  start_step = int(jax.device_get(run.par.host_state(state).step))
  if restored is not None:
    _say(f"Resumed from step {start_step} (checkpoint in {run.workdir}/checkpoints).")
  return state, meta, start_step


def _init_from(run: Run, state):
  """``state`` with params and batch_stats from ``config.init_from``."""
  fresh = {"params": state.params, "batch_stats": state.batch_stats}
  variables, report = pretrained.load(run.config.init_from, fresh, run.config.model,
                                      run.config.transfer.reset_head)
  _say(report)
  return state.replace(params=variables["params"], batch_stats=variables["batch_stats"],
                       opt_state=run.tx.init(variables["params"]))


def _track_best(run: Run, ckpts, state, step: int, metrics: dict, meta: dict) -> None:
  """Saves the best checkpoint and updates the early-stopping counters."""
  cfg = run.config
  if _improved(metrics[cfg.best_metric], meta["best_metric"], cfg.best_mode):
    meta.update(best_metric=metrics[cfg.best_metric], best_step=step,
                evals_without_improvement=0)
    ckpts.save_best(step, run.par.host_state(state), meta)
  else:
    meta["evals_without_improvement"] += 1
  patience = cfg.early_stopping_patience
  if patience and meta["evals_without_improvement"] >= patience:
    meta["stopped_early"] = True
    _say(f"Early stop at step {step}: no {cfg.best_metric} improvement in "
         f"{patience} evals.")


def _write_summary(run: Run, state, step: int, meta: dict, last_eval: dict,
                   confusion, throughput: _Throughput, start_time: float) -> dict:
  cfg = run.config
  params = run.par.host_state(state).params
  summary = {
      "model": cfg.model, "dataset": cfg.dataset, "steps": step,
      "epochs": step / run.sampler.steps_per_epoch,
      "stopped_early": meta["stopped_early"], "final": last_eval,
      "best": {cfg.best_metric: meta["best_metric"], "step": meta["best_step"]},
      "params": int(sum(np.size(p) for p in jax.tree.leaves(params))),
      "trainable_params": run.plan.count_trainable(params),
      "wall_time_s": time.time() - start_time,
      "train_time_s": throughput.seconds, "images_per_s": throughput.rate,
  }
  if jax.process_index() == 0:
    with open(os.path.join(run.workdir, "summary.json"), "w") as f:
      json.dump(summary, f, indent=2)
    plots.confusion_matrix(confusion, os.path.join(run.workdir, "confusion_matrix.png"))
  return summary


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains to ``total_steps`` (or an early stop) and returns the summary."""
  start_time = time.time()
  run = setup(config, workdir)
  cfg, par = run.config, run.par
  ckpts = checkpoint.Checkpoints(workdir, cfg.keep_checkpoints)
  state, meta, step = _resume(run, ckpts)
  axis = parallel.AXIS if par.name == "pmap" else None
  train_step = par.compile_train(step_lib.make_train_step(
      run.model, run.task, run.tx, cfg, run.augment_fn, axis, run.plan.frozen))
  eval_step = par.compile_eval(step_lib.make_eval_step(run.model, run.task, cfg, axis))
  writer, preemption, throughput = MetricWriter(workdir), _Preemption(), _Throughput()
  spe = run.sampler.steps_per_epoch
  eval_every = max(1, round(cfg.eval_every_epochs * spe))
  batches = pipeline.prefetch(
      pipeline.train_batches(run.train_src, run.sampler, step, run.total_steps,
                             cfg.data.workers),
      par.put_batch, cfg.data.prefetch)
  bar = tqdm(total=run.total_steps, initial=step, unit="step", dynamic_ncols=True,
             disable=not cfg.progress_bar or jax.process_index() != 0)
  pending, last_eval, confusion = [], None, None

  def stopped(reason: str) -> FloatingPointError:
    kept = ckpts.latest_step()
    return FloatingPointError(
        f"{reason}; training stopped. " + (
            "No checkpoint was saved." if kept is None else
            f"The last good checkpoint (step {kept}) is kept in {workdir}/checkpoints."))

  def flush():
    """Syncs pending step metrics; stops on a non-finite loss."""
    host = [(s, jax.device_get(m)) for s, m in pending]
    pending.clear()
    bad = _first_nonfinite(host)
    if bad is not None:
      raise stopped(f"loss is {bad[1]} at step {bad[0]}")
    return host

  def checked_state():
    """This process's copy of the state (what a checkpoint saves), after
    stopping if it is non-finite: a step's loss is that of the parameters it
    started from, so it can be finite while the update it applies overflows."""
    flush()
    host = par.host_state(state)
    if not bool(_all_finite(host)):
      raise stopped(f"non-finite model state (parameters, optimizer or BatchNorm "
                    f"statistics) at step {step}, whose loss was finite")
    return host

  for batch in batches:
    state, metrics = train_step(state, batch)
    step += 1
    pending.append((step, par.metrics(metrics)))
    throughput.step_done(cfg.batch_size, metrics)
    bar.update(1)
    is_last = step == run.total_steps
    if step % cfg.log_every_steps == 0 or is_last:
      train_metrics = _mean_metrics(flush())
      writer.write(step, "train", {**train_metrics, "epoch": step / spe,
                                   "images_per_s": throughput.rate or 0.0})
      bar.set_postfix(loss=f"{train_metrics['loss']:.4f}",
                      img_s=f"{throughput.rate or 0:.0f}")
    if step % eval_every == 0 or is_last:
      checked_state()  # evaluate finite parameters only
      t_eval = time.time()
      last_eval, confusion = run_eval(run, state, eval_step)
      throughput.exclude(time.time() - t_eval)
      writer.write(step, cfg.eval_split, last_eval)
      _track_best(run, ckpts, state, step, last_eval, meta)
    preempted = not meta["stopped_early"] and preemption.reached(step)
    ending = is_last or meta["stopped_early"] or preempted
    if step % cfg.checkpoint_every_steps == 0 or ending:
      ckpts.save(step, checked_state(), meta)
    if preempted:
      _say(f"SIGTERM: saved a checkpoint at step {step}; exiting.")
      ckpts.close()
      raise SystemExit(143)
    if meta["stopped_early"]:
      break
  bar.close()
  if last_eval is None:  # Resumed at the very end: evaluate once for the summary.
    last_eval, confusion = run_eval(run, state, eval_step)
  summary = _write_summary(run, state, step, meta, last_eval, confusion, throughput,
                           start_time)
  writer.close()
  ckpts.close()
  return summary


def restore(config: ml_collections.ConfigDict, workdir: str,
            best: bool = True) -> tuple[Run, object, str]:
  """(run, state, "best"|"latest"): the best (else newest) checkpoint, placed
  for ``run.par``; for evaluation, inspection and notebooks."""
  run = setup(config, workdir)
  ckpts = checkpoint.Checkpoints(workdir, config.keep_checkpoints)
  which = "best" if best and ckpts.latest_step(best=True) is not None else "latest"
  restored = ckpts.restore(run.par.abstract_state(run.state), best=which == "best")
  ckpts.close()
  if restored is None:
    raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints to restore; "
                            f"train first with --mode=train")
  return run, run.par.device_state(restored[0]), which


def collect_outputs(run: Run, state) -> dict[str, np.ndarray]:
  """Logits, labels and mask of every eval row (padding included), as numpy."""
  step = run.par.compile_eval(step_lib.make_outputs_step(run.model, run.config))
  parts = [run.par.rows(step(state, batch)) for batch in _eval_batches(run)]
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _gradcam_grid(run: Run, state, predicted, labels, mask, path: str,
                  per_kind: int = 8, layer: str = "last_conv") -> None:
  """Grad-CAM of the predicted class on the first correct and wrong examples."""
  host = run.par.host_state(state)
  variables = jax.device_get(step_lib.inference_variables(host))
  probe = run.eval_src.read(np.arange(1))["image"]
  _, taps = run.model.apply(variables, step_lib.eval_inputs(probe, run.config),
                            train=False, mutable=["perturbations"])
  if layer not in taps.get("perturbations", {}):
    logging.info("No Grad-CAM grid: model %s taps no %r.", run.config.model, layer)
    return
  real = np.flatnonzero(mask)
  right = real[predicted[real] == labels[real]][:per_kind]
  wrong = real[predicted[real] != labels[real]][:per_kind]
  index = np.concatenate([right, wrong])
  images = run.eval_src.read(index)["image"]
  maps = cam.grad_cam(run.model, variables, step_lib.eval_inputs(images, run.config),
                      layer=layer, target=predicted[index])
  tiles = list(overlay.overlays(images, maps))
  titles = [f"{'✓' if i in right else '✗'} {labels[i]}→{predicted[i]}" for i in index]
  plots.image_grid(tiles, titles, path,
                   title=f"Grad-CAM ({layer}) of the predicted class: "
                         f"{len(right)} correct, {len(wrong)} wrong")


def _filters_and_feature_maps(run: Run, state, workdir: str) -> None:
  """``filters.png`` (the first conv layer's kernels) and
  ``feature_maps_<name>.png`` (each tapped conv feature of the first eval image)."""
  variables = jax.device_get(step_lib.inference_variables(run.par.host_state(state)))
  kernels = [k for k in jax.tree.leaves(variables["params"]) if np.ndim(k) == 4]
  if kernels:
    tiles = visualize.filter_tiles(kernels[0])
    plots.image_grid(tiles, [str(i) for i in range(len(tiles))],
                     os.path.join(workdir, "filters.png"),
                     title=f"first conv layer: {len(tiles)} filters {kernels[0].shape[:3]}")
  image = run.eval_src.read(np.arange(1))["image"]
  _, features = run.model.apply(variables, step_lib.eval_inputs(image, run.config),
                                train=False)
  written = []
  for name, feature in features.items():
    feature = np.asarray(feature)
    if feature.ndim != 4 or any(np.array_equal(feature, w) for w in written):
      continue  # Not a map, or an alias of one already drawn (last_conv).
    written.append(feature)
    tiles = visualize.feature_map_tiles(feature[0], limit=32)
    plots.image_grid(tiles, [f"{name}[{c}]" for c in range(len(tiles))],
                     os.path.join(workdir, f"feature_maps_{name}.png"),
                     title=f"{name} of the first {run.config.eval_split} image")


def evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Restores the best (else newest) checkpoint; writes ``eval_metrics.json``
  (metrics, per-class values, confusion matrix), ``confusion_matrix.png``,
  ``roc_curves.png``, ``pr_curves.png``, ``gradcam_grid.png`` (correct and wrong examples),
  ``filters.png`` and ``feature_maps_<feature>.png``."""
  run, state, which = restore(config, workdir)
  outputs = collect_outputs(run, state)
  logits, labels, mask = outputs["logits"], outputs["label"], outputs["mask"]
  report, curves = run.task.report(logits, labels, mask)
  step = int(jax.device_get(run.par.host_state(state).step))
  report = {"split": config.eval_split, "step": step, "checkpoint": which,
            "count": int(mask.sum()), **report}
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "eval_metrics.json"), "w") as f:
      json.dump(report, f, indent=2)
    plots.confusion_matrix(np.array(report["confusion_matrix"]),
                           os.path.join(workdir, "confusion_matrix.png"))
    plots.roc_curves(curves["roc"], report["per_class"]["roc_auc"],
                     os.path.join(workdir, "roc_curves.png"))
    plots.pr_curves(curves["pr"], report["per_class"]["average_precision"],
                    os.path.join(workdir, "pr_curves.png"))
    _gradcam_grid(run, state, logits.argmax(-1), labels, mask,
                  os.path.join(workdir, "gradcam_grid.png"))
    _filters_and_feature_maps(run, state, workdir)
  writer = MetricWriter(workdir)
  writer.write(step, f"eval_{config.eval_split}",
               {k: v for k, v in report.items() if isinstance(v, float)})
  writer.close()
  return report
