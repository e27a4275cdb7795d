"""Epoch-based batches that carry example indices and a padding mask.

Step s of a run is batch s % steps_per_epoch of epoch s // steps_per_epoch.
The order of each epoch is a stateless pseudo-random permutation of the index
space (`permute`: a keyed Feistel network with cycle walking), keyed by the
run's data-order stream (`jaxclean.rng`, purpose 'order', counter = epoch):
any batch is computed from (seed, step) alone, in O(batch) time and memory
whatever N, with no O(N) permutation ever drawn. That is also the data
position a resumed run needs. The last batch of an epoch is filled up with
the epoch's first examples marked `mask=False`, so every example is seen
exactly once per epoch and batch statistics never see zeros.

Images in memory are batched inline, `CHUNK` positions of an epoch's order at a
time (one vectorised `permute` instead of one per batch): JAX dispatches the
step asynchronously, so building the next batch on the host overlaps the step
without reading threads, and a small model's step (about 1 ms for the MLP on
embeddings) no longer waits on them. Images on disk go through grain's reading
threads (`READ_OPTIONS`). Both give the same batches.
"""

from __future__ import annotations

from typing import Iterator

import grain
import numpy as np

from jaxclean import parallel, rng
from jaxclean.data import arrays

ROUNDS = 6
CHUNK = 1 << 16  # order positions computed at once for in-memory images (O(CHUNK) memory)
# Batches built at once ahead of the step: reading from disk overlaps the step and itself.
READ_OPTIONS = grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  return -(-num_examples // batch_size)


def _mix(x: np.ndarray) -> np.ndarray:
  """splitmix64's finaliser: a bijective 64-bit hash (uint64 arithmetic wraps)."""
  x = (x ^ (x >> np.uint64(30))) * _M1
  x = (x ^ (x >> np.uint64(27))) * _M2
  return x ^ (x >> np.uint64(31))


def permute(positions: np.ndarray, num_examples: int, keys: np.ndarray) -> np.ndarray:
  """The images of `positions` under a keyed permutation of [0, num_examples).

  A balanced Feistel network on the smallest domain of 2 * h bits that holds
  num_examples is a permutation of that domain; applying it again to values
  that land outside [0, num_examples) (cycle walking, under 4 times on
  average) restricts it to a permutation of [0, num_examples).
  """
  half = max(1, (int(num_examples - 1).bit_length() + 1) // 2)
  mask = np.uint64((1 << half) - 1)
  x = np.asarray(positions, np.uint64)
  todo = np.ones(x.shape, bool)
  with np.errstate(over="ignore"):
    while todo.any():
      left, right = x[todo] >> np.uint64(half), x[todo] & mask
      for k in keys:
        left, right = right, left ^ (_mix(right ^ k) & mask)
      x[todo] = (left << np.uint64(half)) | right
      todo = x >= num_examples
  return x.astype(np.int64)


def order_keys(seed: int, epoch: int) -> np.ndarray:
  """The round keys of epoch `epoch`'s order, from the data-order stream."""
  return rng.numpy(seed, "order", epoch).integers(0, 2**63, ROUNDS, dtype=np.uint64)


def batch_indices(num_examples: int, batch_size: int, seed: int, step: int,
                  shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """(index, mask) of global batch `step`, each of shape (batch_size,)."""
  index, mask = many_batch_indices(num_examples, batch_size, seed, step, 1, shuffle)
  return index[0], mask[0]


def many_batch_indices(num_examples: int, batch_size: int, seed: int, step: int, count: int,
                       shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """(index, mask) of the `count` global batches from `step` on, all in `step`'s epoch,
  each of shape (count, batch_size): row k is `batch_indices(..., step + k)` (the order
  is elementwise in the positions, so one call computes them all at once)."""
  epoch, pos = divmod(step, steps_per_epoch(num_examples, batch_size))
  if pos + count > steps_per_epoch(num_examples, batch_size):
    raise ValueError(f"steps {step}..{step + count - 1} leave epoch {epoch}")
  positions = np.arange(pos * batch_size, (pos + count) * batch_size)
  mask = positions < num_examples
  positions = positions % num_examples  # past the end: the epoch's first examples again
  index = permute(positions, num_examples, order_keys(seed, epoch)) if shuffle else positions
  index = index.astype(np.int32 if num_examples < 2**31 else np.int64)
  return index.reshape(count, batch_size), mask.reshape(count, batch_size)


def _chunks(num_examples: int, batch_size: int, steps: range):
  """(first step, count) runs of `steps` (step 1) within one epoch, each at most `CHUNK`
  positions long."""
  spe = steps_per_epoch(num_examples, batch_size)
  most = max(1, CHUNK // batch_size)
  step = steps.start
  while step < steps.stop:
    count = min(steps.stop - step, spe - step % spe, most)
    yield step, count
    step += count


def gather(images, labels: np.ndarray, index: np.ndarray,
           mask: np.ndarray) -> dict[str, np.ndarray]:
  """The rows `index` of a batch; `images` is any array-like of `jaxclean.data.arrays`."""
  return dict(image=images[index], label=labels[index].astype(np.int32),
              index=index, mask=mask)


def batches(images, labels, batch_size: int, seed: int, mesh, steps: range,
            shuffle: bool = True) -> Iterator[tuple[int, np.ndarray, np.ndarray, dict]]:
  """(step, global index, global mask, device batch) for each step of `steps`.

  Each step is mapped to this process's rows of its global batch (`batch_indices`,
  then `gather`): the order stays a function of (seed, step), so a resumed range
  continues it exactly, and each process reads only its own rows. Images in memory
  (`arrays.resident`) are batched inline, a chunk of steps' indices at a time
  (`many_batch_indices`); others through a grain `MapDataset` over the steps, whose
  threads read `READ_OPTIONS.num_threads` batches at a time, in order, ahead of the
  consumer, and stop when the consumer drops the iterator.
  """
  rows = parallel.local_rows(batch_size, mesh)
  n = len(labels)
  if arrays.resident(images) and steps.step == 1:
    for first, count in _chunks(n, batch_size, steps):
      index, mask = many_batch_indices(n, batch_size, seed, first, count, shuffle)
      for k in range(count):
        yield (first + k, index[k], mask[k],
               parallel.to_global(gather(images, labels, index[k][rows], mask[k][rows]), mesh,
                                  batch_size))
    return

  def local(step):
    index, mask = batch_indices(n, batch_size, seed, step, shuffle)
    return step, index, mask, gather(images, labels, index[rows], mask[rows])

  dataset = grain.MapDataset.range(steps.start, steps.stop, steps.step).map(local)
  for step, index, mask, rows_of_batch in dataset.to_iter_dataset(READ_OPTIONS):
    yield step, index, mask, parallel.to_global(rows_of_batch, mesh, batch_size)
