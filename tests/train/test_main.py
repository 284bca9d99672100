"""``python -m cvx.main`` end to end: what lands in the workdir, eval, errors."""
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator

from tests.conftest import run_cvx_main
from tests.helpers import read_metrics, restore_params

FAST = ["--config.batch_size=32", "--config.num_train_steps=40",
        "--config.log_every_steps=10", "--config.eval_every_epochs=0.25",
        "--config.checkpoint_every_steps=20", "--config.augment=affine",
        "--config.schedule.warmup_epochs=0.05"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
  workdir = str(tmp_path_factory.mktemp("run"))
  run_cvx_main(data_dir, workdir, *FAST)
  return workdir


def test_workdir_holds_config_metrics_events_checkpoints_summary(trained):
  with open(os.path.join(trained, "config.json")) as f:
    config = json.load(f)
  assert config["batch_size"] == 32 and config["model"] == "lenet5"
  train = read_metrics(trained, "train")
  assert [r["step"] for r in train] == [10, 20, 30, 40]
  assert all({"loss", "accuracy", "images_per_s", "epoch"} <= set(r) for r in train)
  test = read_metrics(trained, "test")
  assert [r["step"] for r in test] == [31, 40]  # 125 steps/epoch × 0.25.
  assert all(r["count"] == 1000 for r in test)
  assert sorted(os.listdir(os.path.join(trained, "checkpoints", "latest"))) == ["20", "40"]
  with open(os.path.join(trained, "summary.json")) as f:
    summary = json.load(f)
  assert summary["steps"] == 40 and summary["params"] == 61706
  assert summary["final"] == {k: test[-1][k] for k in ("loss", "accuracy", "count")}
  assert summary["best"]["accuracy"] == max(r["accuracy"] for r in test)
  assert summary["images_per_s"] > 0 and summary["wall_time_s"] > 0


def test_tensorboard_reads_the_event_files(trained):
  acc = event_accumulator.EventAccumulator(os.path.join(trained, "tensorboard"))
  acc.Reload()
  assert {"train/loss", "test/accuracy"} <= set(acc.Tags()["scalars"])
  losses = acc.Scalars("train/loss")
  assert [e.step for e in losses] == [10, 20, 30, 40]
  want = [r["loss"] for r in read_metrics(trained, "train")]
  np.testing.assert_allclose([e.value for e in losses], want, rtol=1e-6)


def test_eval_mode_restores_the_best_checkpoint(trained, run_main):
  run_main(trained, *FAST, mode="eval")
  with open(os.path.join(trained, "eval_metrics.json")) as f:
    report = json.load(f)
  with open(os.path.join(trained, "summary.json")) as f:
    best = json.load(f)["best"]
  assert report["checkpoint"] == "best" and report["step"] == best["step"]
  assert report["accuracy"] == pytest.approx(best["accuracy"])
  confusion = np.array(report["confusion_matrix"])
  assert confusion.sum() == 1000 and confusion.sum(axis=1).tolist() == [100] * 10
  assert np.trace(confusion) == round(1000 * report["accuracy"])
  per_class = report["per_class"]
  np.testing.assert_allclose(report["macro_recall"], np.mean(per_class["recall"]),
                             rtol=1e-5)
  np.testing.assert_allclose(per_class["recall"], np.diag(confusion) / 100, rtol=1e-5)
  assert 0.5 < report["roc_auc_ovr_macro"] <= 1
  assert not os.path.exists(os.path.join(trained, "feature_maps_last_conv.png"))
  assert all(0 < ap <= 1 for ap in per_class["average_precision"])
  for png in ("confusion_matrix.png", "roc_curves.png", "pr_curves.png", "gradcam_grid.png",
              "filters.png", "feature_maps_stage1.png", "feature_maps_stage2.png"):
    assert Image.open(os.path.join(trained, png)).size[0] > 100


def test_eval_report_is_the_same_under_pmap_on_two_devices(trained, run_main,
                                                           tmp_path):
  reports = {}
  for mode, extra in (("jit", []), ("pmap", ["--config.parallel=pmap"])):
    workdir = tmp_path / mode  # Each on its own copy: tests may run in any order.
    shutil.copytree(trained, workdir)
    run_main(workdir, *FAST, *extra, mode="eval", devices=2)
    with open(workdir / "eval_metrics.json") as f:
      reports[mode] = json.load(f)
  assert reports["pmap"]["confusion_matrix"] == reports["jit"]["confusion_matrix"]
  assert reports["pmap"]["roc_auc_ovr_macro"] == pytest.approx(
      reports["jit"]["roc_auc_ovr_macro"], abs=1e-6)


def test_misspelled_override_names_the_closest_key(tmp_path, run_main):
  proc = run_main(tmp_path, "--config.optimizer.learnin_rate=0.1", check=False)
  assert proc.returncode != 0
  assert 'Did you mean "learning_rate"' in proc.stderr
  assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("override, message", [
    ("--config.model=lenet", "unknown model 'lenet'. Did you mean 'lenet5'? Available: alexnet,"),
    ("--config.dataset=mnist_5k", "unknown dataset 'mnist_5k'"),
    ("--config.dataset=digits8x8", "model 'lenet5' cannot take images of shape (8, 8, 1)"),
    ("--config.augment=flip,warp", "unknown augmentation(s) ['warp']"),
])
def test_bad_names_and_shapes_fail_before_training(tmp_path, run_main, override, message):
  proc = run_main(tmp_path, override, check=False)
  assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]
  assert not os.path.exists(os.path.join(tmp_path, "checkpoints"))


def test_nonfinite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path, run_main):
  # The learning rate grows 100× every 2 steps until the loss overflows.
  proc = run_main(tmp_path, "--config.batch_size=32", "--config.num_train_steps=100",
                  "--config.optimizer.name=sgd", "--config.optimizer.learning_rate=0.01",
                  "--config.schedule.name=exponential", "--config.schedule.decay_rate=100.",
                  "--config.schedule.decay_epochs=0.016", "--config.checkpoint_every_steps=2",
                  "--config.log_every_steps=1000", check=False)
  assert proc.returncode != 0
  # Either a loss overflows, or an update does first (the loss of its step,
  # computed before the update, is still finite): both stop before saving.
  message = proc.stderr[proc.stderr.index("error: "):]
  assert "loss is" in message or "non-finite model state" in message, message
  bad_step = int(message.split(" at step ")[1].split(";")[0].split(",")[0])
  kept = int(message.split("checkpoint (step ")[1].split(")")[0])
  assert 2 <= kept < bad_step < 100
  params = restore_params(tmp_path)
  assert all(np.isfinite(v).all() for v in params.values())
  assert max(int(s) for s in os.listdir(tmp_path / "checkpoints" / "latest")) == kept


def test_update_that_overflows_stops_before_its_state_is_saved(tmp_path, run_main):
  # RMSProp's first update is ±lr/√(1 − decay) ≈ ±3.2·lr per weight: past
  # float32's range, while the first loss (before the update) is finite.
  proc = run_main(tmp_path, "--config.batch_size=32", "--config.num_train_steps=10",
                  "--config.optimizer.name=rmsprop", "--config.optimizer.learning_rate=2e38",
                  "--config.schedule.name=constant", "--config.checkpoint_every_steps=1",
                  "--config.log_every_steps=1000", check=False)
  assert proc.returncode != 0
  assert ("error: non-finite model state (parameters, optimizer or BatchNorm statistics) "
          "at step 1, whose loss was finite; training stopped. No checkpoint was saved."
          in proc.stderr), proc.stderr[-2000:]
  assert not os.listdir(tmp_path / "checkpoints" / "latest")


def test_early_stopping_after_patience_evals_without_improvement(tmp_path, run_main):
  # A zero learning rate never improves on the first eval.
  run_main(tmp_path, "--config.batch_size=32", "--config.num_train_steps=100",
           "--config.optimizer.learning_rate=0.0", "--config.schedule.name=constant",
           "--config.eval_every_epochs=0.04", "--config.early_stopping_patience=2",
           "--config.augment=")
  with open(os.path.join(tmp_path, "summary.json")) as f:
    summary = json.load(f)
  evals = [r["step"] for r in read_metrics(tmp_path, "test")]
  assert evals == [5, 10, 15]  # First eval is the best; two more, then stop.
  assert summary["stopped_early"] and summary["steps"] == 15
  assert summary["best"] == {"accuracy": read_metrics(tmp_path, "test")[0]["accuracy"],
                             "step": 5}
  assert "15" in os.listdir(os.path.join(tmp_path, "checkpoints", "latest"))
