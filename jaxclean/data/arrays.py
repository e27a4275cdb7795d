"""Images that stay on disk, read a batch at a time by example index.

A split's images are anything that indexes like a numpy array: an array in
memory, a memory-mapped `.npy` (`np.memmap`), `RecordImages` (an ArrayRecord
file of fixed-shape raw images) or `Rows` (a view through an index array).
Fancy indexing (`images[index]`) reads those rows into a new array; slicing
(`images[:n]`) and `take` give views, as numpy's basic indexing does, so a
prefix, the kept examples of a retraining or the threshold copies never read
the data until a batch needs it. `digest_into` fingerprints any of them without
reading a file through: a run's identity must not cost a pass over 100 GB.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from jaxclean.errors import InputError

SAMPLE = 10_000  # rows that stand for a data set on disk (pixel statistics, display range)


class RecordImages:
  """The images of an ArrayRecord file whose records are raw image bytes, then anything.

  Each record starts with the image's `prod(shape)` values of `dtype`, row
  major; what follows (the converter's label) is not read here. A batch is one
  `__getitems__` call of grain's `ArrayRecordDataSource` and one
  `np.frombuffer`, with no decoding. `mean_std` holds the per-channel pixel
  statistics of the whole file when the converter stored them.
  """

  def __init__(self, path: str, shape: tuple[int, ...], dtype, meta: bytes = b"",
               mean_std: tuple[np.ndarray, np.ndarray] | None = None):
    import grain
    self.path, self.dtype = path, np.dtype(dtype)
    self._meta = hashlib.blake2b(meta, digest_size=16).hexdigest()
    self._source = grain.sources.ArrayRecordDataSource(path)
    self.shape = (len(self._source), *shape)
    self.ndim = len(self.shape)
    self.mean_std = mean_std
    self._values = int(np.prod(shape))

  def __len__(self) -> int:
    return self.shape[0]

  def __getitem__(self, key):
    if isinstance(key, slice):
      return Rows(self, np.arange(*key.indices(len(self))))
    index = np.asarray(key)
    if index.dtype == bool:
      index = np.flatnonzero(index)
    records = self._source.__getitems__(index.ravel().tolist())
    size = self._values * self.dtype.itemsize
    raw = np.frombuffer(b"".join(r[:size] for r in records), self.dtype)
    return raw.reshape(*index.shape, *self.shape[1:])

  def digest(self) -> str:
    """The converter's meta.json (it holds every pixel's statistics), file size and mtime."""
    st = os.stat(self.path)
    return _hash(self._meta, os.path.abspath(self.path), st.st_size, st.st_mtime_ns, self.shape)


class Rows:
  """`base[index]` as a view: `rows[i]` is `base[index[i]]`, read only when indexed."""

  def __init__(self, base, index: np.ndarray):
    if isinstance(base, Rows):  # a view of a view reads its base directly
      base, index = base.base, base.index[index]
    self.base, self.index = base, np.asarray(index)
    self.shape = (len(self.index), *base.shape[1:])
    self.ndim, self.dtype = len(self.shape), base.dtype

  def __len__(self) -> int:
    return len(self.index)

  def __getitem__(self, key):
    if isinstance(key, slice):
      return Rows(self, np.arange(*key.indices(len(self))))
    return self.base[self.index[key]]

  def digest(self) -> str:
    h = hashlib.blake2b(digest_size=16)
    digest_into(h, self.base)
    h.update(np.ascontiguousarray(self.index, np.int64).data)
    return h.hexdigest()


def take(images, index: np.ndarray) -> Rows:
  """The rows `index` of `images` (an int array or a boolean mask) as a view."""
  index = np.asarray(index)
  return Rows(images, np.flatnonzero(index) if index.dtype == bool else index)


def in_memory(images) -> bool:
  """True for a numpy array held in memory (not memory-mapped)."""
  return isinstance(images, np.ndarray) and not isinstance(images, np.memmap)


def resident(images) -> bool:
  """True when reading rows costs no I/O: a numpy array in memory, or `Rows` of one."""
  return in_memory(images.base if isinstance(images, Rows) else images)


def sample_index(n: int, size: int = SAMPLE) -> np.ndarray:
  """`size` evenly spaced rows of n (all of them when n <= size): a fixed, seedless sample
  that covers every part of a source stored in class order."""
  return np.arange(n) if n <= size else np.arange(size, dtype=np.int64) * n // size


def digest_into(h, images) -> None:
  """Feeds a fingerprint of `images` to hashlib object `h`.

  In memory: the shape and every byte. A memory-mapped file: its path, size,
  mtime, offset and the view's shape. Anything else: its own `digest()`.
  """
  if in_memory(images):
    a = np.ascontiguousarray(images)
    h.update(str(a.shape).encode())
    h.update(a.data)
  elif isinstance(images, np.memmap):
    st = os.stat(images.filename)
    h.update(_hash(images.filename, st.st_size, st.st_mtime_ns, images.offset,
                   images.shape, images.dtype.str).encode())
  else:
    h.update(images.digest().encode())


def _hash(*parts) -> str:
  return hashlib.blake2b(json.dumps(parts, default=str).encode(), digest_size=16).hexdigest()


def image_shape(headers: dict, where) -> tuple[int, int, int]:
  """(height, width, channels) of images whose PIL (size, mode) `headers` gives by name;
  InputError naming two that differ in size. Grey ('1', 'L') only if every one is."""
  sizes = {size for size, _ in headers.values()}
  if len(sizes) > 1:
    first, (size, _) = next(iter(headers.items()))
    odd = next(f for f, (other, _) in headers.items() if other != size)
    raise InputError(f"{where}: images differ in size (width, height), e.g. image {odd} is "
                     f"{headers[odd][0]} but image {first} is {size}")
  grey = all(m in ("1", "L") for _, m in headers.values())
  width, height = sizes.pop() if sizes else (1, 1)
  return height, width, 1 if grey else 3
