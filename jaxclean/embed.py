"""Frozen mode: embed every example once, cache the embeddings on disk, train a head on them.

`embedded(ds, fn, ...)` returns the data set with each split's images replaced by
their features (N, 1, 1, D) float32, memory-mapped from
`<cache_dir>/embeddings/<key>/{train,test}.npy`. The key digests the backbone's name,
the images (`arrays.digest_into`: files on disk by path, size and mtime) and, for the
user's own function, the features of the first rows, so changed code or weights never
reuse another's cache; a backbone by name is not run at all when its cache exists. Embedding is jitted, its batches split over this process's devices,
shown with a progress bar and resumable: rows are written into a `.partial` folder
whose `progress.json` says how many are done, and the folder is renamed into place
when both splits are.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
from typing import Callable

import jax
import numpy as np
import tqdm.auto
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxclean import outputs
from jaxclean.errors import InputError
from jaxclean.data import arrays
from jaxclean.data.sources import Dataset, Split

FINGERPRINT_ROWS = 8  # rows whose features join the cache key
FLUSH_BATCHES = 32  # batches between progress marks (a resumed run redoes at most this many)


def default_cache_dir() -> str:
  return os.path.join(os.path.expanduser("~"), ".cache", "jaxclean")


def check(fn: Callable, params, images, batch_size: int) -> int:
  """The feature size of `fn` on a batch like `images`; InputError if it is not (B, D) float."""
  batch = jax.ShapeDtypeStruct((batch_size, *images.shape[1:]), np.float32)
  try:
    out = jax.eval_shape(fn, params, batch)
  except Exception as e:  # the user's function: say what it was given
    raise InputError(f"the embedding function fails on a float32 batch of shape "
                     f"{batch.shape}: {type(e).__name__}: {e}") from None
  if (not hasattr(out, "shape") or len(out.shape) != 2 or out.shape[0] != batch_size
      or not np.issubdtype(out.dtype, np.floating)):
    got = getattr(out, "shape", type(out).__name__)
    raise InputError(f"the embedding function must map a batch (B, H, W, C) to float features "
                     f"(B, D); on B={batch_size} it returned {got}")
  return int(out.shape[1])


def embedded(ds: Dataset, make: Callable, name: str, cache_dir: str = "",
             batch_size: int = 64, progress: bool = True, fingerprint: bool = False) -> Dataset:
  """`ds` with both splits' images replaced by their features, from the cache or computed.

  `make()` returns `(fn, params)`, called only when something must be embedded:
  `fn(params, images) -> features` is jittable, float32 pixels as stored (B, H, W, C)
  in, (B, D) out; `params` (the backbone's weights, a pytree) go in as an argument, never
  as constants of the compiled program. `name` names the backbone in the cache key and
  the progress bar; where it does not fix the function (the user's own), `fingerprint`
  adds the features of the first rows to the key.
  """
  made = []

  def compiled():
    if not made:
      fn, params = make()
      dim = check(fn, params, ds.train.images, batch_size)
      made.extend([_sharded(fn, params, batch_size), dim])
    return made

  key = cache_key(ds, name, compiled()[0] if fingerprint else None)
  folder = os.path.join(cache_dir or default_cache_dir(), "embeddings", key)
  splits = {"train": ds.train, "test": ds.test}
  if not os.path.isdir(folder):
    with _lock(folder + ".lock"):
      if not os.path.isdir(folder):  # another run may have finished it while we waited
        _compute(folder, splits, *compiled(), batch_size, name, progress)
  feats = {s: np.load(os.path.join(folder, f"{s}.npy"), mmap_mode="r") for s in splits}
  for s, split in splits.items():
    if len(feats[s]) != len(split):
      raise InputError(f"{folder}/{s}.npy holds {len(feats[s])} rows for {len(split)} "
                       "examples; delete that folder to embed again")
  return dataclasses.replace(
      ds, train=Split(feats["train"], ds.train.labels), test=Split(feats["test"], ds.test.labels))


def cache_key(ds: Dataset, name: str, step: Callable | None = None) -> str:
  """Digest of the backbone's name, both splits' images and (with `step`) the first rows'
  features."""
  h = hashlib.blake2b(digest_size=16)
  h.update(name.encode())
  for split in (ds.train, ds.test):
    arrays.digest_into(h, split.images)
  if step is not None:
    first = np.asarray(ds.train.images[:FINGERPRINT_ROWS], np.float32)
    h.update(np.round(np.asarray(step(first)), 3).tobytes())
  return f"{name.replace('/', '_').replace(':', '_')}-{h.hexdigest()}"


def _sharded(fn: Callable, params, batch_size: int) -> Callable:
  """`fn` jitted with its batch split over this process's devices and `params` replicated;
  every batch is padded to one size (`batch_size` rounded up to the device count), so it
  compiles once."""
  devices = jax.local_devices()
  size = -(-batch_size // len(devices)) * len(devices)
  mesh = jax.sharding.Mesh(np.array(devices), ("data",))
  params = jax.device_put(params, NamedSharding(mesh, P()))
  jitted = jax.jit(fn, in_shardings=(NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))),
                   out_shardings=NamedSharding(mesh, P()))

  def step(batch: np.ndarray) -> np.ndarray:
    n = len(batch)
    batch = np.concatenate([batch, np.zeros((size - n, *batch.shape[1:]), batch.dtype)])
    return np.asarray(jitted(params, batch))[:n]

  return step


@contextlib.contextmanager
def _lock(path: str):
  """An exclusive lock file: two runs embedding the same data take turns."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def _compute(folder: str, splits: dict[str, Split], step, dim: int, batch_size: int, name: str,
             progress: bool) -> None:
  """Embeds every split into `folder`.partial, resuming there, then renames it into place."""
  partial = folder + ".partial"
  os.makedirs(partial, exist_ok=True)
  marks = os.path.join(partial, "progress.json")
  done = json.load(open(marks)) if os.path.exists(marks) else {}
  total = sum(len(s) for s in splits.values())
  bar = tqdm.auto.tqdm(total=total, initial=sum(done.values()), unit="image", leave=False,
                       desc=f"embedding with {name}", disable=None if progress else True)
  for split, data in splits.items():
    path = os.path.join(partial, f"{split}.npy")
    start = done.get(split, 0)
    # (N, 1, 1, D): the layout of feature vectors everywhere in jaxclean (`from_arrays`).
    out = np.lib.format.open_memmap(path, mode="r+" if start else "w+", dtype=np.float32,
                                    shape=(len(data), 1, 1, dim))
    for b, s in enumerate(range(start, len(data), batch_size)):
      rows = np.asarray(data.images[s:s + batch_size], np.float32)
      out[s:s + len(rows), 0, 0] = step(rows)
      bar.update(len(rows))
      if (b + 1) % FLUSH_BATCHES == 0 or s + batch_size >= len(data):
        out.flush()
        done[split] = min(s + batch_size, len(data))
        outputs.write_json(marks, done)
    del out
  os.remove(marks)
  if not np.isfinite(np.load(os.path.join(partial, "train.npy"), mmap_mode="r")).all():
    shutil.rmtree(partial)
    raise InputError(f"the backbone {name} gave NaN or inf features")
  os.replace(partial, folder)
  bar.close()
