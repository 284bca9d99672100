"""The train state: everything a resumed run needs, as one pytree."""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct


class TrainState(struct.PyTreeNode):
  """``step`` int32; ``params``/``batch_stats`` float32 trees; ``rng`` a raw
  uint32 PRNG key (dropout and augmentation keys are folded from it by step)."""
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array


def create(model: nn.Module, tx: optax.GradientTransformation,
           image_shape: tuple[int, ...], seed: int) -> TrainState:
  """Initializes the model on a dummy 1×H×W×C batch."""
  init_rng, rng = jax.random.split(jax.random.PRNGKey(seed))
  variables = model.init({"params": init_rng, "dropout": init_rng},
                         jnp.zeros((1, *image_shape), jnp.float32), train=False)
  params = variables["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get("batch_stats", {}),
                    opt_state=tx.init(params), rng=rng)
