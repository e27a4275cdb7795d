"""A user's own model and embedding function, named by import: paths in the backbone tests."""

import flax.linen as nn
import jax
import jax.numpy as jnp

_PROJECTION = jax.random.normal(jax.random.key(7), (16 * 16 * 3, 24))


class Small(nn.Module):
  """An MLP with the num_classes field jaxclean sets."""
  num_classes: int = 10

  @nn.compact
  def __call__(self, x, train):
    del train
    return nn.Dense(self.num_classes)(nn.relu(nn.Dense(32)(x.reshape(len(x), -1))))


class Fixed(nn.Module):
  """Seven logits whatever the run needs: refused before training."""

  @nn.compact
  def __call__(self, x, train):
    del train
    return nn.Dense(7)(x.reshape(len(x), -1))


def embed(images):
  """A frozen random projection of 16x16x3 images to 24 features."""
  return jnp.tanh(images.reshape(len(images), -1) @ _PROJECTION / 2000.0)


def bad_embed(images):
  """One number per pixel row: not (B, D)."""
  return images[..., 0]
