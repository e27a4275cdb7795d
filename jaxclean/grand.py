"""GraNd (Paul et al. 2021, "Deep Learning on a Data Diet"): each example's loss-gradient norm.

GraNd(x, y) = ||grad_theta CE(f_theta(x), y)||_2 early in training (at initialisation or
after k epochs), averaged over ensemble members as the paper averages over seeds. High =
hard, or wrongly labelled. One jitted call per batch (`make_step`): `jax.vmap(jax.grad)` over
the rows, each row a batch of one, so the gradients are per example, never summed.

The model runs in eval mode (batch norm with its running statistics, as the paper's code
scores with its test-mode apply): a batch of one has no batch statistics of its own, and the
score is then a function of the model at that point of training alone. Padding rows (mask
False) score 0 and are never written. With threshold examples the model has C + 1 outputs;
only the originals are scored, each with its given label, by the cross-entropy over all the
model's outputs (the extra class competes: the gradient of the loss the model trains on).

`config.grand.epochs`: -1 off, 0 at initialisation, k > 0 after k epochs of the detection
run (`After`, a piece of `train.fit`).
"""

from __future__ import annotations

import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxclean import epoch as epoch_lib
from jaxclean import outputs, parallel, train
from jaxclean.data import pipeline


def make_step(mean: np.ndarray, std: np.ndarray, mesh) -> Callable:
  """Jitted `(state, batch) -> (members, B)` gradient norms, 0 on padding rows, replicated."""

  def step(state, batch):
    x = (batch["image"].astype(jnp.float32) - mean) / std

    def member(params, batch_stats):
      def loss(p, xi, yi):
        logits, _ = train._logits(state, p, batch_stats, xi[None], train=False)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yi[None])[0]

      grads = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(params, x, batch["label"])
      squares = [jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=1)
                 for g in jax.tree.leaves(grads)]
      return jnp.sqrt(sum(squares))

    norms = train.map_members(member, state.params, state.batch_stats)
    return jnp.where(batch["mask"], norms, 0.0)

  return jax.jit(step, out_shardings=parallel.replicated(mesh))


def grand(state, images, labels: np.ndarray, mean, std, batch_size: int, mesh) -> np.ndarray:
  """GraNd of every example of (images, labels) in source order, the members' mean, (N,)."""
  step = make_step(mean, std, mesh)
  n = len(labels)
  out = np.zeros((jax.tree.leaves(state.params)[0].shape[0], n), np.float32)
  with jax.set_mesh(mesh):
    for _, index, mask, batch in pipeline.batches(
        images, labels, batch_size, 0, mesh, range(pipeline.steps_per_epoch(n, batch_size)),
        shuffle=False):
      out[:, index[mask]] = parallel.fetch(step(state, batch))[:, mask]
  return out.mean(0)


class After(epoch_lib.Piece):
  """GraNd of the detection run's model after `config.grand.epochs` epochs, on the training
  split of `ds` with `labels` (the originals); the model has `num_classes` outputs.

  Pass it among `train.fit`'s `pieces`, then read `value()` (None when off). The values
  are saved in `workdir/grand_epoch<k>.npy` (process 0) as they are computed, so a run
  resumed past epoch k, or restored finished, still has them; at initialisation they are
  recomputed from `train.create_train_state`, which is deterministic.
  """

  def __init__(self, config, ds, labels: np.ndarray, num_classes: int, mesh, workdir: str):
    self.config, self.ds, self.labels, self.num_classes, self.mesh = (
        config, ds, labels, num_classes, mesh)
    self.epochs = config.grand.epochs
    self.path = os.path.join(workdir, f"grand_epoch{self.epochs}.npy")
    self.values = None

  def _compute(self, state) -> None:
    self.values = grand(state, self.ds.train.images, self.labels, *self.ds.mean_std(),
                        self.config.batch_size, self.mesh)
    if jax.process_index() == 0:
      with outputs.atomic_path(self.path) as tmp, open(tmp, "wb") as f:
        np.save(f, self.values)

  def end(self, e: epoch_lib.End) -> None:
    if e.number == self.epochs:
      self._compute(e.state)

  def value(self) -> np.ndarray | None:
    if self.epochs < 0:
      return None
    if self.values is None and os.path.exists(self.path):
      self.values = np.load(self.path)
    if self.values is None and self.epochs == 0:
      c, shape = self.config, self.ds.train.images.shape[1:]
      self._compute(train.create_train_state(c, train.model_for(c, self.num_classes, shape),
                                             shape, 1))
    if self.values is None:
      raise RuntimeError(f"GraNd after epoch {self.epochs} was not computed and {self.path} "
                         "is missing (the run resumed past that epoch with grand.epochs set)")
    return self.values
