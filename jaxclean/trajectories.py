"""Optional per-epoch trajectories, streamed to disk one epoch at a time.

Every example is presented once per epoch, so the records' last-presentation
margin and correctness at the end of epoch e are epoch e's values: writing
them out at each epoch end (`Writer`, a piece of `train.fit`) gives whole
trajectories with no extra device state. Each epoch is one `.npy` per field
(`trajectories/margin_00012.npy` after epoch 12, from 1), written atomically;
`read` memory-maps them, so plotting a few examples never loads the whole
(epochs, N) array.
"""

from __future__ import annotations

import glob
import os

import numpy as np

from jaxclean import epoch as epoch_lib
from jaxclean import outputs

FIELDS = ("margin", "correct")


def write(workdir: str, epoch: int, records) -> None:
  """Writes epoch `epoch`'s (1-based) margin and correctness from host `records` (members, N)."""
  for name in FIELDS:
    path = os.path.join(workdir, "trajectories", f"{name}_{epoch:05d}.npy")
    with outputs.atomic_path(path) as tmp, open(tmp, "wb") as f:
      np.save(f, np.asarray(getattr(records, name)))


class Writer(epoch_lib.Piece):
  """Writes each epoch's trajectories from the lead process; every process fetches the
  records (a collective when they are sharded over processes)."""

  def __init__(self, workdir: str, lead: bool):
    self.workdir, self.lead = workdir, lead

  def end(self, e: epoch_lib.End) -> None:
    host = e.host()
    if self.lead:
      write(self.workdir, e.number, host)


def read(workdir: str, name: str, index=None) -> np.ndarray:
  """(epochs, members, len(index)) trajectory of `name` for the examples `index` (default all)."""
  if name not in FIELDS:
    raise ValueError(f"unknown trajectory field {name!r}; valid: {FIELDS}")
  paths = sorted(glob.glob(os.path.join(workdir, "trajectories", f"{name}_*.npy")))
  if not paths:
    raise FileNotFoundError(f"no {name} trajectories under {workdir}/trajectories "
                            "(run with --config.trajectories=True)")
  epochs = [np.load(p, mmap_mode="r") for p in paths]
  return np.stack([e if index is None else e[:, index] for e in epochs])
