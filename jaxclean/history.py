"""history.csv: one row per epoch, epochs numbered from 1 (files of older versions from 0).

`History` is `train.fit`'s piece that keeps and writes it; `one_based` is how every
reader takes a file, so that a run resumed or reported from an older version's workdir
reads its epochs as this version numbers them.
"""

from __future__ import annotations

import os

import pandas as pd
import tqdm
from absl import logging

from jaxclean import epoch as epoch_lib
from jaxclean import outputs


def one_based(history: pd.DataFrame) -> pd.DataFrame:
  """`history` with 1-based epochs: a file whose first row is epoch 0 (written before epochs
  were numbered from 1) shifted by one."""
  if "epoch" in history and len(history) and history["epoch"].iloc[0] == 0:
    return history.assign(epoch=history["epoch"] + 1)
  return history


class History(epoch_lib.Piece):
  """The rows of `fit`'s epochs: kept, logged, written by the lead process at each epoch's
  end (before its checkpoint, so a restart drops the rows past its checkpoint: `restore`),
  and for an evaluated epoch printed above the progress bar when `show`."""

  def __init__(self, workdir: str, num_epochs: int, lead: bool, show: bool):
    self.path, self.num_epochs, self.lead, self.show = (
        os.path.join(workdir, "history.csv"), num_epochs, lead, show)
    self.rows: list[dict] = []

  def restore(self, tree: dict, epochs: int) -> None:
    if os.path.exists(self.path):
      old = one_based(pd.read_csv(self.path))
      self.rows = old[old["epoch"] <= epochs].to_dict("records")

  def end(self, e: epoch_lib.End) -> None:
    row = e.row
    self.rows.append(row)
    logging.info("epoch %d: %s", e.number, row)
    if self.show and "test_accuracy" in row:
      tqdm.tqdm.write(f"epoch {e.number}/{self.num_epochs}: train loss {row['train_loss']:.4f}, "
                      f"accuracy {row['train_accuracy']:.4f}; test accuracy "
                      f"{row['test_accuracy']:.4f} ({row['seconds']:.1f} s)")
    if self.lead:
      outputs.write_table(self.path, self.frame())

  def frame(self) -> pd.DataFrame:
    return pd.DataFrame(self.rows)
