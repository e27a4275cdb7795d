"""Image-classification data sets: labels in memory, images in memory or on disk.

`load(config)` reads one source (`config.name`), picks the split to clean and
the split to evaluate on, optionally replaces the training labels from a
`.npy` file, and checks everything before a run starts: a bad label or a NaN
pixel found after hours of training is too late. An example's index is its
position in the split, in the source's own order, so it is stable across runs.
Most sources load whole into memory; `arrayrecord:<dir>` (written once by
`python -m jaxclean.data.convert`) and `npy:<dir>` leave the images on disk and
read each batch by index (`jaxclean.data.arrays`), for data that does not fit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import os
import pathlib
import tarfile
import tempfile
import zipfile
import zlib
from typing import Iterator

import numpy as np
from PIL import Image

from jaxclean.errors import InputError, MissingFile
from jaxclean.data import arrays

NAMES = ("digits", "fashion_mnist", "cifar10", "tfds:<name>", "npz:<path>", "folder:<path>",
         "arrayrecord:<dir>", "npy:<dir>", "hf:<name or dir>")
STREAMED = ("arrayrecord", "npy", "hf")  # sources whose images stay on disk
ARRAYS = "arrays"  # the name of a data set given as arrays in Python (`from_arrays`)
EVAL_SLICE = 500  # from_arrays without a test split: evaluate on this many training examples
RECORD_FORMAT = 1  # meta.json "format" of `arrayrecord:` directories
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
# Beside the repository, as laid out for every session and CI: <repo>/../shared/data/cifar10.
CIFAR10_DIR = str(pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10")
# cifar10_labels value -> key in labels.npz (CIFAR-10N human label sets, official train order).
CIFAR10_LABEL_SETS = {"clean": "train_label", "aggre": "aggre_label", "worst": "worst_label",
                      "random1": "random_label1", "random2": "random_label2",
                      "random3": "random_label3"}
DIGITS_TEST_SIZE = 297
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_MEAN_STD_CHUNK = 2048


@dataclasses.dataclass(frozen=True)
class Split:
  """Images (N, H, W, C), uint8 or float32, and int32 labels (N,).

  The images are a numpy array, or an array-like that reads rows from disk
  when indexed (`jaxclean.data.arrays`).
  """
  images: np.ndarray
  labels: np.ndarray

  def __len__(self) -> int:
    return len(self.labels)

  @property
  def index(self) -> np.ndarray:
    """Stable example index: the position in the split."""
    return np.arange(len(self.labels))


@dataclasses.dataclass(frozen=True)
class Dataset:
  """The split to clean (`train`, labels_file applied) and the split to evaluate on.

  `train_clean_labels` holds the verified clean labels of `train` when its
  labels are a known noisy set (cifar10 with a CIFAR-10N label set), so that
  `train.labels != train_clean_labels` is the ground truth; None otherwise.
  """
  name: str
  train: Split
  test: Split
  num_classes: int
  class_names: tuple[str, ...]
  train_clean_labels: np.ndarray | None = None
  origin: str = ""  # where the examples came from (a directory, "tfds", ...): fixes their order
  raw_pixels: bool = False  # the model scales pixels itself (a fine-tuned backbone)

  def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel float32 mean and std of the train images (std >= 1e-6); with
    `raw_pixels` 0 and 1, so the step feeds the model the pixels as stored.

    Images in memory: one pass over chunks. Images on disk: the statistics the
    converter stored for the whole split, else those of `arrays.sample_index`'s
    10k rows, so a run never reads a large data set through just to normalise.
    """
    images = self.train.images
    if self.raw_pixels:
      return np.zeros(images.shape[-1], np.float32), np.ones(images.shape[-1], np.float32)
    if getattr(images, "mean_std", None) is not None:
      return images.mean_std
    if arrays.in_memory(images):
      chunks = (images[s:s + _MEAN_STD_CHUNK] for s in range(0, len(images), _MEAN_STD_CHUNK))
    else:
      rows = arrays.sample_index(len(images))
      chunks = (images[rows[s:s + _MEAN_STD_CHUNK]] for s in range(0, len(rows), _MEAN_STD_CHUNK))
    stats = PixelStats(images.shape[-1])
    for chunk in chunks:
      stats.add(chunk)
    return stats.mean_std()


class PixelStats:
  """Running per-channel pixel sums in float64: E[x^2] - E[x]^2 stays exact enough for
  pixel data, and no chunk becomes more than one float64 copy of itself."""

  def __init__(self, channels: int):
    self.count, self.total, self.squares = 0, np.zeros(channels), np.zeros(channels)

  def add(self, images: np.ndarray) -> None:
    x = images.reshape(-1, len(self.total)).astype(np.float64)
    self.count += len(x)
    self.total += x.sum(0)
    self.squares += np.einsum("ij,ij->j", x, x)

  def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
    mean = self.total / self.count
    std = np.maximum(np.sqrt(np.maximum(self.squares / self.count - mean**2, 0)), 1e-6)
    return mean.astype(np.float32), std.astype(np.float32)


def load(config) -> Dataset:
  """Loads `config.name` (see `NAMES`) into memory and checks it.

  config fields: name, data_dir, cache_dir, cifar10_labels, train_split
  (default 'train'), eval_split (default 'test'), labels_file ('' = none),
  train_size and eval_size (keep the first n examples of each split; 0 = all).
  """
  name = config.name
  kind, _, arg = name.partition(":")
  train_split = config.get("train_split", "train")
  eval_split = config.get("eval_split", "test")
  data_dir = config.get("data_dir", "")
  wanted = (train_split, eval_split)
  if name == "digits":
    splits, class_names, clean, origin = (_digits(), tuple(str(i) for i in range(10)), None,
                                          "sklearn")
  elif name == "fashion_mnist":
    splits, class_names, clean, origin = _fashion_mnist(data_dir, wanted)
  elif name == "cifar10":
    label_set = config.get("cifar10_labels", "clean")
    if label_set != "clean" and train_split != "train":
      raise InputError(f"cifar10_labels={label_set!r} relabels the 'train' split, but "
                       f"train_split={train_split!r}")
    splits, class_names, clean, origin = _cifar10(data_dir, config.get("cache_dir", ""), label_set, wanted)
  elif kind == "tfds" and arg:
    splits, class_names, clean, origin = _tfds(arg, data_dir, wanted)
  elif kind == "npz" and arg:
    splits, class_names, clean, origin = _npz(arg)
  elif kind == "folder" and arg:
    splits, class_names, clean, origin = _folder(arg)
  elif kind == "arrayrecord" and arg:
    splits, class_names, clean, origin = _arrayrecord(arg)
  elif kind == "npy" and arg:
    splits, class_names, clean, origin = _npy(arg)
  elif kind == "hf" and arg:
    from jaxclean.data import hf
    splits, names, clean, origin = hf.load(arg, config.get("image_key", ""),
                                           config.get("label_key", ""))
    class_names = _numbered_classes(splits, names, f"hf:{arg}")
  elif name == ARRAYS:
    raise InputError(f"data.name={ARRAYS!r} names arrays given in Python "
                     "(jaxclean.find_label_issues), which a config cannot load; valid names: "
                     f"{', '.join(NAMES)}")
  else:
    raise InputError(f"unknown data set {name!r}; valid names: {', '.join(NAMES)}")
  return _finish(config, name, splits, class_names, clean, origin)


def from_arrays(config, x, labels, x_test=None, y_test=None, class_names=None) -> Dataset:
  """A `Dataset` named `ARRAYS` from numpy arrays, checked as an `.npz` is.

  `x`: images (N, H, W, C) or (N, H, W), uint8 or float, or feature vectors
  (N, D), which become (N, 1, 1, D). Without `x_test`, the eval split is the
  first `EVAL_SLICE` training examples (a view, nothing held out): test accuracy
  is then that of the training labels on them.
  """
  if (x_test is None) != (y_test is None):
    raise InputError("give both x_test and y_test, or neither")
  x, labels = np.asarray(x), np.asarray(labels)
  if x_test is None:
    x_test, y_test = x[:EVAL_SLICE], labels[:EVAL_SLICE]
  splits = {}
  for split, (images, y) in (("train", (x, labels)), ("test", (x_test, y_test))):
    images = np.asarray(images)
    images = images[:, None, None, :] if images.ndim == 2 else images
    splits[split] = (_npz_images(images, split), _npz_labels(np.asarray(y), split))
  names = None if class_names is None else [str(c) for c in class_names]
  return _finish(config, ARRAYS, splits, _numbered_classes(splits, names, "class_names"), None,
                 ARRAYS)


def _finish(config, name: str, splits, class_names, clean, origin) -> Dataset:
  """The splits picked by `config`, checked, with labels_file and the prefixes applied."""
  train_split = config.get("train_split", "train")
  eval_split = config.get("eval_split", "test")
  for which, split in (("train_split", train_split), ("eval_split", eval_split)):
    if split not in splits:
      raise InputError(f"unknown {which} {split!r} for data set {name!r}; "
                       f"valid splits: {', '.join(splits)}")
  num_classes = len(class_names)
  train = _check_split(train_split, *splits[train_split], num_classes)
  test = _check_split(eval_split, *splits[eval_split], num_classes)
  if config.get("labels_file", ""):
    train = Split(train.images, _labels_file(config.labels_file, len(train), num_classes))
  # Optional prefixes in source order, for CPU-scale runs: indices stay positions.
  n_train, n_eval = config.get("train_size", 0), config.get("eval_size", 0)
  if n_train:
    train = Split(train.images[:n_train], train.labels[:n_train])
    clean = None if clean is None else clean[:n_train]
  if n_eval:
    test = Split(test.images[:n_eval], test.labels[:n_eval])
  if config.get("decisions_file", ""):
    train, clean = _decided(config.decisions_file, train, clean, num_classes)
  return Dataset(name, train, test, num_classes, tuple(class_names), clean, origin)


def _decided(path: str, train: Split, clean, num_classes: int):
  """The training split (and its clean labels) with a decisions file applied
  (`jaxclean.decide`): relabels, and dropped examples left out; the examples after a
  dropped one move up (indices are positions, among the kept)."""
  from jaxclean import decide
  labels, keep = decide.apply(train.labels, decide.read(path), num_classes,
                              f"decisions_file {path}")
  if keep.all():
    return Split(train.images, labels), clean
  return (Split(arrays.take(train.images, keep), labels[keep]),
          None if clean is None else clean[keep])


def _check_split(split: str, images: np.ndarray, labels: np.ndarray, num_classes: int) -> Split:
  """Split with int32 labels, or a ValueError naming the split and the problem."""
  where = f"split {split!r}"
  if images.ndim != 4:
    raise InputError(f"{where}: images must be 4-D (N, H, W, C), got shape {images.shape}")
  if len(images) == 0:
    raise InputError(f"{where} is empty")
  if images.dtype != np.uint8 and images.dtype != np.float32:
    raise InputError(f"{where}: images must be uint8 or float32, got {images.dtype}")
  # Images on disk are not read through here: a NaN among them makes the loss NaN, which
  # stops the run (`train.fit`).
  if images.dtype == np.float32 and arrays.in_memory(images) and not np.isfinite(images).all():
    bad = np.count_nonzero(~np.isfinite(images).reshape(len(images), -1).all(1))
    raise InputError(f"{where}: {bad} images contain NaN or inf pixels")
  if labels.ndim != 1 or len(labels) != len(images):
    raise InputError(f"{where}: labels must have shape ({len(images)},) to match the images, "
                     f"got {labels.shape}")
  if not np.issubdtype(labels.dtype, np.integer):
    raise InputError(f"{where}: labels must be integers, got {labels.dtype}")
  _check_range(labels, num_classes, where)
  return Split(images, labels.astype(np.int32))


def _check_range(labels: np.ndarray, num_classes: int, where: str) -> None:
  bad = (labels < 0) | (labels >= num_classes)
  if bad.any():
    raise InputError(f"{where}: {np.count_nonzero(bad)} labels outside [0, {num_classes}), "
                     f"e.g. {labels[bad][0]}")


def _labels_file(path: str, n: int, num_classes: int) -> np.ndarray:
  """Training labels from a .npy file of n integers in [0, num_classes)."""
  if not os.path.isfile(path):
    raise MissingFile(f"labels_file {path} does not exist or is not a file")
  with _reading(path, "a .npy array of integer labels (labels_file)"):
    labels = np.load(path, allow_pickle=False)
  if not isinstance(labels, np.ndarray):
    raise InputError(f"labels_file {path} must be a .npy array, not an .npz archive")
  if not np.issubdtype(labels.dtype, np.integer):
    raise InputError(f"labels_file {path}: labels must be integers, got {labels.dtype}")
  if labels.shape != (n,):
    raise InputError(f"labels_file {path}: expected {n} labels of shape ({n},), "
                     f"got shape {labels.shape}")
  _check_range(labels, num_classes, f"labels_file {path}")
  return labels.astype(np.int32)


def _require(path: pathlib.Path) -> pathlib.Path:
  if not path.exists():
    raise MissingFile(f"{path} does not exist")
  return path


@contextlib.contextmanager
def _reading(path, what: str):
  """Turns the errors of reading a damaged or wrong file (truncated, text, pickled, a
  directory) into one InputError naming `path` and what it should be."""
  try:
    yield
  except InputError:
    raise
  except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error,
          tarfile.TarError) as e:
    text = str(e).strip().splitlines()
    why = ("not a numpy file: text or pickled data" if "pickled" in str(e)
           else f"{type(e).__name__}{': ' + text[0][:200] if text else ''}")
    raise InputError(f"cannot read {path} as {what} ({why})") from None


def _digits():
  """scikit-learn's embedded 8x8 digits (1797 images, values 0..16).

  There is no official test split, so a fixed stratified split (seed 0) puts
  297 images in 'test' and 1500 in 'train', each kept in the original order.
  """
  from sklearn import datasets, model_selection
  digits = datasets.load_digits()
  images = digits.images.astype(np.uint8)[..., None]
  train, test = model_selection.train_test_split(
      np.arange(len(images)), test_size=DIGITS_TEST_SIZE, stratify=digits.target, random_state=0)
  return {s: (images[np.sort(i)], digits.target[np.sort(i)])
          for s, i in (("train", train), ("test", test))}


def _fashion_mnist(data_dir: str, wanted):
  """Fashion-MNIST from gzip'd idx files; TFDS when the default dir lacks them."""
  root = pathlib.Path(data_dir or FASHION_MNIST_DIR)
  files = {s: (root / f"{p}-images-idx3-ubyte.gz", root / f"{p}-labels-idx1-ubyte.gz")
           for s, p in (("train", "train"), ("test", "t10k"))}
  if not data_dir and not all(f.exists() for pair in files.values() for f in pair):
    return _tfds("fashion_mnist", "", wanted)
  splits = {s: (_read_idx(_require(x))[..., None], _read_idx(_require(y)))
            for s, (x, y) in files.items()}
  return splits, FASHION_MNIST_CLASSES, None, str(root)


def _read_idx(path: pathlib.Path) -> np.ndarray:
  """A uint8 idx array (the MNIST file format): zero, zero, type 0x08, ndim, big-endian dims."""
  with _reading(path, "a gzip'd uint8 idx file"):
    with gzip.open(path, "rb") as f:
      data = f.read()
    if data[:3] != b"\0\0\x08":
      raise InputError(f"{path} is not a uint8 idx file")
    ndim = data[3]
    shape = np.frombuffer(data, ">u4", ndim, offset=4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _cifar10(data_dir: str, cache_dir: str, label_set: str, wanted):
  """CIFAR-10 JPEGs + CIFAR-10N labels in official order; TFDS when the default dir is absent.

  The TFDS fallback has only the clean labels, and its example order is not
  the official one.
  """
  if label_set not in CIFAR10_LABEL_SETS:
    raise InputError(f"unknown cifar10_labels {label_set!r}; "
                     f"valid: {', '.join(CIFAR10_LABEL_SETS)}")
  if not data_dir and not os.path.isdir(CIFAR10_DIR):
    if label_set != "clean":
      raise InputError(f"cifar10_labels={label_set!r} needs labels.npz in {CIFAR10_DIR} "
                       "(or data_dir); TFDS cifar10 has only the clean labels")
    return _tfds("cifar10", "", wanted)
  root = pathlib.Path(data_dir or CIFAR10_DIR)
  labels, clean, test_labels, class_names = read_cifar10_labels(
      _require(root / "labels.npz"), label_set)
  images = _cached_jpeg_tar(_require(root / "cifar10_jpeg.tar.gz"), cache_dir,
                            {"train": len(labels), "test": len(test_labels)})
  splits = {"train": (images["train"], labels), "test": (images["test"], test_labels)}
  return splits, class_names, None if label_set == "clean" else clean, str(root)


def read_cifar10_labels(path: pathlib.Path, label_set: str):
  """(train labels of `label_set`, clean train labels, test labels, class names) from labels.npz."""
  with _reading(path, "CIFAR-10N's labels.npz"), np.load(path, allow_pickle=False) as f:
    return (f[CIFAR10_LABEL_SETS[label_set]], f["train_label"], f["test_label"],
            tuple(str(c) for c in f["class_names"]))


def _cached_jpeg_tar(tar: pathlib.Path, cache_dir: str, sizes: dict[str, int]) -> dict:
  """Decoded images of the tar, cached as an .npz keyed by the tar's size and mtime.

  Decoding 60k JPEGs takes ~15 s and reading the cache well under one; a
  changed tar gets a new key and is decoded again. The cache is written to a
  temporary file and renamed, so an interrupted write never leaves a bad one.
  """
  cache = pathlib.Path(cache_dir or "~/.cache/jaxclean").expanduser()
  stat = tar.stat()
  path = cache / f"{tar.name.split('.')[0]}_{stat.st_size}_{stat.st_mtime_ns}.npz"
  if path.exists():
    with np.load(path) as f:
      return {s: f[s] for s in f.files}
  with _reading(tar, "a tar.gz of JPEG images"):
    images = _decode_jpeg_tar(tar, sizes)
  cache.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=cache, suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **images)
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise
  return images


def _decode_jpeg_tar(tar: pathlib.Path, sizes: dict[str, int]) -> dict[str, np.ndarray]:
  """Images of members named `<split>/<index>.jpg`, each put at its index, as RGB uint8."""
  images = {}
  seen = {s: np.zeros(n, bool) for s, n in sizes.items()}
  with tarfile.open(tar) as archive:
    for member in archive:
      if not member.isfile():
        continue
      name = pathlib.PurePosixPath(member.name)
      split, stem = name.parent.name, name.stem
      if split not in sizes or not stem.isdigit() or int(stem) >= sizes[split]:
        raise InputError(f"{tar}: unexpected member {member.name!r}")
      with Image.open(archive.extractfile(member)) as im:
        pixels = np.asarray(im.convert("RGB"))
      if split not in images:
        images[split] = np.empty((sizes[split], *pixels.shape), np.uint8)
      images[split][int(stem)] = pixels
      seen[split][int(stem)] = True
  for split, found in seen.items():
    if not found.all():
      raise InputError(f"{tar}: {np.count_nonzero(~found)} of {len(found)} {split!r} images "
                       "are missing")
  return images


def _tfds(name: str, data_dir: str, wanted):
  """Any TFDS image-classification data set (`tfds_sources`), read into memory: this
  suits data sets that fit in RAM; `jaxclean.data.convert` streams the others to disk."""
  split_sources, class_names, origin = tfds_sources(name, data_dir, wanted)
  splits = {split: _read_records(source, f"tfds:{name} split {split!r}")
            for split, source in split_sources.items()}
  return splits, class_names, None, origin


def tfds_sources(name: str, data_dir: str, wanted) -> tuple[dict, tuple[str, ...], str]:
  """({split: data source}, class names, origin) of a TFDS set with `image` and `label`.

  Read the way `tfds.data_source` does (ArrayRecord, no TensorFlow needed),
  after `download_and_prepare` when the data is not there yet. Data that
  `tfds.load` prepared as TFRecord has no random access and is refused with a
  hint.
  """
  import tensorflow_datasets as tfds
  builder = tfds.builder(name, data_dir=data_dir or None)
  features = builder.info.features
  if "image" not in features or "label" not in features:
    raise InputError(f"tfds:{name} needs 'image' and 'label' features, has {list(features)}")
  if not builder.is_prepared():
    builder.download_and_prepare(file_format="array_record")
  wanted = list(dict.fromkeys(wanted))  # tfds says which splits exist if one does not
  try:
    split_sources = builder.as_data_source(split=wanted)
  except NotImplementedError as e:
    raise InputError(f"tfds:{name} at {builder.data_dir} is prepared as "
                     f"{builder.info.file_format.value}, which has no random access; convert it "
                     "with `tfds convert_format --out_file_format=array_record` (needs "
                     "TensorFlow) or prepare it again in another data_dir") from e
  return (dict(zip(wanted, split_sources)), tuple(features["label"].names),
          f"tfds:{builder.data_dir}")


def _read_records(source, where: str) -> tuple[np.ndarray, np.ndarray]:
  """Every (image, label) record of a TFDS data source, in its order."""
  if len(source) == 0:  # left for _check_split to report
    return np.zeros((0, 1, 1, 1), np.uint8), np.zeros(0, np.int64)
  first = source[0]["image"]
  images = np.empty((len(source), *first.shape), first.dtype)
  labels = np.empty(len(source), np.int64)
  for i, example in enumerate(source):
    if example["image"].shape != first.shape:
      raise InputError(f"{where}: image {i} has shape {example['image'].shape}, "
                       f"expected {first.shape}")
    images[i], labels[i] = example["image"], example["label"]
  return images, labels


def _npz(path: str):
  """Keras-style x_train, y_train, x_test, y_test, optional class_names; classes 0..max label."""
  with _reading(path, "an .npz of x_train, y_train, x_test, y_test"):
    f = np.load(_require(pathlib.Path(path)), allow_pickle=False)
    if not isinstance(f, np.lib.npyio.NpzFile):
      raise InputError(f"{path} is a single .npy array, not an .npz archive")
    with f:
      missing = {"x_train", "y_train", "x_test", "y_test"} - set(f.files)
      if missing:
        raise InputError(f"{path} lacks arrays {sorted(missing)}")
      splits = {s: (_npz_images(f[f"x_{s}"], s), _npz_labels(f[f"y_{s}"], s))
                for s in ("train", "test")}
      names = _class_names(f["class_names"], path) if "class_names" in f.files else None
  return splits, _numbered_classes(splits, names, path), None, str(pathlib.Path(path).resolve())


def _class_names(names: np.ndarray, path) -> list[str]:
  if names.ndim != 1:
    raise InputError(f"{path}: class_names must be a 1-D array of names, got shape {names.shape}")
  return [str(c) for c in names]


def _numbered_classes(splits: dict, names: list[str] | None, path) -> list[str]:
  """`names`, or "0", "1", ... up to the largest label of any split."""
  num_classes = 1 + max(int(y.max(initial=-1)) for _, y in splits.values())
  if names is not None and len(names) < num_classes:
    raise InputError(f"{path}: class_names has {len(names)} names for labels up to "
                     f"{num_classes - 1}")
  return names or [str(i) for i in range(num_classes)]


def _npy(path: str):
  """`<path>/{x,y}_{train,test}.npy`: images memory-mapped, never read whole; classes
  0..max label. Images must be uint8 or float32 already, (N, H, W) or (N, H, W, C)."""
  root = _require(pathlib.Path(path))
  splits = {}
  for split in ("train", "test"):
    x_path, y_path = _require(root / f"x_{split}.npy"), _require(root / f"y_{split}.npy")
    with _reading(x_path, "a .npy array of images"):
      x = np.load(x_path, mmap_mode="r", allow_pickle=False)
    if x.dtype != np.uint8 and x.dtype != np.float32:
      raise InputError(f"{x_path}: images left on disk must be uint8 or float32, got {x.dtype}")
    with _reading(y_path, "a .npy array of integer labels"):
      y = np.load(y_path, allow_pickle=False)
    splits[split] = (x[..., None] if x.ndim == 3 else x, _npz_labels(y, split))
  return splits, _numbered_classes(splits, None, root), None, str(root.resolve())


def _arrayrecord(path: str):
  """A directory written by `jaxclean.data.convert`: `<split>.array_record` (images, read
  by index), `<split>_labels.npy` and `meta.json` (shape, dtype, classes, counts, and
  each split's pixel mean and std)."""
  root = _require(pathlib.Path(path))
  meta_bytes = _require(root / "meta.json").read_bytes()
  try:
    meta = json.loads(meta_bytes)
    version = meta["format"]
    if version == RECORD_FORMAT:
      shape, dtype = tuple(int(d) for d in meta["image_shape"]), np.dtype(meta["dtype"])
      class_names = tuple(str(c) for c in meta["class_names"])
      split_info = {split: (int(info["count"]), (np.array(info["mean"], np.float32),
                                                  np.array(info["std"], np.float32)))
                    for split, info in meta["splits"].items()}
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise InputError(f"{root}/meta.json is not a converter's meta.json ({e!r})") from None
  if version != RECORD_FORMAT:
    raise InputError(f"{root}/meta.json has format {version}, this jaxclean reads format "
                     f"{RECORD_FORMAT}; convert the source again")
  splits = {}
  for split, (count, mean_std) in split_info.items():
    records = _require(root / f"{split}.array_record")
    labels_path = _require(root / f"{split}_labels.npy")
    try:
      images = arrays.RecordImages(str(records), shape, dtype, meta_bytes, mean_std)
    except (OSError, RuntimeError, ValueError) as e:  # array_record raises RuntimeError
      raise InputError(f"cannot read {records} as an ArrayRecord file ({e})") from None
    with _reading(labels_path, "a .npy array of integer labels"):
      labels = np.load(labels_path, allow_pickle=False)
    if not len(images) == len(labels) == count:
      raise InputError(f"{root}: split {split!r} has {len(images)} records and {len(labels)} "
                       f"labels, meta.json says {count}")
    splits[split] = (images, labels)
  return splits, class_names, None, str(root.resolve())


def _npz_images(x: np.ndarray, split: str) -> np.ndarray:
  """Grayscale (N, H, W) gets a channel axis; floats become float32, integers 0..255 uint8."""
  x = x[..., None] if x.ndim == 3 else x
  if np.issubdtype(x.dtype, np.floating):
    return x.astype(np.float32, copy=False)
  if np.issubdtype(x.dtype, np.integer) and (x.size == 0 or (x.min() >= 0 and x.max() <= 255)):
    return x.astype(np.uint8, copy=False)
  raise InputError(f"split {split!r}: images must be floats or integers in 0..255, got {x.dtype}")


def _npz_labels(y: np.ndarray, split: str) -> np.ndarray:
  """Keras stores some labels as (N, 1); anything else must be 1-D already."""
  y = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
  if not np.issubdtype(y.dtype, np.integer):
    raise InputError(f"split {split!r}: labels must be integers, got {y.dtype}")
  return y


def _folder(path: str):
  """`folder:<path>` decoded into memory (see `Folder`)."""
  folder = Folder.scan(path)
  splits = {}
  for split, pairs in folder.files.items():
    images = np.empty((len(pairs), *folder.shape), np.uint8)
    for i, image in enumerate(folder.images(split)):
      images[i] = image
    splits[split] = (images, np.array([c for _, c in pairs], np.int64))
  return splits, folder.classes, None, str(folder.root.resolve())


@dataclasses.dataclass(frozen=True)
class Folder:
  """`<root>/{train,test}/<class>/<image>`: classes sorted by name, files sorted within a class.

  All images must have one size. They are decoded as grayscale (C=1) when all
  are grayscale, else as RGB. `scan` reads only the files' headers;
  `images(split)` decodes one image at a time, so the converter streams a
  folder of any size.
  """
  root: pathlib.Path
  classes: tuple[str, ...]
  files: dict[str, list[tuple[pathlib.Path, int]]]  # split -> (file, class index) in order
  shape: tuple[int, int, int]  # (H, W, C)

  @classmethod
  def scan(cls, path: str) -> "Folder":
    root = _require(pathlib.Path(path))
    classes = sorted(d.name for d in _require(root / "train").iterdir() if d.is_dir())
    files = {}
    for split in ("train", "test"):
      split_dir = _require(root / split)
      extra = {d.name for d in split_dir.iterdir() if d.is_dir()} - set(classes)
      if extra:
        raise InputError(f"{split_dir}: classes {sorted(extra)} are not in {root / 'train'}")
      files[split] = [(f, c) for c, name in enumerate(classes) if (split_dir / name).is_dir()
                      for f in sorted((split_dir / name).iterdir())
                      if f.suffix.lower() in IMAGE_SUFFIXES]
    headers = {}
    for f, _ in files["train"] + files["test"]:
      with _open_image(f) as im:
        headers[f] = (im.size, im.mode)
    return cls(root, tuple(classes), files, arrays.image_shape(headers, root))

  def images(self, split: str) -> Iterator[np.ndarray]:
    """The split's images in order, each (H, W, C) uint8."""
    mode = "L" if self.shape[-1] == 1 else "RGB"
    for f, _ in self.files[split]:
      with _open_image(f) as im:
        try:
          yield np.asarray(im.convert(mode)).reshape(self.shape)
        except OSError as e:  # truncated or corrupt pixel data
          raise InputError(f"cannot read image {f}: {e}") from None


def _open_image(path: pathlib.Path) -> Image.Image:
  try:
    return Image.open(path)
  except OSError as e:  # includes PIL.UnidentifiedImageError
    raise InputError(f"cannot read image {path}: {e}") from None
