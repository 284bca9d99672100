"""Xception (Chollet, 2017), Keras applications layout, 299×299 input.

Entry flow → 8 middle blocks → exit flow (cvx.layers.xception) → global
average pool → FC.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cvx.layers.pooling import GlobalAvgPool
from cvx.layers.xception import EntryFlow, ExitFlow, MiddleFlow
from cvx.models.features import tap
from cvx.models.registry import register


@register("xception")
class Xception(nn.Module):
  """Features: ``entry_flow``, ``middle_flow``, ``last_conv``, ``pre_logits``."""
  num_classes: int
  middle_repeats: int = 8
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    features = {}
    common = dict(bn_axis_name=self.bn_axis_name, dtype=self.dtype)
    x = EntryFlow(**common, name="entry")(x.astype(self.dtype), train)
    x = tap(self, features, "entry_flow", x)
    x = MiddleFlow(repeats=self.middle_repeats, **common, name="middle")(x, train)
    x = tap(self, features, "middle_flow", x)
    x = tap(self, features, "last_conv", ExitFlow(**common, name="exit")(x, train))
    x = tap(self, features, "pre_logits", GlobalAvgPool()(x))
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
    return logits.astype(jnp.float32), features
