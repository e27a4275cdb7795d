"""Initialisers by name, for the dense and conv layers of the MLP and the small CNN.

'torch' is PyTorch's default for `nn.Linear` / `nn.Conv2d`: kernels uniform in
+-1/sqrt(fan_in) (variance_scaling(1/3, fan_in, uniform)) and biases uniform in
the same range. Flax's default LeCun-normal kernels start sqrt(3) times wider,
and a wider net memorises wrong labels sooner: on Fashion-MNIST with 30 %
asymmetric noise, the small CNN's AUM AUROC went from 0.902 to 0.940 with
PyTorch's initialisation alone (issue 8).
"""

import jax
import jax.numpy as jnp
import flax.linen as nn

INITS = ('torch', 'flax')


def inits(name: str, fan_in: int) -> dict:
  """`kernel_init` and `bias_init` keyword arguments for a layer with `fan_in` inputs."""
  if name == 'flax':  # nn.Dense's and nn.Conv's own defaults
    return dict(kernel_init=nn.initializers.lecun_normal(), bias_init=nn.initializers.zeros)
  if name != 'torch':
    raise ValueError(f'unknown init {name!r}; valid: {", ".join(INITS)}')
  bound = 1.0 / fan_in**0.5

  def bias(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return dict(kernel_init=nn.initializers.variance_scaling(1 / 3, 'fan_in', 'uniform'),
              bias_init=bias)
