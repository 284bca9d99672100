"""Data parallelism over every device of every process: jit (default) or pmap.

jit: one ``Mesh`` with a ``data`` axis; the state is replicated, batches are
global ``jax.Array``s sharded on ``data``; XLA inserts the all-reduces and
BatchNorm sees the global batch; on CPU the steps are compiled with the conv
lowering's ``compiler_options``. pmap: the same step under ``jax.pmap`` with
``pmean`` over ``data`` (and BatchNorm's ``axis_name``; ``jax.pmap`` takes no
compiler options). Both give the same numbers for the same global batch.
"""
import os

import flax
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cvx.data import pipeline
from cvx.layers import conv_lowering

AXIS = "data"


def initialize_distributed(config) -> None:
  """``jax.distributed.initialize`` when the config or environment asks.

  Asked by ``distributed.coordinator_address`` (with ``num_processes`` and
  ``process_id``) or by ``$JAX_COORDINATOR_ADDRESS`` on a cluster whose
  process layout JAX detects itself (SLURM, Open MPI, TPU pods).
  """
  d = config.distributed
  if d.coordinator_address is None and "JAX_COORDINATOR_ADDRESS" not in os.environ:
    return
  # CPU collectives across processes need gloo; accelerators are unaffected.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(
      coordinator_address=d.coordinator_address,
      num_processes=d.num_processes, process_id=d.process_id)


class JitParallel:
  """Mesh + NamedSharding; the state stays a replicated global array."""
  name = "jit"

  def __init__(self):
    self.mesh = Mesh(np.array(jax.devices()), (AXIS,))
    self.replicated = NamedSharding(self.mesh, PartitionSpec())
    self.batch_sharding = NamedSharding(self.mesh, PartitionSpec(AXIS))
    self.put_batch = pipeline.global_put(self.batch_sharding)

  def init_state(self, create_fn):
    return jax.jit(create_fn, out_shardings=self.replicated)()

  def abstract_state(self, state):
    return state

  def compile_train(self, step_fn):
    return jax.jit(step_fn, in_shardings=(self.replicated, self.batch_sharding),
                   out_shardings=(self.replicated, self.replicated),
                   donate_argnums=0, compiler_options=conv_lowering.compiler_options())

  def compile_eval(self, step_fn):
    return jax.jit(step_fn, in_shardings=(self.replicated, self.batch_sharding),
                   out_shardings=self.replicated,
                   compiler_options=conv_lowering.compiler_options())

  def host_state(self, state):
    return state

  def device_state(self, state):
    return jax.device_put(state, self.replicated)

  def metrics(self, metrics):
    return metrics

  def rows(self, outputs):
    """Per-example outputs of an eval-compiled step (replicated) → numpy."""
    return jax.tree.map(np.asarray, outputs)


class PmapParallel:
  """``jax.pmap`` over local devices; collectives span all processes."""
  name = "pmap"

  def __init__(self):
    self.put_batch = pipeline.pmap_batch

  def init_state(self, create_fn):
    return flax.jax_utils.replicate(jax.jit(create_fn)())

  def abstract_state(self, state):
    return flax.jax_utils.unreplicate(state)

  def compile_train(self, step_fn):
    return jax.pmap(step_fn, axis_name=AXIS, donate_argnums=0)

  def compile_eval(self, step_fn):
    return jax.pmap(step_fn, axis_name=AXIS)

  def host_state(self, state):
    return jax.device_get(flax.jax_utils.unreplicate(state))

  def device_state(self, state):
    return flax.jax_utils.replicate(state)

  def metrics(self, metrics):
    return jax.tree.map(lambda m: m[0], metrics)

  def rows(self, outputs):
    """Per-example outputs, local devices × rows → all rows of all processes."""
    local = jax.tree.map(lambda x: np.asarray(x).reshape((-1,) + x.shape[2:]), outputs)
    if jax.process_count() == 1:
      return local
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return jax.tree.map(np.asarray, multihost_utils.process_allgather(local, tiled=True))


def create(name: str):
  if name == "jit":
    return JitParallel()
  if name == "pmap":
    return PmapParallel()
  raise ValueError(f"unknown parallel mode {name!r}; allowed: 'jit', 'pmap'")
