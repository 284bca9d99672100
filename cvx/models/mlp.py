"""Multi-layer perceptron on flattened images (seed 000's first network)."""
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cvx.models.features import tap
from cvx.models.registry import register


@register("mlp")
class MLP(nn.Module):
  """Flatten → [Dense → activation → dropout]* → Dense(num_classes).

  Input: N×H×W×C (any H, W, C). A 224×224×3 input with ``hidden=(512, 128)``
  and ``num_classes=1`` has 77,136,641 parameters, as in seed 000.
  """
  num_classes: int
  hidden: Sequence[int] = (512, 128)
  dropout_rate: float = 0.0
  activation: Callable[[jnp.ndarray], jnp.ndarray] = nn.relu
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.reshape((x.shape[0], -1)).astype(self.dtype)
    features = {}
    for i, width in enumerate(self.hidden):
      x = self.activation(nn.Dense(width, dtype=self.dtype, name=f"dense{i}")(x))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
      x = tap(self, features, f"hidden{i}", x)
    features["pre_logits"] = x
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
    return logits.astype(jnp.float32), features
