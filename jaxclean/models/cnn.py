"""The small CNN: two conv-ReLU-maxpool stages and a two-layer dense head."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxclean.models import init as init_lib
from jaxclean.models.resnet import batch_norm


def max_pool_2x2(x):
  """2x2 max pool, stride 2, 'VALID' (an odd last row or column is dropped), as nn.max_pool.

  The maximum of four strided slices; on XLA's CPU backend its forward+backward is much faster
  than nn.max_pool (reduce_window and its select-and-scatter gradient).
  """
  x = x[:, :x.shape[1] // 2 * 2, :x.shape[2] // 2 * 2]
  return jnp.maximum(jnp.maximum(x[:, 0::2, 0::2], x[:, 0::2, 1::2]),
                     jnp.maximum(x[:, 1::2, 0::2], x[:, 1::2, 1::2]))


class CNN(nn.Module):
  """conv(width,3x3)-ReLU-pool, conv(2*width,3x3)-ReLU-pool, dense(128)-ReLU, dense(classes).

  With `batch_norm`, each conv is followed by batch norm (and has no bias) before its ReLU.
  `initializer`: 'torch' (PyTorch's default initialisation, as the AUM reference code trains) or
  'flax' (LeCun normal kernels, zero biases).
  """
  num_classes: int
  width: int = 32
  batch_norm: bool = False
  initializer: str = 'torch'
  dtype: Any = jnp.float32  # compute dtype; parameters stay float32

  @nn.compact
  def __call__(self, x, train: bool):
    for features in (self.width, 2 * self.width):
      x = nn.Conv(features, (3, 3), padding='SAME', use_bias=not self.batch_norm,
                  dtype=self.dtype, **init_lib.inits(self.initializer, 9 * x.shape[-1]))(x)
      if self.batch_norm:
        x = batch_norm(train, self.dtype)(x)
      x = max_pool_2x2(nn.relu(x))
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(128, dtype=self.dtype, **init_lib.inits(self.initializer, x.shape[-1]))(x))
    return nn.Dense(self.num_classes, dtype=self.dtype,
                    **init_lib.inits(self.initializer, x.shape[-1]))(x).astype(jnp.float32)
