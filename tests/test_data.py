"""Data sources: shapes, order, labels, caching and the checks made before training."""

import io
import json
import os
import pathlib
import tarfile

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image
from sklearn import datasets

from conftest import ROOT
from jaxclean import data
from jaxclean.data import sources

FASHION_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")
REAL_CIFAR10_LABELS = pathlib.Path("/work/shared/data/cifar10/labels.npz")


def config(name, **overrides):
  fields = dict(name=name, data_dir="", cache_dir="", cifar10_labels="clean",
                train_split="train", eval_split="test", labels_file="")
  return ml_collections.ConfigDict({**fields, **overrides})


# digits and the generic checks --------------------------------------------------------------


def test_digits_stratified_split_covers_every_example_once():
  ds = data.load(config("digits"))
  assert ds.train.images.shape == (1500, 8, 8, 1) and ds.test.images.shape == (297, 8, 8, 1)
  assert ds.train.images.dtype == np.uint8 and ds.train.labels.dtype == np.int32
  assert ds.train.images.max() == 16 and ds.num_classes == 10 and len(ds.class_names) == 10
  assert ds.train_clean_labels is None
  np.testing.assert_array_equal(ds.train.index, np.arange(1500))
  digits = datasets.load_digits()
  # Stratified: each class's share of the test split is its share of the whole, +-1 example.
  expected = np.bincount(digits.target) * 297 / len(digits.target)
  assert np.abs(np.bincount(ds.test.labels, minlength=10) - expected).max() <= 1
  # Every original (image, label) appears exactly once across the two splits.
  def rows(images, labels):
    return sorted(map(bytes, np.column_stack([images.reshape(len(images), -1), labels])
                      .astype(np.uint8)))
  both = rows(np.concatenate([ds.train.images, ds.test.images]),
              np.concatenate([ds.train.labels, ds.test.labels]))
  assert both == rows(digits.images, digits.target)
  again = data.load(config("digits"))
  np.testing.assert_array_equal(again.test.images, ds.test.images)


def test_train_and_eval_split_can_be_swapped():
  ds = data.load(config("digits"))
  swapped = data.load(config("digits", train_split="test", eval_split="train"))
  np.testing.assert_array_equal(swapped.train.images, ds.test.images)
  np.testing.assert_array_equal(swapped.test.labels, ds.train.labels)


def test_mean_std_matches_a_direct_computation(monkeypatch):
  monkeypatch.setattr(sources, "_MEAN_STD_CHUNK", 7)  # many chunks, a ragged last one
  ds = data.load(config("digits"))
  mean, std = ds.mean_std()
  pixels = ds.train.images.astype(np.float64)
  assert mean.dtype == np.float32 and mean.shape == (1,)
  np.testing.assert_allclose(mean, pixels.mean((0, 1, 2)), rtol=1e-6)
  np.testing.assert_allclose(std, pixels.std((0, 1, 2)), rtol=1e-5)


def test_mean_std_floors_a_constant_channel(tmp_path):
  x = np.full((4, 2, 2, 2), 7, np.uint8)
  x[..., 1] = np.arange(16).reshape(4, 2, 2)
  path = _npz(tmp_path, x_train=x, y_train=np.zeros(4, int), x_test=x, y_test=np.zeros(4, int))
  mean, std = data.load(config(f"npz:{path}")).mean_std()
  np.testing.assert_allclose(mean, [7, 7.5])
  np.testing.assert_allclose(std, [1e-6, np.arange(16).std()], rtol=1e-6)


def test_unknown_name_lists_the_valid_ones():
  for name in ("mnist", "tfds:", "npz"):
    with pytest.raises(ValueError, match=f"unknown data set '{name}'.*digits.*folder:<path>"):
      data.load(config(name))


def test_unknown_split():
  with pytest.raises(ValueError, match="unknown eval_split 'val' for data set 'digits'.*train"):
    data.load(config("digits", eval_split="val"))


# labels_file --------------------------------------------------------------------------------


def test_labels_file_replaces_train_labels(tmp_path):
  clean = data.load(config("digits"))
  path = tmp_path / "labels.npy"
  np.save(path, (clean.train.labels.astype(np.int64) + 1) % 10)
  ds = data.load(config("digits", labels_file=str(path)))
  np.testing.assert_array_equal(ds.train.labels, (clean.train.labels + 1) % 10)
  assert ds.train.labels.dtype == np.int32
  np.testing.assert_array_equal(ds.test.labels, clean.test.labels)


@pytest.mark.parametrize("labels, error, message", [
    (None, FileNotFoundError, "labels_file .*missing.npy does not exist"),
    (np.zeros(1500, np.float32), ValueError, "labels.npy: labels must be integers, got float32"),
    (np.zeros(1499, int), ValueError, r"labels.npy: expected 1500 labels .* got shape \(1499,\)"),
    (np.zeros((1500, 1), int), ValueError, r"expected 1500 labels .* got shape \(1500, 1\)"),
    (np.r_[np.zeros(1497, int), 10, -1, 10], ValueError,
     r"labels.npy: 3 labels outside \[0, 10\), e.g. 10"),
])
def test_labels_file_errors(tmp_path, labels, error, message):
  path = tmp_path / "labels.npy"
  if labels is not None:
    np.save(path, labels)
  else:
    path = tmp_path / "missing.npy"
  with pytest.raises(error, match=message):
    data.load(config("digits", labels_file=str(path)))


# fashion_mnist ------------------------------------------------------------------------------


@pytest.mark.skipif(not FASHION_DIR.exists(), reason="Debian package dataset-fashion-mnist absent")
def test_fashion_mnist_from_debian_idx_files():
  ds = data.load(config("fashion_mnist"))
  assert ds.train.images.shape == (60000, 28, 28, 1) and ds.test.images.shape == (10000, 28, 28, 1)
  assert ds.train.images.dtype == np.uint8 and ds.class_names[0] == "T-shirt/top"
  # Fashion-MNIST is balanced: 6000 train and 1000 test images per class.
  np.testing.assert_array_equal(np.bincount(ds.train.labels), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(ds.test.labels), [1000] * 10)


def test_fashion_mnist_explicit_dir_must_hold_the_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz does not exist"):
    data.load(config("fashion_mnist", data_dir=str(tmp_path)))


# cifar10 (a tiny directory with the layout of /work/shared/data/cifar10) -------------------

CIFAR_SETS = {"clean": "train_label", "aggre": "aggre_label", "worst": "worst_label",
              "random1": "random_label1", "random2": "random_label2", "random3": "random_label3"}


def _colour(split, i):
  return (40 * i + 10, 200 - 30 * i, 120 if split == "train" else 30)


@pytest.fixture
def cifar_dir(tmp_path):
  """7 train and 3 test flat-coloured 8x8 JPEGs, stored out of order; CIFAR-10N-style labels."""
  root = tmp_path / "cifar10"
  root.mkdir()
  members = [("train", i) for i in range(7)] + [("test", i) for i in range(3)]
  order = np.random.default_rng(0).permutation(len(members))
  with tarfile.open(root / "cifar10_jpeg.tar.gz", "w:gz") as tar:
    for split, i in (members[k] for k in order):
      buf = io.BytesIO()
      Image.new("RGB", (8, 8), _colour(split, i)).save(buf, "JPEG", quality=95)
      info = tarfile.TarInfo(f"{split}/{i:05d}.jpg")
      info.size = buf.tell()
      buf.seek(0)
      tar.addfile(info, buf)
  rng = np.random.default_rng(1)
  labels = {key: rng.integers(0, 10, 7) for key in CIFAR_SETS.values()}
  np.savez(root / "labels.npz", test_label=np.array([3, 1, 4]),
           class_names=np.array([f"class{c}" for c in range(10)]), **labels)
  return root


def _cifar(root, tmp_path, **overrides):
  return data.load(config("cifar10", data_dir=str(root), cache_dir=str(tmp_path / "cache"),
                          **overrides))


def test_cifar10_puts_each_jpeg_at_its_index(cifar_dir, tmp_path):
  ds = _cifar(cifar_dir, tmp_path)
  assert ds.train.images.shape == (7, 8, 8, 3) and ds.test.images.shape == (3, 8, 8, 3)
  assert ds.train.images.dtype == np.uint8
  for split, images in (("train", ds.train.images), ("test", ds.test.images)):
    for i, image in enumerate(images):
      np.testing.assert_allclose(image.reshape(-1, 3).mean(0), _colour(split, i), atol=4)
  with np.load(cifar_dir / "labels.npz") as f:
    np.testing.assert_array_equal(ds.train.labels, f["train_label"])
    np.testing.assert_array_equal(ds.test.labels, f["test_label"])
  assert ds.class_names == tuple(f"class{c}" for c in range(10)) and ds.num_classes == 10
  assert ds.train_clean_labels is None


@pytest.mark.parametrize("label_set", [s for s in CIFAR_SETS if s != "clean"])
def test_cifar10n_label_sets(cifar_dir, tmp_path, label_set):
  ds = _cifar(cifar_dir, tmp_path, cifar10_labels=label_set)
  with np.load(cifar_dir / "labels.npz") as f:
    np.testing.assert_array_equal(ds.train.labels, f[CIFAR_SETS[label_set]])
    np.testing.assert_array_equal(ds.train_clean_labels, f["train_label"])
    np.testing.assert_array_equal(ds.test.labels, f["test_label"])


def test_cifar10_cache_is_reused_until_the_tar_changes(cifar_dir, tmp_path, monkeypatch):
  first = _cifar(cifar_dir, tmp_path)
  cache = tmp_path / "cache"
  assert [p.suffix for p in cache.iterdir()] == [".npz"]  # no temporary file left behind
  decode = sources._decode_jpeg_tar
  calls = []
  monkeypatch.setattr(sources, "_decode_jpeg_tar", lambda *a: calls.append(a) or decode(*a))
  again = _cifar(cifar_dir, tmp_path)
  assert not calls
  np.testing.assert_array_equal(again.train.images, first.train.images)
  tar = cifar_dir / "cifar10_jpeg.tar.gz"
  os.utime(tar, ns=(tar.stat().st_atime_ns, tar.stat().st_mtime_ns + 10**9))
  refreshed = _cifar(cifar_dir, tmp_path)
  assert len(calls) == 1 and len(list(cache.iterdir())) == 2
  np.testing.assert_array_equal(refreshed.test.images, first.test.images)


def test_cifar10_errors(cifar_dir, tmp_path):
  with pytest.raises(ValueError, match="relabels the 'train' split"):
    _cifar(cifar_dir, tmp_path, cifar10_labels="aggre", train_split="test", eval_split="train")
  with pytest.raises(ValueError, match="unknown cifar10_labels 'noisy'"):
    _cifar(cifar_dir, tmp_path, cifar10_labels="noisy")
  with pytest.raises(FileNotFoundError, match="nowhere/labels.npz does not exist"):
    _cifar(tmp_path / "nowhere", tmp_path)


@pytest.mark.skipif(not REAL_CIFAR10_LABELS.exists(), reason="shared CIFAR-10 data absent")
def test_real_cifar10n_aggre_noise_rate():
  labels, clean, test, names = sources.read_cifar10_labels(REAL_CIFAR10_LABELS, "aggre")
  assert labels.shape == clean.shape == (50000,) and test.shape == (10000,)
  assert names[0] == "airplane" and names[9] == "truck"
  assert abs(np.mean(labels != clean) - 0.0901) < 5e-4  # CIFAR-10N paper: 9.01%
  worst, _, _, _ = sources.read_cifar10_labels(REAL_CIFAR10_LABELS, "worst")
  assert abs(np.mean(worst != clean) - 0.4021) < 5e-4


# npz ----------------------------------------------------------------------------------------


def _npz(tmp_path, **arrays):
  path = tmp_path / "data.npz"
  np.savez(path, **arrays)
  return path


def _grey(n, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, 5, 4)).astype(np.uint8)


def test_npz_adds_channel_axis_and_counts_classes_over_both_splits(tmp_path):
  x_train, x_test = _grey(6), _grey(3, seed=1)
  path = _npz(tmp_path, x_train=x_train, y_train=np.array([[0], [1], [2], [0], [1], [2]]),
              x_test=x_test, y_test=np.array([4, 0, 1]))
  ds = data.load(config(f"npz:{path}"))
  assert ds.train.images.shape == (6, 5, 4, 1) and ds.train.images.dtype == np.uint8
  np.testing.assert_array_equal(ds.test.images[..., 0], x_test)
  np.testing.assert_array_equal(ds.train.labels, [0, 1, 2, 0, 1, 2])
  assert ds.num_classes == 5 and ds.class_names == ("0", "1", "2", "3", "4")


def test_npz_float_images_become_float32(tmp_path):
  x = np.random.default_rng(0).random((4, 3, 3, 3))
  path = _npz(tmp_path, x_train=x, y_train=np.arange(4), x_test=x, y_test=np.arange(4))
  ds = data.load(config(f"npz:{path}"))
  assert ds.train.images.dtype == np.float32
  np.testing.assert_allclose(ds.train.images, x, rtol=1e-6)


@pytest.mark.parametrize("change, error, message", [
    (dict(x_test=np.where(np.eye(5, 4, dtype=bool), np.nan, 0.5)[None].repeat(3, 0)),
     ValueError, "split 'test': 3 images contain NaN or inf pixels"),
    (dict(x_train=np.full((6, 5, 4), np.inf)), ValueError, "split 'train': 6 images contain NaN"),
    (dict(x_test=np.zeros((0, 5, 4), np.uint8), y_test=np.zeros(0, int)), ValueError,
     "split 'test' is empty"),
    (dict(y_train=np.zeros((6, 2), int)), ValueError,
     r"split 'train': labels must have shape \(6,\) to match the images, got \(6, 2\)"),
    (dict(y_test=np.zeros(2, int)), ValueError, r"split 'test': labels must have shape \(3,\)"),
    (dict(y_test=np.array([0, -1, 1])), ValueError,
     r"split 'test': 1 labels outside \[0, 3\), e.g. -1"),
    (dict(y_train=np.zeros(6)), ValueError, "split 'train': labels must be integers"),
    (dict(x_train=np.zeros((6, 5, 4, 1, 1), np.uint8)), ValueError,
     r"split 'train': images must be 4-D \(N, H, W, C\), got shape \(6, 5, 4, 1, 1\)"),
    (dict(x_train=np.full((6, 5, 4), 300)), ValueError, "integers in 0..255"),
])
def test_npz_checks(tmp_path, change, error, message):
  arrays = dict(x_train=_grey(6), y_train=np.array([0, 1, 2, 0, 1, 2]),
                x_test=_grey(3), y_test=np.array([0, 1, 2]))
  path = _npz(tmp_path, **{**arrays, **change})
  with pytest.raises(error, match=message):
    data.load(config(f"npz:{path}"))


def test_npz_missing_file_and_keys(tmp_path):
  with pytest.raises(FileNotFoundError, match="absent.npz does not exist"):
    data.load(config(f"npz:{tmp_path / 'absent.npz'}"))
  path = _npz(tmp_path, x_train=_grey(2), y_train=np.zeros(2, int))
  with pytest.raises(ValueError, match=r"lacks arrays \['x_test', 'y_test'\]"):
    data.load(config(f"npz:{path}"))


# folder -------------------------------------------------------------------------------------


def _write_folder(root, files, mode="RGB", size=(6, 4)):
  """files: {(split, class, filename): pixel value}; every image is one flat colour."""
  for (split, cls, name), value in files.items():
    (root / split / cls).mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(root / split / cls / name)


# Written in this order, which is neither name order nor, most likely, directory order.
FOLDER_NAMES = ["q.png", "c.png", "x.jpg", "a.png", "m.bmp", "b.png"]
FOLDER_FILES = {**{("train", "dog", n): 15 + 30 * i for i, n in enumerate(FOLDER_NAMES[:3])},
                **{("train", "cat", n): 20 + 30 * i for i, n in enumerate(FOLDER_NAMES)},
                ("test", "dog", "x.png"): 50, ("test", "cat", "y.png"): 60}
TRAIN_VALUES = [110, 170, 50, 140, 20, 80, 45, 15, 75]  # cat then dog, each sorted by file name


def test_folder_orders_classes_then_files_by_name(tmp_path):
  _write_folder(tmp_path, {k: (v, v + 1, v + 2) for k, v in FOLDER_FILES.items()})
  (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
  ds = data.load(config(f"folder:{tmp_path}"))
  assert ds.class_names == ("cat", "dog") and ds.num_classes == 2
  assert ds.train.images.shape == (9, 4, 6, 3)  # (N, height, width, RGB)
  np.testing.assert_allclose(ds.train.images[:, 0, 0, 0], TRAIN_VALUES, atol=3)  # JPEG is lossy
  np.testing.assert_allclose(ds.train.images[:, 3, 5, 2], np.add(TRAIN_VALUES, 2), atol=3)
  np.testing.assert_array_equal(ds.train.labels, [0] * 6 + [1] * 3)
  np.testing.assert_array_equal(ds.test.images[:, 0, 0, 1], [61, 51])
  np.testing.assert_array_equal(ds.test.labels, [0, 1])


def test_folder_all_grayscale_gives_one_channel(tmp_path):
  _write_folder(tmp_path, FOLDER_FILES, mode="L")
  ds = data.load(config(f"folder:{tmp_path}"))
  assert ds.train.images.shape == (9, 4, 6, 1)
  np.testing.assert_allclose(ds.train.images[:, 2, 2, 0], TRAIN_VALUES, atol=3)


def test_folder_mixed_grayscale_and_rgb_gives_rgb(tmp_path):
  _write_folder(tmp_path, FOLDER_FILES, mode="L")
  Image.new("RGB", (6, 4), (1, 2, 3)).save(tmp_path / "test" / "cat" / "y.png")
  ds = data.load(config(f"folder:{tmp_path}"))
  assert ds.train.images.shape == (9, 4, 6, 3)
  np.testing.assert_allclose(ds.train.images[0, 0, 0], [110, 110, 110], atol=3)
  np.testing.assert_array_equal(ds.test.images[0, 0, 0], [1, 2, 3])


def test_folder_errors(tmp_path):
  _write_folder(tmp_path, FOLDER_FILES)
  Image.new("RGB", (5, 5)).save(tmp_path / "test" / "dog" / "x.png")
  with pytest.raises(ValueError, match=r"differ in size \(width, height\), "
                     r"e.g. .*test/dog/x.png is \(5, 5\) but .* is \(6, 4\)"):
    data.load(config(f"folder:{tmp_path}"))
  _write_folder(tmp_path, {("test", "cow", "c.png"): 1})
  with pytest.raises(ValueError, match=r"classes \['cow'\] are not in"):
    data.load(config(f"folder:{tmp_path}"))
  (tmp_path / "nothing").mkdir()
  with pytest.raises(FileNotFoundError, match="nothing/train does not exist"):
    data.load(config(f"folder:{tmp_path / 'nothing'}"))


# tfds ---------------------------------------------------------------------------------------


def test_tfds_mock_data():
  with tfds.testing.mock_data(num_examples=20):
    ds = data.load(config("tfds:mnist"))
  assert ds.train.images.shape == (20, 28, 28, 1) and ds.train.images.dtype == np.uint8
  assert ds.test.images.shape == (20, 28, 28, 1) and ds.train.labels.dtype == np.int32
  assert ds.num_classes == 10 and ds.class_names == tuple(str(c) for c in range(10))
  assert ds.train.labels.min() >= 0 and ds.train.labels.max() < 10


class JaxcleanTestTiny(tfds.core.GeneratorBasedBuilder):
  """Train images filled with 0..5, test with 100..102; label = value % 3.

  Tensor features, because encoding `tfds.features.Image` needs TensorFlow.
  """
  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=(4, 4, 3), dtype=np.uint8),
        "label": tfds.features.ClassLabel(names=["a", "b", "c"])}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples(range(6)),
            "test": self._generate_examples(range(100, 103))}

  def _generate_examples(self, values):
    for v in values:
      yield v, {"image": np.full((4, 4, 3), v, np.uint8), "label": v % 3}


def test_tfds_prepares_and_reads_array_record(tmp_path):
  ds = data.load(config("tfds:jaxclean_test_tiny", data_dir=str(tmp_path)))
  assert list((tmp_path / "jaxclean_test_tiny" / "1.0.0").glob("*.array_record-*"))
  assert ds.class_names == ("a", "b", "c") and ds.train.images.shape == (6, 4, 4, 3)
  values = ds.train.images[:, 0, 0, 0]
  assert sorted(values) == list(range(6))
  np.testing.assert_array_equal(ds.train.labels, values % 3)
  assert sorted(ds.test.images[:, 1, 2, 0]) == [100, 101, 102]
  again = data.load(config("tfds:jaxclean_test_tiny", data_dir=str(tmp_path)))  # reads, no rebuild
  np.testing.assert_array_equal(again.train.images, ds.train.images)
  with pytest.raises(ValueError, match="Unknown split 'val'"):
    data.load(config("tfds:jaxclean_test_tiny", data_dir=str(tmp_path), eval_split="val"))


def test_tfds_refuses_tfrecord_data(tmp_path):
  data.load(config("tfds:jaxclean_test_tiny", data_dir=str(tmp_path)))
  # What tfds.load leaves behind, as far as reading goes: dataset_info says TFRecord.
  info = tmp_path / "jaxclean_test_tiny" / "1.0.0" / "dataset_info.json"
  info.write_text(json.dumps({**json.loads(info.read_text()), "fileFormat": "tfrecord"}))
  with pytest.raises(ValueError, match="prepared as tfrecord, which has no random access"):
    data.load(config("tfds:jaxclean_test_tiny", data_dir=str(tmp_path)))


def test_cifar10_and_fashion_mnist_fall_back_to_tfds(tmp_path, monkeypatch):
  monkeypatch.setattr(sources, "CIFAR10_DIR", str(tmp_path / "absent"))
  monkeypatch.setattr(sources, "FASHION_MNIST_DIR", str(tmp_path / "absent"))
  with tfds.testing.mock_data(num_examples=5):
    cifar = data.load(config("cifar10"))
    fashion = data.load(config("fashion_mnist"))
  assert cifar.train.images.shape == (5, 32, 32, 3) and cifar.num_classes == 10
  assert fashion.train.images.shape == (5, 28, 28, 1) and fashion.num_classes == 10
  with pytest.raises(ValueError, match="cifar10_labels='worst' needs labels.npz"):
    data.load(config("cifar10", cifar10_labels="worst"))


def test_train_and_eval_size_keep_prefixes():
  full = data.load(ml_collections.ConfigDict(dict(name="digits")))
  part = data.load(ml_collections.ConfigDict(dict(name="digits", train_size=100, eval_size=50)))
  np.testing.assert_array_equal(part.train.images, full.train.images[:100])
  np.testing.assert_array_equal(part.train.labels, full.train.labels[:100])
  assert len(part.test) == 50


def test_cifar10_default_location_does_not_depend_on_the_working_directory():
  # Beside the repository, wherever the command runs (it was "../shared/..." from the cwd).
  assert sources.CIFAR10_DIR == os.path.join(os.path.dirname(ROOT), "shared", "data", "cifar10")


def test_outputs_never_change_the_umask(tmp_path, monkeypatch):
  from jaxclean import outputs
  mask = os.umask(0o022)
  os.umask(mask)
  monkeypatch.setattr(os, "umask", lambda *a: pytest.fail("umask changed while writing"))
  outputs.write_text(str(tmp_path / "a.txt"), "x")
  assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~mask
