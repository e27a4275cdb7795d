"""`data.name=hf:<name or dir>`: a Hugging Face `datasets` image-classification set.

`<dir>` written by `DatasetDict.save_to_disk` is read with `load_from_disk`; a
directory of `.parquet` or `.arrow` files with `load_dataset("parquet"|"arrow")`;
anything else is a hub name for `load_dataset` (online, then cached). The image
column is the `Image` feature (or `data.image_key`), the label column the
`ClassLabel` feature (or `data.label_key`), whose names are the class names.
Images stay in the Arrow files and are decoded a batch at a time (`HFImages`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pathlib

import numpy as np
from PIL import Image, UnidentifiedImageError

from jaxclean.errors import InputError, MissingFile
from jaxclean.data import arrays

INSTALL = 'pip install "jaxclean[hf]"'
_SCAN_CHUNK = 256


def load(name: str, image_key: str = "", label_key: str = ""):
  """(splits, the ClassLabel's names or None, None, origin) of `hf:<name>`, images left in
  the Arrow files."""
  try:
    import datasets
  except ImportError:
    raise InputError(f"data.name=hf:{name} needs the datasets package: {INSTALL}") from None
  where = f"hf:{name}"
  with _quiet(datasets):
    splits = _open(datasets, name, where)
  if isinstance(splits, datasets.Dataset):  # a single split saved on its own
    splits = {"train": splits}
  out, names = {}, None
  for split, ds in splits.items():
    at = f"{where} split {split!r}"
    image = _column(ds, image_key, datasets.Image, "image_key", at)
    label = _column(ds, label_key, datasets.ClassLabel, "label_key", at)
    feature = ds.features[label]
    if isinstance(feature, datasets.ClassLabel):
      if names is not None and names != feature.names:
        raise InputError(f"{where}: split {split!r} has other class names than the others")
      names = feature.names
    labels = np.asarray(ds.select_columns([label]).with_format("numpy")[label])
    out[split] = (HFImages(ds, image, at), labels)
  return out, names, None, _origin(name)


def _open(datasets, name: str, where: str):
  """The DatasetDict (or Dataset) behind `name`; every failure as one InputError."""
  path = pathlib.Path(name).expanduser()
  try:
    if path.is_dir():
      if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return datasets.load_from_disk(str(path))
      for kind in ("parquet", "arrow"):
        if any(path.rglob(f"*.{kind}")):
          return datasets.load_dataset(kind, data_dir=str(path))
      raise InputError(f"{where}: {path} holds no save_to_disk data set and no .parquet or "
                       ".arrow files")
    if name.startswith(("/", ".", "~")) or path.exists():
      raise MissingFile(f"{where}: {path} does not exist or is not a directory")
    return datasets.load_dataset(name)
  except InputError:
    raise
  except Exception as e:  # corrupt files, no network, unknown name: datasets raises many types
    raise InputError(f"{where}: cannot load it ({type(e).__name__}: {_first_line(e)})") from None


@contextlib.contextmanager
def _quiet(datasets):
  """No `datasets` progress bars or hub retry warnings while loading: a failure is one line."""
  shown, verbosity = datasets.is_progress_bar_enabled(), datasets.logging.get_verbosity()
  hub = logging.getLogger("huggingface_hub")
  hub_level = hub.level
  datasets.disable_progress_bars()
  datasets.logging.set_verbosity_error()
  hub.setLevel(logging.ERROR)
  try:
    yield
  finally:
    hub.setLevel(hub_level)
    datasets.logging.set_verbosity(verbosity)
    if shown:
      datasets.enable_progress_bars()


def _column(ds, key: str, feature_type, setting: str, where: str) -> str:
  """`key` if set (it must exist), else the first column whose feature is `feature_type`."""
  if key:
    if key not in ds.features:
      raise InputError(f"{where}: data.{setting}={key!r} is not a column; columns: "
                       f"{', '.join(ds.features)}")
    return key
  found = [k for k, f in ds.features.items() if isinstance(f, feature_type)]
  if not found:
    raise InputError(f"{where} has no {feature_type.__name__} column; name one with "
                     f"data.{setting} (columns: {', '.join(ds.features)})")
  return found[0]


def _origin(name: str) -> str:
  path = pathlib.Path(name).expanduser()
  return str(path.resolve()) if path.is_dir() else f"hf:{name}"


def _first_line(e: Exception) -> str:
  text = str(e).strip()
  return text.splitlines()[0][:300] if text else ""


class HFImages:
  """The `Image` column of a `datasets.Dataset` as (N, H, W, C) uint8, decoded when indexed.

  Rows are read undecoded (`Image(decode=False)`: bytes or a path) and decoded
  here with PIL, grayscale (C=1) when the scanned images are all grayscale,
  else RGB. Shape and mode come from the headers of `arrays.sample_index`'s
  rows (every row of a split up to 10k), so a mixed-size set is refused before
  training; an odd image past those stops the run when its batch is read.
  """

  def __init__(self, ds, key: str, where: str):
    import datasets
    if not isinstance(ds.features[key], datasets.Image):
      raise InputError(f"{where}: column {key!r} is {type(ds.features[key]).__name__}, "
                       "not an Image")
    self.key, self.where = key, where
    self._ds = ds.select_columns([key]).cast_column(key, datasets.Image(decode=False))
    self._fingerprint = ds._fingerprint
    self._files = [f["filename"] for f in ds.cache_files]
    self.dtype = np.dtype(np.uint8)
    headers = {}
    rows = arrays.sample_index(len(ds))
    for s in range(0, len(rows), _SCAN_CHUNK):
      for i, raw in zip(rows[s:s + _SCAN_CHUNK], self._raw(rows[s:s + _SCAN_CHUNK])):
        with self._open(raw, i) as im:
          headers[int(i)] = (im.size, im.mode)
    height, width, channels = arrays.image_shape(headers, where)
    self._mode = "L" if channels == 1 else "RGB"
    self.shape = (len(ds), height, width, channels)
    self.ndim = 4

  def __len__(self) -> int:
    return self.shape[0]

  def __getitem__(self, key):
    if isinstance(key, slice):
      return arrays.Rows(self, np.arange(*key.indices(len(self))))
    index = np.asarray(key)
    if index.dtype == bool:
      index = np.flatnonzero(index)
    flat = index.ravel()
    out = np.empty((len(flat), *self.shape[1:]), np.uint8)
    for j, (i, raw) in enumerate(zip(flat, self._raw(flat))):
      with self._open(raw, i) as im:
        try:
          pixels = np.asarray(im.convert(self._mode))
        except OSError as e:  # truncated or corrupt pixel data
          raise InputError(f"{self.where}: cannot read image {i}: {e}") from None
      if pixels.shape[:2] != self.shape[1:3]:
        raise InputError(f"{self.where}: image {i} is {pixels.shape[1]}x{pixels.shape[0]}, "
                         f"the others {self.shape[2]}x{self.shape[1]}")
      out[j] = pixels.reshape(self.shape[1:])
    return out.reshape(*index.shape, *self.shape[1:])

  def digest(self) -> str:
    """The data set's fingerprint, its Arrow files' sizes and mtimes, the column and shape."""
    stats = [(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in self._files]
    return arrays._hash(self._fingerprint, stats, self.key, self.shape)

  def _raw(self, rows) -> list[dict]:
    return self._ds[[int(i) for i in rows]][self.key] if len(rows) else []

  def _open(self, raw: dict, i) -> Image.Image:
    try:
      return Image.open(io.BytesIO(raw["bytes"]) if raw.get("bytes") else raw["path"])
    except UnidentifiedImageError:
      raise InputError(f"{self.where}: cannot read image {i}: not an image file") from None
    except (OSError, TypeError) as e:  # no bytes and no path, an unreadable path
      raise InputError(f"{self.where}: cannot read image {i}: {e}") from None
