"""The small CNN: two conv-ReLU-maxpool stages and a two-layer dense head."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxclean.models import init as init_lib
from jaxclean.models.resnet import batch_norm

PATCHES_CONV_CHANNELS = 1  # convs with at most this many input channels run as `patches_conv`


@jax.custom_vjp
def max_pool_relu(x, bias):
  """relu(2x2 max pool of x + bias): stride 2, 'VALID' (an odd last row or column is dropped).

  Equals relu(nn.max_pool(x + bias)) and nn.max_pool(relu(x + bias)), gradients included: the
  first maximum of each window in row-major order gets the gradient, as nn.max_pool's
  select-and-scatter and PyTorch's max_pool2d give it. Written for XLA:CPU, where the small CNN's
  step is 1.3x faster than with ReLU then a max of strided slices and 2.1x faster than with
  nn.relu then nn.max_pool (benchmarks/README.md): the forward pass is one max-reduce
  that starts at 0 (the ReLU) over the window axes split off by a reshape, so XLA keeps its
  output instead of recomputing it into each consumer (the transposes of the next conv's kernel
  gradient); the gradient goes through an int8 index of the winner (4: ReLU off) and a
  broadcast compare instead of select-and-scatter.
  """
  return _pool(x, bias)[1]


def _pool(x, bias):
  """(windows, their ReLU'd maxima): x + bias as (N, H//2, 2, W//2, 2, C), an odd last row or
  column dropped, and the max-reduce from 0 over the window axes."""
  n, h, w, c = x.shape
  q = (x + bias.astype(x.dtype))[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
  return q, lax.reduce(q, jnp.zeros((), x.dtype), lax.max, (2, 4))


def _max_pool_relu_fwd(x, bias):
  q, top = _pool(x, bias)
  winner = jnp.where(top <= 0, 4, jnp.where(q[:, :, 0, :, 0] == top, 0, jnp.where(
      q[:, :, 0, :, 1] == top, 1, jnp.where(q[:, :, 1, :, 0] == top, 2, 3))))
  return top, (winner.astype(jnp.int8), x.shape, bias)


def _max_pool_relu_bwd(saved, g):
  winner, (n, h, w, c), bias = saved
  iota = lambda axis: lax.broadcasted_iota(jnp.int8, (1, 1, 2, 1, 2, 1), axis)
  dx = jnp.where(winner[:, :, None, :, None] == 2 * iota(2) + iota(4), g[:, :, None, :, None], 0)
  dx = jnp.pad(dx.reshape(n, h // 2 * 2, w // 2 * 2, c), ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
  dbias = jnp.sum(jnp.where(winner < 4, g, 0), axis=(0, 1, 2), dtype=jnp.float32)
  return dx, dbias.astype(bias.dtype)


max_pool_relu.defvjp(_max_pool_relu_fwd, _max_pool_relu_bwd)


def patches_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                 dimension_numbers=None, feature_group_count=1, precision=None):
  """`lax.conv_general_dilated` (NHWC, HWIO, stride 1) as one dot: the kh*kw shifted copies of
  the input concatenated on channels, times the kernel as a (kh*kw*C, F) matrix.

  For `nn.Conv(conv_general_dilated=...)` on a one-channel input (grayscale images), where
  XLA:CPU's convolution is at its worst: the small CNN's step on 28x28x1 at batch 256 is 3-7 %
  faster with its first conv this way (the forward pass a dot, the kernel gradient
  patches^T @ dy); on 32x32x3 it is 4 % slower, so three channels keep the convolution.
  """
  del dimension_numbers, precision  # NHWC/HWIO, as nn.Conv passes them
  if (tuple(window_strides) != (1, 1) or feature_group_count != 1
      or any(d is not None and tuple(d) != (1, 1) for d in (lhs_dilation, rhs_dilation))):
    raise ValueError("patches_conv supports stride 1, no dilation, no groups")
  kh, kw, c, features = rhs.shape
  n, h, w, _ = lhs.shape
  if isinstance(padding, str):
    padding = lax.padtype_to_pads((h, w), (kh, kw), (1, 1), padding)
  x = jnp.pad(lhs, ((0, 0), *padding, (0, 0)))
  h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  patches = jnp.concatenate([x[:, i:i + h, j:j + w] for i in range(kh) for j in range(kw)], -1)
  return (patches.reshape(n * h * w, kh * kw * c) @ rhs.reshape(kh * kw * c, features)).reshape(
      n, h, w, features)


class CNN(nn.Module):
  """conv(width,3x3)-ReLU-pool, conv(2*width,3x3)-ReLU-pool, dense(128)-ReLU, dense(classes).

  Each stage is `max_pool_relu(conv(x), bias)`: the conv's bias is added with the ReLU and pool
  (the same function: a max commutes with adding a per-channel constant). With `batch_norm`,
  each conv is followed by batch norm (and has no bias) before its ReLU and pool.
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
    for i, features in enumerate((self.width, 2 * self.width)):
      init = init_lib.inits(self.initializer, 9 * x.shape[-1])
      conv = {'conv_general_dilated': patches_conv} if x.shape[-1] <= PATCHES_CONV_CHANNELS else {}
      x = nn.Conv(features, (3, 3), padding='SAME', use_bias=False, dtype=self.dtype,
                  kernel_init=init['kernel_init'], name=f'Conv_{i}', **conv)(x)
      if self.batch_norm:
        x, bias = batch_norm(train, self.dtype)(x), jnp.zeros((features,), self.dtype)
      else:
        bias = self.param(f'bias_{i}', init['bias_init'], (features,))
      x = max_pool_relu(x, bias)
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(128, dtype=self.dtype, **init_lib.inits(self.initializer, x.shape[-1]))(x))
    return nn.Dense(self.num_classes, dtype=self.dtype,
                    **init_lib.inits(self.initializer, x.shape[-1]))(x).astype(jnp.float32)
