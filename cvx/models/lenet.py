"""LeNet-5 (LeCun et al., 1998) with ReLU and max pooling, as taught today."""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cvx.models.registry import register


@register("lenet5")
class LeNet5(nn.Module):
  """conv5×5(6, pad 2) → pool → conv5×5(16) → pool → 120 → 84 → num_classes.

  Input: N×28×28×C (MNIST); 61,706 parameters for one channel and 10 classes.
  """
  num_classes: int
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    x = nn.relu(nn.Conv(6, (5, 5), padding=2, dtype=self.dtype, name="conv1")(x))
    c1 = x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = nn.relu(nn.Conv(16, (5, 5), padding="VALID", dtype=self.dtype, name="conv2")(x))
    c2 = x
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(120, dtype=self.dtype, name="fc1")(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = nn.relu(nn.Dense(84, dtype=self.dtype, name="fc2")(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
    features = {"stage1": c1, "stage2": c2, "last_conv": c2, "pre_logits": x}
    return logits.astype(jnp.float32), features
