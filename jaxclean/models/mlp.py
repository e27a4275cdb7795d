"""Multi-layer perceptron on flattened images."""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp


class MLP(nn.Module):
  """Flatten, `hidden` ReLU layers, then a dense layer to the class logits; no batch norm."""
  num_classes: int
  hidden: Sequence[int] = (256, 256)
  dtype: Any = jnp.float32  # compute dtype; parameters stay float32

  @nn.compact
  def __call__(self, x, train: bool):
    del train  # same function in both modes; taken for a uniform model interface
    x = x.reshape(x.shape[0], -1)
    for h in self.hidden:
      x = nn.relu(nn.Dense(h, dtype=self.dtype)(x))
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)
