"""Converts a data source, once, into an `arrayrecord:<dir>` that runs stream from.

  python -m jaxclean.data.convert --source=folder:/data/images --out=/data/images_ar
  python -m jaxclean.main --config=configs/default.py --workdir=runs/big \
      --config.data.name=arrayrecord:/data/images_ar

Writes, for each of two splits, `<split>.array_record` (one record per
image: its raw bytes, row major, then its label as a little-endian int32;
`group_size:1` and uncompressed, so any record reads alone and decodes with one
`np.frombuffer`) and `<split>_labels.npy` (so that loading the labels never
reads the images), then `meta.json` (image shape, dtype, class names, each
split's count and per-channel pixel mean and std, the source). meta.json comes
last and goes first: a directory without it is an unfinished conversion.
`folder:` and `tfds:` sources are read one example at a time, so data of any
size converts (only the labels and a folder's file list stay in memory); any
other source (`npz:`, `digits`, ...) is loaded the way a run loads it. `--splits` names the
two splits to convert (tfds: e.g. `train,validation`). Bad input: one line on
stderr, exit status 2.
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
from jaxclean.errors import InputError
from jaxclean.data import sources

WRITER_OPTIONS = "group_size:1,uncompressed"

_SOURCE = flags.DEFINE_string("source", None, "The data to convert: folder:<path>, tfds:<name>, "
                              "npz:<path>, or any other data.name.")
_OUT = flags.DEFINE_string("out", None, "Directory to write (created; its files are replaced).")
_SPLITS = flags.DEFINE_list("splits", ["train", "test"], "The source's two splits to convert "
                            "(folder: train,test; tfds: e.g. train,validation).")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "The source's data.data_dir (tfds, cifar10).")


def convert(source: str, out: str, splits=("train", "test"), data_dir: str = "") -> dict:
  """Writes `source`'s two `splits` to `out` (see the module doc); returns meta.json's content.

  folder: and tfds: sources stream one example at a time; others load whole.
  """
  kind, _, arg = source.partition(":")
  if kind in sources.STREAMED:
    raise InputError(f"{source} is already read from disk; nothing to convert")
  if len(splits) != 2:
    raise InputError(f"name two splits to convert (to clean, to evaluate), got {list(splits)}")
  if kind == "folder" and arg:
    folder = sources.Folder.scan(arg)
    if set(splits) != set(folder.files):
      raise InputError(f"{source} has the splits train and test, not {list(splits)}")
    class_names, shape, dtype = folder.classes, folder.shape, np.dtype(np.uint8)
    examples = {s: (zip(folder.images(s), [c for _, c in folder.files[s]]), len(folder.files[s]))
                for s in splits}
  elif kind == "tfds" and arg:
    split_sources, class_names, _ = sources.tfds_sources(arg, data_dir, splits)
    if not len(split_sources[splits[0]]):
      raise InputError(f"{source}: split {splits[0]!r} is empty")
    first = np.asarray(split_sources[splits[0]][0]["image"])  # the shape every image must have
    shape, dtype = first.shape, first.dtype
    examples = {s: (((x["image"], x["label"]) for x in src), len(src))
                for s, src in split_sources.items()}
  else:
    ds = sources.load(ml_collections.ConfigDict(dict(
        name=source, data_dir=data_dir, train_split=splits[0], eval_split=splits[1])))
    class_names, shape, dtype = ds.class_names, ds.train.images.shape[1:], ds.train.images.dtype
    examples = {s: (zip(split.images, split.labels), len(split))
                for s, split in zip(splits, (ds.train, ds.test))}
  if len(shape) != 3:
    raise InputError(f"{source}: images must be (H, W, C), got {shape}")
  for split, (_, count) in examples.items():
    if not count:
      raise InputError(f"{source}: split {split!r} is empty")
  meta_path = os.path.join(out, "meta.json")
  if os.path.exists(meta_path):
    os.remove(meta_path)
  info = {split: _write_split(out, split, pairs, count, shape, dtype, f"{source} split {split!r}")
          for split, (pairs, count) in examples.items()}
  meta = dict(format=sources.RECORD_FORMAT, image_shape=list(shape), dtype=dtype.name,
              class_names=list(class_names), splits=info, source=source)
  outputs.write_json(meta_path, meta)
  return meta


def _write_split(out: str, split: str, pairs: Iterable[tuple[np.ndarray, int]], count: int,
                 shape: tuple[int, ...], dtype: np.dtype, where: str) -> dict:
  """Writes one split's records and labels from its `count` (image, label) pairs, each image
  of `shape` and `dtype`; returns the split's count and pixel statistics."""
  from array_record.python.array_record_module import ArrayRecordWriter
  labels = np.empty(count, np.int32)
  stats = sources.PixelStats(shape[-1])
  with outputs.atomic_path(os.path.join(out, f"{split}.array_record")) as tmp:
    writer = ArrayRecordWriter(tmp, WRITER_OPTIONS)
    try:
      for i, (image, label) in enumerate(tqdm.tqdm(pairs, total=count, desc=split, unit="image",
                                                   disable=None)):  # None: off unless a tty
        image = np.asarray(image)
        if image.shape != shape or image.dtype != dtype:
          raise InputError(f"{where}: image {i} is {image.shape} {image.dtype}, not "
                           f"{shape} {dtype} as the first")
        stats.add(image)
        labels[i] = label
        writer.write(image.tobytes() + int(label).to_bytes(4, "little", signed=True))
    finally:
      writer.close()
  with outputs.atomic_path(os.path.join(out, f"{split}_labels.npy")) as tmp, open(tmp, "wb") as f:
    np.save(f, labels)
  mean, std = stats.mean_std()
  return dict(count=count, mean=mean.tolist(), std=std.tolist())


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  try:
    meta = convert(_SOURCE.value, _OUT.value, _SPLITS.value, _DATA_DIR.value)
  except InputError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  counts = ", ".join(f"{s} {v['count']:,}" for s, v in meta["splits"].items())
  print(f"wrote {_OUT.value}: {counts} images of {tuple(meta['image_shape'])} "
        f"{meta['dtype']}; train with --config.data.name=arrayrecord:{_OUT.value}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["source", "out"])
  app.run(main)
