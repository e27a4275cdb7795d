"""The optimiser of the references: SGD with (Nesterov) momentum, coupled weight decay, a schedule."""

from __future__ import annotations

import re

import jax
import optax


def make_schedule(config, steps_per_epoch: int) -> optax.Schedule:
  """`optimizer.schedule`: cosine, step (drops at fractions of training) or constant, after warmup."""
  o = config.optimizer
  total = config.num_epochs * steps_per_epoch
  warmup = int(o.warmup_epochs * steps_per_epoch)
  if o.schedule == "cosine":
    main = optax.cosine_decay_schedule(o.lr, max(total - warmup, 1))
  elif o.schedule == "step":
    main = optax.piecewise_constant_schedule(
        o.lr, {int(f * total) - warmup: o.drop_factor for f in o.drops})
  elif o.schedule == "constant":
    main = optax.constant_schedule(o.lr)
  else:
    raise ValueError(f"unknown schedule {o.schedule!r}; use cosine, step or constant")
  if not warmup:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, o.lr, warmup), main], [warmup])


def make_optimizer(config, steps_per_epoch: int, backbone_paths: list[str] | None = None
                   ) -> optax.GradientTransformation:
  """SGD with (Nesterov) momentum and coupled weight decay, as in the references.

  With `backbone_paths` (a fine-tuned backbone, `models.Finetuned`: the `backbone`
  parameter list in that order) only the backbone's variables whose path matches
  `backbone.trainable` train with the head, the others not at all (the whole run's rate
  is `backbone.lr_scale` times `optimizer.lr`: `protocol.resolve`).
  """
  o = config.optimizer
  sgd = optax.chain(
      optax.add_decayed_weights(o.weight_decay),
      optax.sgd(make_schedule(config, steps_per_epoch), momentum=o.momentum or None,
                nesterov=o.nesterov))
  if backbone_paths is None:
    return sgd
  pattern = re.compile(config.backbone.trainable or ".*")
  trains = ["train" if pattern.search(p) else "frozen" for p in backbone_paths]

  def labels(params):
    return {k: (list(trains) if k == "backbone" else jax.tree.map(lambda _: "train", v))
            for k, v in params.items()}

  return optax.multi_transform({"train": sgd, "frozen": optax.set_to_zero()}, labels)
