"""Helpers shared by tests: reading what a run leaves in its workdir."""
import json
import os


def read_metrics(workdir, split=None):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return [r for r in rows if split is None or r["split"] == split]


def restore_params(workdir, step=None, which="latest"):
  """Params of a saved checkpoint as a flat {path: numpy array} dict."""
  import jax
  import orbax.checkpoint as ocp
  root = os.path.join(workdir, "checkpoints", which)
  if step is None:
    step = max(int(d) for d in os.listdir(root) if d.isdigit())
  path = os.path.join(root, str(step), "state")
  checkpointer = ocp.StandardCheckpointer()
  metadata = checkpointer.metadata(path).item_metadata.tree
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), metadata,
      is_leaf=lambda m: hasattr(m, "shape"))
  tree = checkpointer.restore(path, target)
  return {jax.tree_util.keystr(p): v for p, v in
          jax.tree_util.tree_leaves_with_path(tree["params"])}
