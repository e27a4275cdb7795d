"""The pieces of `train.fit`'s loop: each owns its state, its checkpoint entries, its inputs
to the train step and what it does at the end of an epoch, so that a new feature of the
loop is a new `Piece`, not new lines in `fit`.

Epochs are numbered from 1 everywhere: history.csv, the logged and printed lines,
`clean.at_epoch`, `grand.epochs` and the trajectory files.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable


@dataclasses.dataclass
class End:
  """One epoch's end as the pieces see it, in `fit`'s order: the epoch (1-based), the train
  state (a piece may replace it), the records, the history row (each piece adds its columns)
  and the epoch's training sums (`train.Meter`'s). `host()`: the records' host copy, fetched
  once; every process must ask for it alike (a collective when they are sharded over
  processes)."""
  number: int
  state: Any
  records: Any
  fetch: Callable[[], Any]
  row: dict = dataclasses.field(default_factory=dict)
  sums: dict | None = None
  _host: Any = None

  def host(self):
    if self._host is None:
      self._host = self.fetch()
    return self._host


class Piece:
  """A part of `fit`'s loop; by default it has no state, no step input and does nothing."""

  def saved(self) -> dict:
    """Its checkpoint entries (names unique among the pieces), read at every save."""
    return {}

  def restore(self, tree: dict, epochs: int) -> None:
    """Takes its entries from `tree` (restored, or `saved()`'s when there was no checkpoint)
    with `epochs` whole epochs done."""

  def before_step(self) -> dict:
    """Before each train step: its keyword arguments to the step."""
    return {}

  def after_step(self, step: int, metrics: dict) -> None:
    """After train step `step` (0-based), with its metrics (still on the device)."""

  def end(self, e: End) -> None:
    """At the end of each epoch trained here (not of those a resumed run restored), on
    every process, before its checkpoint."""
