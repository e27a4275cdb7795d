"""Converts a data source, once, into an `arrayrecord:<dir>` that runs stream from.

  python -m jaxclean.data.convert --source=folder:/data/images --out=/data/images_ar
  python -m jaxclean.main --config=configs/default.py --workdir=runs/big \
      --config.data.name=arrayrecord:/data/images_ar

Writes, for the splits train and test, `<split>.array_record` (one record per
image: its raw bytes, row major, then its label as a little-endian int32;
`group_size:1` and uncompressed, so any record reads alone and decodes with one
`np.frombuffer`) and `<split>_labels.npy` (so that loading the labels never
reads the images), then `meta.json` (image shape, dtype, class names, each
split's count and per-channel pixel mean and std, the source). meta.json comes
last and goes first: a directory without it is an unfinished conversion.
`folder:` sources are decoded one image at a time, so a folder of any size
converts in constant memory; any other source (`npz:`, `tfds:`, `digits`, ...)
is loaded the way a run loads it. Bad input: one line on stderr, exit status 2.
"""

from __future__ import annotations

import os
import sys
from typing import Iterable

import ml_collections
import numpy as np
import tqdm
from absl import app, flags

from jaxclean import outputs
from jaxclean.checks import InputError
from jaxclean.data import sources

WRITER_OPTIONS = "group_size:1,uncompressed"

_SOURCE = flags.DEFINE_string("source", None, "The data to convert: folder:<path>, npz:<path>, "
                              "tfds:<name>, or any other data.name that holds the data in memory.")
_OUT = flags.DEFINE_string("out", None, "Directory to write (created; its files are replaced).")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "The source's data.data_dir (tfds, cifar10).")


def convert(source: str, out: str, data_dir: str = "") -> dict:
  """Writes `source`'s train and test splits to `out` (see the module doc); returns meta.json."""
  kind, _, arg = source.partition(":")
  if kind in sources.STREAMED:
    raise InputError(f"{source} is already read from disk; nothing to convert")
  if kind == "folder" and arg:
    folder = sources.Folder.scan(arg)
    shape, dtype, class_names = folder.shape, np.dtype(np.uint8), folder.classes
    splits = {s: (folder.images(s), np.array([c for _, c in folder.files[s]], np.int32))
              for s in ("train", "test")}
  else:
    ds = sources.load(ml_collections.ConfigDict(dict(name=source, data_dir=data_dir)))
    shape, dtype, class_names = ds.train.images.shape[1:], ds.train.images.dtype, ds.class_names
    if ds.test.images.shape[1:] != shape:
      raise InputError(f"{source}: test images are {ds.test.images.shape[1:]}, train {shape}")
    splits = {"train": (ds.train.images, ds.train.labels), "test": (ds.test.images, ds.test.labels)}
  for split, (_, labels) in splits.items():
    if not len(labels):
      raise InputError(f"{source}: split {split!r} is empty")
  meta_path = os.path.join(out, "meta.json")
  if os.path.exists(meta_path):
    os.remove(meta_path)
  info = {split: _write_split(out, split, images, labels, shape, dtype)
          for split, (images, labels) in splits.items()}
  meta = dict(format=sources.RECORD_FORMAT, image_shape=list(shape), dtype=dtype.name,
              class_names=list(class_names), splits=info, source=source)
  outputs.write_json(meta_path, meta)
  return meta


def _write_split(out: str, split: str, images: Iterable[np.ndarray], labels: np.ndarray,
                 shape: tuple[int, ...], dtype: np.dtype) -> dict:
  """Writes one split's records and labels; returns its count and pixel statistics."""
  from array_record.python.array_record_module import ArrayRecordWriter
  stats = sources.PixelStats(shape[-1])
  with outputs.atomic_path(os.path.join(out, f"{split}.array_record")) as tmp:
    writer = ArrayRecordWriter(tmp, WRITER_OPTIONS)
    try:
      for image, label in tqdm.tqdm(zip(images, labels), total=len(labels), desc=split,
                                    unit="image", disable=None):  # disable=None: off unless a tty
        stats.add(image)
        writer.write(np.ascontiguousarray(image, dtype).tobytes()
                     + int(label).to_bytes(4, "little", signed=True))
    finally:
      writer.close()
  with outputs.atomic_path(os.path.join(out, f"{split}_labels.npy")) as tmp, open(tmp, "wb") as f:
    np.save(f, np.asarray(labels, np.int32))
  mean, std = stats.mean_std()
  return dict(count=len(labels), mean=mean.tolist(), std=std.tolist())


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  try:
    meta = convert(_SOURCE.value, _OUT.value, _DATA_DIR.value)
  except InputError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  counts = ", ".join(f"{s} {v['count']:,}" for s, v in meta["splits"].items())
  print(f"wrote {_OUT.value}: {counts} images of {tuple(meta['image_shape'])} "
        f"{meta['dtype']}; train with --config.data.name=arrayrecord:{_OUT.value}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["source", "out"])
  app.run(main)
