"""third_party/aum_reference.py: AUM from the authors' `aum` library on a PyTorch model."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("aum")

from third_party import aum_reference  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def blobs(n=200, size=8, flip=0.1, seed=0):
  """Two classes of 8x8 uint8 images (bright top half vs bright bottom half), `flip` flipped."""
  rng = np.random.default_rng(seed)
  y = np.arange(n) % 2
  x = rng.normal(100, 25, (n, size, size, 1))
  x[y == 0, :size // 2] += 80
  x[y == 1, size // 2:] += 80
  flipped = np.zeros(n, bool)
  flipped[rng.permutation(n)[:round(flip * n)]] = True
  return np.clip(x, 0, 255).astype(np.uint8), np.where(flipped, 1 - y, y), flipped


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_run_ranks_flipped_labels_low(model):
  x, labels, flipped = blobs()
  out = aum_reference.run(x, labels, 2, model=model, epochs=5, batch_size=32, seed=0, threads=1)
  aum = out["aum"]
  assert aum.shape == (200,) and np.isfinite(aum).all()
  assert out["seconds"] > 0 and len(out["train_accuracy"]) == 5
  # Example order: the flipped examples are the ones with the low AUMs.
  assert aum[flipped].mean() < 0 < aum[~flipped].mean()
  assert flipped[np.argsort(aum)[:20]].mean() >= 0.8  # the 20 lowest are mostly the 20 flipped


def test_same_seed_same_aum():
  x, labels, _ = blobs(n=100)
  a = aum_reference.run(x, labels, 2, model="mlp", epochs=3, batch_size=16, threads=1)["aum"]
  b = aum_reference.run(x, labels, 2, model="mlp", epochs=3, batch_size=16, threads=1)["aum"]
  np.testing.assert_array_equal(a, b)


def test_refuses_a_last_batch_of_one():
  x, labels, _ = blobs(n=33)
  with pytest.raises(ValueError, match="batch of one"):
    aum_reference.run(x, labels, 2, model="mlp", epochs=1, batch_size=32)


def test_cli_writes_index_aum_csv(tmp_path):
  x, labels, flipped = blobs(n=100)
  npz, labels_file, out = tmp_path / "d.npz", tmp_path / "l.npy", tmp_path / "aum.csv"
  np.savez(npz, x_train=x[..., 0], y_train=np.zeros(100, np.int64), x_test=x[:10, ..., 0],
           y_test=np.zeros(10, np.int64))
  np.save(labels_file, labels)
  proc = subprocess.run(
      [sys.executable, "-m", "third_party.aum_reference", "--npz", str(npz), "--labels",
       str(labels_file), "--epochs", "3", "--model", "mlp", "--batch_size", "32", "--threads",
       "1", "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "training + recording" in proc.stdout
  table = pd.read_csv(out)
  assert list(table.columns) == ["index", "aum"] and table["index"].tolist() == list(range(100))
  assert table["aum"][flipped].mean() < table["aum"][~flipped].mean()
  assert not list(tmp_path.glob("*.tmp"))
