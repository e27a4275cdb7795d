"""Epoch-based batches that carry example indices and a padding mask.

Step s of a run is batch s % steps_per_epoch of epoch s // steps_per_epoch,
and the order of each epoch is a seeded permutation, so any step can be
rebuilt from (seed, step) alone: that is the data position a resumed run
needs. The last batch of an epoch is filled up with copies of the epoch's
first examples marked `mask=False`, so every example is seen exactly once
per epoch and batch statistics never see zeros.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator

import numpy as np


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  return -(-num_examples // batch_size)


def batch_indices(num_examples: int, batch_size: int, seed: int, step: int,
                  shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """(index, mask) of global batch `step`, each of shape (batch_size,)."""
  spe = steps_per_epoch(num_examples, batch_size)
  epoch, pos = divmod(step, spe)
  order = (np.random.default_rng([seed, epoch]).permutation(num_examples)
           if shuffle else np.arange(num_examples))
  order = np.resize(order, spe * batch_size)  # pads by repeating from the start
  rows = slice(pos * batch_size, (pos + 1) * batch_size)
  mask = np.arange(rows.start, rows.stop) < num_examples
  return order[rows].astype(np.int32), mask


def gather(images: np.ndarray, labels: np.ndarray, index: np.ndarray,
           mask: np.ndarray) -> dict[str, np.ndarray]:
  return dict(image=images[index], label=labels[index].astype(np.int32),
              index=index, mask=mask)


def prefetch(it: Iterator, size: int = 2) -> Iterator:
  """Runs `it` on a background thread, `size` items ahead of the consumer."""
  q: queue.Queue = queue.Queue(maxsize=size)
  done = object()

  def work():
    try:
      for item in it:
        q.put(item)
    except BaseException as e:  # re-raised in the consumer
      q.put(e)
    q.put(done)

  threading.Thread(target=work, daemon=True).start()
  while (item := q.get()) is not done:
    if isinstance(item, BaseException):
      raise item
    yield item
