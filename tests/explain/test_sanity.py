"""Adebayo et al.'s model-randomization check: Grad-CAM of a trained LeNet-5
must change clearly when its weights are re-initialized."""
import jax
import numpy as np
from scipy.stats import spearmanr

from cvx import config_lib, models, tasks
from cvx.data import pipeline, sources
from cvx.explain import cam
from cvx.train import optim, step as step_lib
from cvx.train import state as state_lib


def _trained_lenet(data_dir, steps=150):
  config = config_lib.base_config()
  config.optimizer.update(name="adam", learning_rate=3e-3)
  model = models.create("lenet5", num_classes=10)
  tx = optim.make_optimizer(config, 3e-3)
  state = state_lib.create(model, tx, (28, 28, 1), seed=0)
  train = sources.load("mnist5k", "train", data_dir)
  sampler = pipeline.Sampler(len(train), 64, seed=0)
  step = jax.jit(step_lib.make_train_step(
      model, tasks.create("classification", num_classes=10), tx, config, None))
  for i in range(steps):
    state, metrics = step(state, train.read(sampler.indices(i)))
  assert float(metrics["accuracy"]) > 0.8
  return model, config, state


def test_grad_cam_depends_on_the_learned_weights(data_dir):
  model, config, state = _trained_lenet(data_dir)
  test = sources.load("mnist5k", "test", data_dir).read(np.arange(0, 1000, 50))
  x = step_lib.eval_inputs(test["image"], config)
  target = test["label"]
  trained = np.asarray(cam.grad_cam(model, {"params": state.params}, x, target=target))
  random_params = model.init(jax.random.PRNGKey(42), x[:1])["params"]
  randomized = np.asarray(cam.grad_cam(model, {"params": random_params}, x, target=target))
  again = np.asarray(cam.grad_cam(model, {"params": state.params}, x + 1e-3, target=target))
  rho = lambda a, b: np.mean([spearmanr(p.ravel(), q.ravel())[0] for p, q in zip(a, b)])
  assert rho(trained, again) > 0.95  # Stable under a tiny input change...
  assert rho(trained, randomized) < 0.5  # ...but not under new weights.
