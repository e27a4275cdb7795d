"""`data.name=hf:<dir>`: a Hugging Face DatasetDict on disk scores as the same arrays in an .npz."""

import sys

import ml_collections
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

datasets = pytest.importorskip("datasets")

from jaxclean import data, protocol  # noqa: E402
from jaxclean.checks import InputError  # noqa: E402
from jaxclean.data import arrays, hf  # noqa: E402

NAMES = [f"digit {i}" for i in range(10)]


def _arrays(n=200):
  d = load_digits()
  return d.images.astype(np.uint8)[:n], d.target[:n]


def _save(path, x, y, image="image", label="label"):
  features = datasets.Features({image: datasets.Image(), label: datasets.ClassLabel(names=NAMES)})
  split = lambda s: datasets.Dataset.from_dict({image: list(x[s]), label: y[s]}, features=features)
  datasets.DatasetDict(train=split(slice(None)), test=split(slice(0, 50))).save_to_disk(str(path))
  return path


def _config(name, **data_fields):
  return ml_collections.ConfigDict(dict(name=name, **data_fields))


def test_hf_scores_equal_npz_scores(tmp_path, digits_config):
  x, y = _arrays()
  _save(tmp_path / "hf", x, y)
  np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:50], y_test=y[:50])
  tables = {}
  for kind, name in (("hf", f"hf:{tmp_path / 'hf'}"), ("npz", f"npz:{tmp_path / 'd.npz'}")):
    c = digits_config
    c.data.name, c.noise.kind, c.num_epochs, c.aum.skip_epochs = name, "none", 2, 0
    protocol.train_and_evaluate(c, str(tmp_path / kind))
    tables[kind] = pd.read_csv(tmp_path / kind / "scores.csv")
  assert list(tables["hf"].columns) == list(tables["npz"].columns) and "aum" in tables["npz"]
  for col in tables["npz"]:
    np.testing.assert_allclose(tables["hf"][col], tables["npz"][col], rtol=1e-5, atol=1e-6,
                               err_msg=col)
  summary = pd.read_json(tmp_path / "hf" / "summary.json", typ="series")
  assert list(summary["class_names"]) == NAMES


def test_images_are_read_by_index_not_held(tmp_path):
  x, y = _arrays()
  ds = data.load(_config(f"hf:{_save(tmp_path / 'hf', x, y)}"))
  images = ds.train.images
  assert isinstance(images, hf.HFImages) and not arrays.in_memory(images)
  assert images.shape == (200, 8, 8, 1) and ds.class_names == tuple(NAMES)
  np.testing.assert_array_equal(images[np.array([5, 0, 199])], x[[5, 0, 199], ..., None])
  np.testing.assert_array_equal(images[10:20][np.arange(3)], x[10:13, ..., None])
  np.testing.assert_array_equal(ds.train.labels, y)
  assert images.digest() == data.load(_config(f"hf:{tmp_path / 'hf'}")).train.images.digest()


def test_columns_by_name_and_parquet_files(tmp_path):
  x, y = _arrays(60)
  dd = datasets.load_from_disk(str(_save(tmp_path / "hf", x, y, image="pixels", label="digit")))
  for split, part in dd.items():
    part.to_parquet(str(tmp_path / "pq" / f"{split}.parquet"))
  ds = data.load(_config(f"hf:{tmp_path / 'pq'}", image_key="pixels", label_key="digit"))
  np.testing.assert_array_equal(ds.train.images[np.arange(60)], x[..., None])
  with pytest.raises(InputError, match="data.image_key='img' is not a column; columns: pixels"):
    data.load(_config(f"hf:{tmp_path / 'pq'}", image_key="img"))


def _corrupt_arrow(root, keep):
  arrow = next((root / "train").glob("*.arrow"))
  arrow.write_bytes(arrow.read_bytes()[:keep])


@pytest.mark.parametrize("damage, message", [
    (lambda r: (r / "dataset_dict.json").write_text("{{"), "cannot load it .JSONDecodeError"),
    (lambda r: _corrupt_arrow(r, 10), "cannot load it"),
    (lambda r: _corrupt_arrow(r, 2000), "cannot load it"),
    (lambda r: _corrupt_arrow(r, 6000), "cannot load it"),
    (lambda r: [f.unlink() for f in r.rglob("*") if f.is_file()], "holds no save_to_disk"),
])
def test_damaged_directories_are_one_input_error(tmp_path, damage, message):
  x, y = _arrays()
  root = _save(tmp_path / "hf", x, y)
  damage(root)
  with pytest.raises(InputError, match=message):
    data.load(_config(f"hf:{root}"))


def test_bad_images_and_missing_columns(tmp_path):
  features = datasets.Features(image=datasets.Image(), label=datasets.ClassLabel(names=NAMES))
  bad = datasets.Dataset.from_dict(dict(image=[{"bytes": b"junk", "path": None}] * 3,
                                        label=[0, 1, 0]), features=features)
  datasets.DatasetDict(train=bad, test=bad).save_to_disk(str(tmp_path / "bad"))
  with pytest.raises(InputError, match="split 'train': cannot read image 0: not an image file"):
    data.load(_config(f"hf:{tmp_path / 'bad'}"))
  plain = datasets.Dataset.from_dict(dict(x=[1, 2], y=[0, 1]))
  datasets.DatasetDict(train=plain, test=plain).save_to_disk(str(tmp_path / "plain"))
  with pytest.raises(InputError, match="has no Image column; name one with data.image_key"):
    data.load(_config(f"hf:{tmp_path / 'plain'}"))
  with pytest.raises(InputError, match="does not exist"):
    data.load(_config(f"hf:{tmp_path / 'absent'}"))


def test_without_datasets_the_error_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
  with pytest.raises(InputError, match=r'pip install "jaxclean\[hf\]"'):
    data.load(_config("hf:mnist"))
