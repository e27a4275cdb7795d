"""Epoch-based batches that carry example indices and a padding mask.

Step s of a run is batch s % steps_per_epoch of epoch s // steps_per_epoch,
and the order of each epoch is a permutation drawn from the run's own data
order stream (`jaxclean.rng`, purpose 'order', counter = epoch), so any step
can be rebuilt from (seed, step) alone: that is the data position a resumed
run needs. The order is drawn once per epoch, so the host work per batch is
O(batch) whatever N. The last batch of an epoch is filled up with copies of
the epoch's first examples marked `mask=False`, so every example is seen
exactly once per epoch and batch statistics never see zeros.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator

import numpy as np

from jaxclean import parallel, rng


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  return -(-num_examples // batch_size)


def epoch_order(num_examples: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
  """The order in which epoch `epoch` presents the examples."""
  if not shuffle:
    return np.arange(num_examples)
  return rng.numpy(seed, "order", epoch).permutation(num_examples)


def _rows(order: np.ndarray, batch_size: int, pos: int) -> tuple[np.ndarray, np.ndarray]:
  n = len(order)
  pos_index = np.arange(pos * batch_size, (pos + 1) * batch_size)
  index = order[pos_index % n]  # past the end: wraps to the epoch's first examples
  return index.astype(np.int32), pos_index < n


def batch_indices(num_examples: int, batch_size: int, seed: int, step: int,
                  shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """(index, mask) of global batch `step`, each of shape (batch_size,)."""
  epoch, pos = divmod(step, steps_per_epoch(num_examples, batch_size))
  return _rows(epoch_order(num_examples, seed, epoch, shuffle), batch_size, pos)


def index_batches(num_examples: int, batch_size: int, seed: int, steps: Iterable[int],
                  shuffle: bool = True) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
  """(step, index, mask) for each step, drawing each epoch's order once."""
  spe = steps_per_epoch(num_examples, batch_size)
  epoch, order = None, None
  for step in steps:
    e, pos = divmod(step, spe)
    if e != epoch:
      epoch, order = e, epoch_order(num_examples, seed, e, shuffle)
    yield (step, *_rows(order, batch_size, pos))


def gather(images: np.ndarray, labels: np.ndarray, index: np.ndarray,
           mask: np.ndarray) -> dict[str, np.ndarray]:
  return dict(image=images[index], label=labels[index].astype(np.int32),
              index=index, mask=mask)


def batches(images, labels, batch_size: int, seed: int, mesh, steps: Iterable[int],
            shuffle: bool = True) -> Iterator[tuple[int, np.ndarray, np.ndarray, dict]]:
  """(step, global index, global mask, device batch), built on a background thread.

  Each process gathers only its own rows of every global batch.
  """
  rows = parallel.local_rows(batch_size, mesh)

  def gen():
    for s, index, mask in index_batches(len(labels), batch_size, seed, steps, shuffle):
      local = gather(images, labels, index[rows], mask[rows])
      yield s, index, mask, parallel.to_global(local, mesh, batch_size)

  return prefetch(gen())


def prefetch(it: Iterator, size: int = 2) -> Iterator:
  """Runs `it` on a background thread, `size` items ahead of the consumer.

  The thread stops when the consumer closes the generator (or drops it), so an
  early exit never leaves it blocked on a full queue.
  """
  q: queue.Queue = queue.Queue(maxsize=size)
  stop = threading.Event()
  done = object()

  def put(item) -> bool:
    while not stop.is_set():
      try:
        q.put(item, timeout=0.05)
        return True
      except queue.Full:
        pass
    return False

  def work():
    try:
      for item in it:
        if not put(item):
          return
    except BaseException as e:  # re-raised in the consumer
      put(e)
      return
    put(done)

  threading.Thread(target=work, daemon=True, name="jaxclean-prefetch").start()
  try:
    while (item := q.get()) is not done:
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()
