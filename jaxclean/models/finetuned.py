"""A pretrained backbone with a linear head, trained together by jaxclean's step."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class Finetuned(nn.Module):
  """`backbone` (a `jaxclean.backbones.Backbone`) then a dense layer to the class logits.

  The backbone's weights start from its pretrained values (the `backbone` parameter, a
  list in `Backbone.paths()` order); its non-trainable variables (batch norm's running
  statistics) live in the `batch_stats` collection and are updated when training.
  Inputs are raw pixel values: the backbone scales them itself (`Dataset.raw_pixels`).
  """
  backbone: Any
  num_classes: int

  @nn.compact
  def __call__(self, x, train: bool):
    trainable, state = self.backbone.weights()
    weights = self.param("backbone", lambda _: trainable)
    stats = self.variable("batch_stats", "backbone", lambda: state) if state else None
    features, new = self.backbone.apply((weights, stats.value if stats else []), x, train)
    if train and stats is not None and self.is_mutable_collection("batch_stats"):
      stats.value = new
    return nn.Dense(self.num_classes)(features).astype(jnp.float32)
