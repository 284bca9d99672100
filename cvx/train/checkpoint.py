"""Orbax checkpoints in ``WORKDIR/checkpoints``: the last K and the best one.

``latest/<step>`` keeps the newest ``keep`` checkpoints; ``best/<step>`` the one
with the best validation metric. Orbax writes each checkpoint into a temporary
folder and renames it when complete, so a run killed mid-write leaves nothing
that :meth:`Checkpoints.restore` would take for valid. Each checkpoint holds the
train state and a small JSON ``meta`` (best metric so far, early-stopping
counters); the data position is the step itself.
"""
import os

import jax
import orbax.checkpoint as ocp


class Checkpoints:
  """The two managers and the save/restore calls the loop needs."""

  def __init__(self, workdir: str, keep: int):
    root = os.path.join(os.path.abspath(workdir), "checkpoints")
    options = lambda k: ocp.CheckpointManagerOptions(
        max_to_keep=k, create=True, enable_async_checkpointing=False)
    self.latest = ocp.CheckpointManager(os.path.join(root, "latest"),
                                        options=options(keep))
    self.best = ocp.CheckpointManager(os.path.join(root, "best"),
                                      options=options(1))

  @staticmethod
  def _save(manager, step: int, state, meta: dict) -> None:
    if step in manager.all_steps():
      return
    manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
    manager.wait_until_finished()

  def save(self, step: int, state, meta: dict) -> None:
    self._save(self.latest, step, state, meta)

  def save_best(self, step: int, state, meta: dict) -> None:
    self._save(self.best, step, state, meta)

  def latest_step(self, best: bool = False) -> int | None:
    return (self.best if best else self.latest).latest_step()

  def restore(self, abstract_state, best: bool = False):
    """(state, meta) of the newest (or best) checkpoint, or None if none."""
    manager = self.best if best else self.latest
    step = manager.latest_step()
    if step is None:
      return None
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    return restored.state, restored.meta

  def close(self) -> None:
    self.latest.close()
    self.best.close()
