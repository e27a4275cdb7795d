"""Multi-layer perceptron on flattened images."""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxclean.models import init as init_lib


class MLP(nn.Module):
  """Flatten, `hidden` ReLU layers, then a dense layer to the class logits; no batch norm.

  `initializer`: 'torch' (PyTorch's default) or 'flax' (LeCun normal kernels, zero biases).
  """
  num_classes: int
  hidden: Sequence[int] = (256, 256)
  initializer: str = 'torch'
  dtype: Any = jnp.float32  # compute dtype; parameters stay float32

  @nn.compact
  def __call__(self, x, train: bool):
    del train  # same function in both modes; taken for a uniform model interface
    x = x.reshape(x.shape[0], -1)
    for h in self.hidden:
      x = nn.relu(nn.Dense(h, dtype=self.dtype, **init_lib.inits(self.initializer, x.shape[-1]))(x))
    return nn.Dense(self.num_classes, dtype=self.dtype,
                    **init_lib.inits(self.initializer, x.shape[-1]))(x).astype(jnp.float32)
