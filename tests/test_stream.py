"""Images on disk: the converter, `arrayrecord:` and `npy:` sources, and runs that stream them.

Digits converted once to ArrayRecord (module fixture) must train to the same
records as digits in memory, resume mid-epoch to the same ranking, and carry
the threshold copies and the report without reading the images whole.
"""

import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from jaxclean import checkpoint as checkpoint_lib
from jaxclean import data as data_lib
from jaxclean import parallel, protocol, train
from jaxclean import scores as scores_lib
from jaxclean.checks import InputError
from jaxclean.data import arrays, convert, sources


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("digits_arrayrecord")
  convert.convert("digits", str(out))
  return out


def _load(name):
  return data_lib.load(ml_collections.ConfigDict(dict(name=name)))


def _fit(config, workdir):
  ds = data_lib.load(config.data)
  labels, _ = protocol.noisy_labels(config, ds)
  mean, std = ds.mean_std()
  return train.fit(config, ds.train.images, labels, ds.num_classes, str(workdir), mean, std,
                   test=ds.test, mesh=parallel.make_mesh(1))


def _assert_same_records(a, b):
  for name, x, y in zip(a.__dataclass_fields__, jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x, float), np.asarray(y, float), rtol=1e-5, atol=1e-5,
                               err_msg=name)


def test_arrayrecord_source_reads_what_was_converted(digits_dir):
  ds, ref = _load(f"arrayrecord:{digits_dir}"), _load("digits")
  assert isinstance(ds.train.images, arrays.RecordImages)
  assert ds.train.images.shape == ref.train.images.shape and ds.train.images.dtype == np.uint8
  index = np.array([1499, 0, 7, 7, 300])
  np.testing.assert_array_equal(ds.train.images[index], ref.train.images[index])
  np.testing.assert_array_equal(ds.test.images[np.arange(len(ds.test))], ref.test.images)
  np.testing.assert_array_equal(ds.train.images[3], ref.train.images[3])
  np.testing.assert_array_equal(ds.train.labels, ref.train.labels)
  assert ds.class_names == ref.class_names and ds.train.labels.dtype == np.int32
  # Stored at conversion, equal to the in-memory pass over every pixel.
  for stored, computed in zip(ds.mean_std(), ref.mean_std()):
    np.testing.assert_allclose(stored, computed, rtol=1e-6)
  # Slices and `take` are views; indexing a view reads its base's rows.
  part = data_lib.take(ds.train.images[:100], np.array([5, 99, 5]))
  assert isinstance(part, arrays.Rows) and part.shape == (3, 8, 8, 1)
  np.testing.assert_array_equal(part[np.arange(3)], ref.train.images[[5, 99, 5]])
  prefix = data_lib.load(ml_collections.ConfigDict(dict(name=f"arrayrecord:{digits_dir}",
                                                        train_size=100)))
  np.testing.assert_array_equal(prefix.train.images[np.arange(100)], ref.train.images[:100])


def test_streamed_run_records_like_in_memory(digits_config, digits_dir, tmp_path):
  c = digits_config
  c.num_epochs = 1
  in_memory = _fit(c, tmp_path / "memory")
  c.data.name = f"arrayrecord:{digits_dir}"
  streamed = _fit(c, tmp_path / "stream")
  _assert_same_records(in_memory.records, streamed.records)
  np.testing.assert_allclose(streamed.history["test_accuracy"], in_memory.history["test_accuracy"])


class _Interrupted(Exception):
  pass


def test_streamed_run_resumes_mid_epoch_to_the_same_ranking(digits_config, digits_dir, tmp_path,
                                                           monkeypatch):
  c = digits_config
  c.data.name = f"arrayrecord:{digits_dir}"
  c.num_epochs, c.batch_size, c.checkpoint.every_steps, c.eval_every_epochs = 2, 128, 4, 0
  spe, stop = 12, 16  # mid-way through the second epoch
  reference = _fit(c, tmp_path / "reference")

  save = checkpoint_lib.Checkpointer.maybe_save

  def save_then_stop(self, step, tree, epoch_end=False):  # a kill right after a checkpoint
    save(self, step, tree, epoch_end)
    if step == stop:
      self.close()
      raise _Interrupted

  monkeypatch.setattr(checkpoint_lib.Checkpointer, "maybe_save", save_then_stop)
  with pytest.raises(_Interrupted):
    _fit(c, tmp_path / "resumed")
  monkeypatch.setattr(checkpoint_lib.Checkpointer, "maybe_save", save)
  steps = []
  make = train.make_train_step

  def counted(*args, **kwargs):
    step = make(*args, **kwargs)
    return lambda *a, **k: steps.append(1) or step(*a, **k)

  monkeypatch.setattr(train, "make_train_step", counted)
  resumed = _fit(c, tmp_path / "resumed")
  assert len(steps) == 2 * spe - stop  # trained only the steps after the checkpoint
  _assert_same_records(reference.records, resumed.records)
  aum = [np.asarray(scores_lib.ensemble_scores(r.records)["aum"]) for r in (reference, resumed)]
  np.testing.assert_array_equal(np.argsort(aum[0], kind="stable"),
                                np.argsort(aum[1], kind="stable"))


def test_threshold_copies_and_report_from_a_stream(digits_config, digits_dir, tmp_path):
  c = digits_config
  c.data.name = f"arrayrecord:{digits_dir}"
  c.num_epochs, c.aum.threshold_samples = 2, "copies"
  out = protocol.train_and_evaluate(c, str(tmp_path))
  assert len(out["scores"]) == 1500 and np.isfinite(out["scores"]["aum"]).all()
  assert out["estimated_wrong_labels"] is not None
  html = (tmp_path / "report.html").read_text()
  assert "data:image/png;base64," in html  # thumbnails read from the ArrayRecord file


def test_npy_source_is_memory_mapped_and_fingerprinted_by_its_files(tmp_path):
  ref = _load("digits")
  for split in ("train", "test"):
    s = getattr(ref, split)
    np.save(tmp_path / f"x_{split}.npy", s.images[..., 0])  # (N, H, W): gets a channel axis
    np.save(tmp_path / f"y_{split}.npy", s.labels.astype(np.int64))
  ds = _load(f"npy:{tmp_path}")
  assert isinstance(ds.train.images, np.memmap) and ds.train.images.shape == (1500, 8, 8, 1)
  np.testing.assert_array_equal(ds.train.images, ref.train.images)
  np.testing.assert_array_equal(ds.test.labels, ref.test.labels)
  for got, want in zip(ds.mean_std(), ref.mean_std()):  # under 10k rows: every row
    np.testing.assert_allclose(got, want, rtol=1e-6)
  config = ml_collections.ConfigDict(dict(seed=0))
  identity = lambda d: train.run_identity(config, d.train.images, d.train.labels, 10)
  first = identity(ds)
  assert identity(_load(f"npy:{tmp_path}")) == first
  path = tmp_path / "x_train.npy"
  os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
  assert identity(_load(f"npy:{tmp_path}"))["data_digest"] != first["data_digest"]
  np.save(tmp_path / "x_test.npy", np.zeros((297, 8, 8), np.int16))
  with pytest.raises(InputError, match="x_test.npy: images left on disk must be uint8 or float32"):
    _load(f"npy:{tmp_path}")


def test_mean_std_of_a_large_stream_reads_a_fixed_sample():
  class Counted:
    """A (50000, 2, 2, 1) array on 'disk' that counts the rows it reads."""
    shape, dtype, ndim = (50_000, 2, 2, 1), np.dtype(np.uint8), 4
    read = 0

    def __len__(self):
      return self.shape[0]

    def __getitem__(self, index):
      Counted.read += len(index)
      return (np.asarray(index) % 7).astype(np.uint8)[:, None, None, None].repeat(2, 1).repeat(2, 2)

  labels = np.zeros(50_000, np.int32)
  ds = sources.Dataset("fake", sources.Split(Counted(), labels), sources.Split(Counted(), labels),
                       1, ("a",))
  mean, std = ds.mean_std()
  assert Counted.read == arrays.SAMPLE
  np.testing.assert_allclose(mean, [3.0], atol=0.01)  # 0..6 evenly
  np.testing.assert_allclose(std, [2.0], atol=0.01)


def _png_folder(root):
  """train: 2 classes (3 + 2 images), test: 1 + 1; RGB 5x4, each image one colour."""
  colours = {}
  for split, counts in (("train", (3, 2)), ("test", (1, 1))):
    for c, count in enumerate(counts):
      (root / split / f"class{c}").mkdir(parents=True)
      for i in range(count):
        colour = (10 * i + 100 * c, 50, 200 if split == "train" else 20)
        Image.new("RGB", (5, 4), colour).save(root / split / f"class{c}" / f"{i}.png")
        colours[(split, c, i)] = colour
  return colours


def test_converter_streams_a_folder_to_what_the_folder_loads(tmp_path):
  _png_folder(tmp_path / "images")
  meta = convert.convert(f"folder:{tmp_path / 'images'}", str(tmp_path / "out"))
  assert meta["image_shape"] == [4, 5, 3] and meta["class_names"] == ["class0", "class1"]
  assert {s: v["count"] for s, v in meta["splits"].items()} == {"train": 5, "test": 2}
  assert sorted(os.listdir(tmp_path / "out")) == [
      "meta.json", "test.array_record", "test_labels.npy", "train.array_record",
      "train_labels.npy"]
  streamed = _load(f"arrayrecord:{tmp_path / 'out'}")
  folder = _load(f"folder:{tmp_path / 'images'}")
  for split in ("train", "test"):
    a, b = getattr(streamed, split), getattr(folder, split)
    np.testing.assert_array_equal(a.images[np.arange(len(a))], b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
  for stored, computed in zip(streamed.mean_std(), folder.mean_std()):
    np.testing.assert_allclose(stored, computed, rtol=1e-6)


def test_converter_command_refuses_an_unreadable_image_in_one_line(tmp_path):
  _png_folder(tmp_path / "images")
  (tmp_path / "images" / "train" / "class1" / "9.png").write_bytes(b"not a png")
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  out = tmp_path / "out"
  p = subprocess.run([sys.executable, "-m", "jaxclean.data.convert",
                      f"--source=folder:{tmp_path / 'images'}", f"--out={out}"],
                     cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert p.returncode == 2, p.stderr
  assert p.stderr.count("\n") == 1 and p.stderr.startswith("error: cannot read image "), p.stderr
  assert "9.png" in p.stderr and not (out / "meta.json").exists()


def test_converter_leaves_no_partial_split_on_a_corrupt_image(tmp_path):
  _png_folder(tmp_path / "images")
  bad = tmp_path / "images" / "train" / "class1" / "1.png"
  bad.write_bytes(bad.read_bytes()[:-30])  # a valid header, truncated pixel data
  out = tmp_path / "out"
  with pytest.raises(InputError, match=f"cannot read image {bad}"):
    convert.convert(f"folder:{tmp_path / 'images'}", str(out))
  assert not out.exists() or os.listdir(out) == []  # no records, no meta.json, no temporary file


def test_converter_streams_a_tfds_data_source(tmp_path):
  import test_data  # noqa: F401 (registers the tiny TFDS builder jaxclean_test_tiny)
  tfds_dir = str(tmp_path / "tfds")
  convert.convert("tfds:jaxclean_test_tiny", str(tmp_path / "out"), data_dir=tfds_dir)
  streamed = _load(f"arrayrecord:{tmp_path / 'out'}")
  ref = data_lib.load(ml_collections.ConfigDict(dict(name="tfds:jaxclean_test_tiny",
                                                     data_dir=tfds_dir)))
  assert streamed.class_names == ref.class_names == ("a", "b", "c")
  for split in ("train", "test"):
    a, b = getattr(streamed, split), getattr(ref, split)
    np.testing.assert_array_equal(a.images[np.arange(len(a))], b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
  with pytest.raises(InputError, match="name two splits"):
    convert.convert("tfds:jaxclean_test_tiny", str(tmp_path / "x"), ["train"], tfds_dir)
