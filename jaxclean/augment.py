"""On-device image augmentation: random crop with zero padding and horizontal flip.

Each example's randomness is `fold_in(step_key, example_index)`, so the
augmented batch is the same however the batch is split across devices.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def augment(images: jax.Array, key: jax.Array, index: jax.Array, crop: int,
            flip: bool) -> jax.Array:
  """images: (B, H, W, C) float; crop: padding in pixels (0 = no crop)."""
  if not crop and not flip:
    return images

  def one(x, i):
    k_crop, k_flip = jax.random.split(jax.random.fold_in(key, i))
    if crop:
      padded = jnp.pad(x, ((crop, crop), (crop, crop), (0, 0)))
      dy, dx = jax.random.randint(k_crop, (2,), 0, 2 * crop + 1)
      x = jax.lax.dynamic_slice(padded, (dy, dx, 0), x.shape)
    if flip:
      x = jnp.where(jax.random.bernoulli(k_flip), x[:, ::-1], x)
    return x

  return jax.vmap(one)(images, index)
