"""What the scripts reading `experiments.probe` dumps share (`window`, `count`): loading a
dump and replaying its epochs through `records.update` as `train.fit`'s step records them."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxclean import records as records_lib


def load(path: str):
  """(meta.npz, logits.npy memory-mapped: (epochs, N + copies, C + 1)) of the dump at `path`."""
  return (np.load(os.path.join(path, "meta.npz")),
          np.load(os.path.join(path, "logits.npy"), mmap_mode="r"))


def replayer(labels: np.ndarray, copies: int, num_outputs: int):
  """(empty records of the originals and copies, step): `step(records, one epoch's logits,
  count_aum, early)` records that epoch as the run did, the extra class (the copies')
  left out of the originals' logits."""
  n, c = len(labels), num_outputs - 1
  rows = jnp.arange(n + copies)
  run_labels = jnp.concatenate([jnp.asarray(labels), jnp.full(copies, c)])
  mask_extra = (jnp.arange(c + 1) >= c)[None] & (run_labels < c)[:, None]
  update = jax.jit(records_lib.update)

  def step(r, logits, count_aum: bool, early: bool):
    z = jnp.where(mask_extra, -1e9, jnp.asarray(logits, jnp.float32))
    return update(r, rows, z, run_labels, jnp.ones(n + copies, bool), count_aum, early)

  return records_lib.init(n + copies), step
