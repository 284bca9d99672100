"""Helpers shared by tests: reading what a run leaves in its workdir, image folders."""
import json
import os

import numpy as np
from PIL import Image


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


def write_image_folder(root, sizes):
  """``root/{train,test}/{cat,dog}/<i>.png`` random RGB images of ``sizes``;
  returns ``{(split, label, i): pixels}``."""
  rng = np.random.default_rng(0)
  expected = {}
  for split in ("train", "test"):
    for label, name in enumerate(("cat", "dog")):
      folder = root / split / name
      folder.mkdir(parents=True)
      for i, (h, w) in enumerate(sizes):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
        expected[(split, label, i)] = pixels
  return expected
