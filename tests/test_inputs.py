"""No way in ends in a traceback: damaged files of every source, workdirs, races on a workdir.

In-process checks expect `InputError` from `data.load` or `workdir.hold`; the
command-line ones expect one `error:` line and exit status 2, as tests/test_cli.py.
"""

import json
import os
import re
import subprocess
import sys
import time

import ml_collections
import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from jaxclean import data, workdir
from jaxclean.checks import InputError

RNG = np.random.default_rng(0)
X = RNG.integers(0, 256, (40, 4, 4), np.uint8)
Y = np.arange(40) % 3


def _load(name, **fields):
  return data.load(ml_collections.ConfigDict(dict(name=name, **fields)))


def _npz(path):
  np.savez(path, x_train=X, y_train=Y, x_test=X, y_test=Y)
  return path


# npz --------------------------------------------------------------------------------------------

def test_truncated_npz_at_every_offset_is_an_input_error(tmp_path):
  raw = _npz(tmp_path / "good.npz").read_bytes()
  for cut in np.linspace(0, len(raw) - 1, 12).astype(int):
    (tmp_path / "cut.npz").write_bytes(raw[:cut])
    with pytest.raises(InputError, match=r"cannot read .*cut.npz as an .npz of x_train"):
      _load(f"npz:{tmp_path / 'cut.npz'}")


def test_npz_with_damaged_bytes_is_an_input_error(tmp_path):
  raw = bytearray(_npz(tmp_path / "good.npz").read_bytes())
  refused = 0
  for start in range(100, len(raw) - 200, 300):  # headers, data (CRC), the directory
    bad = bytearray(raw)
    bad[start:start + 40] = RNG.integers(0, 256, 40, np.uint8).tobytes()
    (tmp_path / "bad.npz").write_bytes(bytes(bad))
    try:  # anything but InputError fails the test
      _load(f"npz:{tmp_path / 'bad.npz'}")
    except InputError as e:
      assert "bad.npz" in str(e)
      refused += 1
  assert refused >= 3


@pytest.mark.parametrize("arrays, message", [
    (dict(x_train=None), r"lacks arrays \['x_train'\]"),
    (dict(x_train=np.array([object()] * 3)), "Object arrays cannot be loaded"),
    (dict(x_train=np.array(["a"] * 40)), "images must be floats or integers in 0..255"),
    (dict(x_train=X.astype(np.int64) * 300), "images must be floats or integers in 0..255"),
    (dict(x_train=X[:, None, None]), "images must be 4-D"),
    (dict(y_train=Y[:5]), r"labels must have shape \(40,\)"),
    (dict(y_train=Y.astype(float)), "labels must be integers"),
    (dict(y_train=Y - 1), "labels outside"),
    (dict(class_names=np.float32(3)), "class_names must be a 1-D array"),
    (dict(class_names=np.array(["a"])), "class_names has 1 names for labels up to 2"),
])
def test_npz_contents(tmp_path, arrays, message):
  given = {**dict(x_train=X, y_train=Y, x_test=X, y_test=Y), **arrays}
  np.savez(tmp_path / "d.npz", **{k: v for k, v in given.items() if v is not None})
  with pytest.raises(InputError, match=message):
    _load(f"npz:{tmp_path / 'd.npz'}")


def test_npz_that_is_a_directory_or_a_single_array(tmp_path):
  (tmp_path / "dir.npz").mkdir()
  with pytest.raises(InputError, match="IsADirectoryError"):
    _load(f"npz:{tmp_path / 'dir.npz'}")
  np.save(tmp_path / "one.npy", X)
  with pytest.raises(InputError, match="single .npy array, not an .npz"):
    _load(f"npz:{tmp_path / 'one.npy'}")


# labels_file ------------------------------------------------------------------------------------

@pytest.mark.parametrize("write, message", [
    (lambda p: p.write_text("1\n2\n0\n"), r"not a numpy file: text or pickled data"),
    (lambda p: np.save(p, np.array([None] * 40), allow_pickle=True), "Object arrays"),
    (lambda p: p.write_bytes(b"\x93NUMPY" + bytes(20)), "format version"),
    (lambda p: (np.save(p, Y), p.write_bytes(p.read_bytes()[:-20])), "Failed to read all data"),
    (lambda p: np.save(p, Y[:7]), "expected 40 labels"),
    (lambda p: np.save(p, Y + 5), "labels outside"),
    (lambda p: p.mkdir(), "does not exist or is not a file"),
])
def test_labels_file(tmp_path, write, message):
  path = tmp_path / "labels.npy"
  write(path)
  with pytest.raises(InputError, match=message):
    _load(f"npz:{_npz(tmp_path / 'd.npz')}", labels_file=str(path))


# npy: -------------------------------------------------------------------------------------------

def _npy_dir(root):
  root.mkdir(exist_ok=True)
  for split in ("train", "test"):
    np.save(root / f"x_{split}.npy", X)
    np.save(root / f"y_{split}.npy", Y)
  return root


@pytest.mark.parametrize("name, write, message", [
    ("x_train.npy", lambda p: p.write_text("hello"), "as a .npy array of images .not a numpy"),
    ("x_train.npy", lambda p: p.write_bytes(p.read_bytes()[:-30]), "mmap length"),
    ("x_train.npy", lambda p: np.save(p, np.array([None] * 3), allow_pickle=True), "memory-mapped"),
    ("x_train.npy", lambda p: np.save(p, X.astype(np.int64)), "must be uint8 or float32"),
    ("y_test.npy", lambda p: p.write_bytes(b"\x93NUMPY" + bytes(20)), "as a .npy array of integer"),
    ("y_train.npy", lambda p: np.save(p, Y[:3]), r"labels must have shape \(40,\)"),
    ("y_train.npy", lambda p: p.unlink(), "y_train.npy does not exist"),
])
def test_npy_dir(tmp_path, name, write, message):
  root = _npy_dir(tmp_path / "npy")
  write(root / name)
  with pytest.raises(InputError, match=message):
    _load(f"npy:{root}")


# arrayrecord: -----------------------------------------------------------------------------------

GOOD_META = dict(format=1, image_shape=[4, 4, 1], dtype="uint8", class_names=["a", "b", "c"],
                 splits={"train": dict(count=40, mean=[0.0], std=[1.0])})


@pytest.mark.parametrize("meta, message", [
    (b"not json", "is not a converter's meta.json"),
    (b"\xff\xfe\x00", "is not a converter's meta.json"),
    (json.dumps([1]).encode(), "is not a converter's meta.json"),
    (json.dumps({**GOOD_META, "class_names": None}).encode(), "is not a converter's meta.json"),
    (json.dumps({**GOOD_META, "dtype": "nonsense"}).encode(), "not understood"),
    (json.dumps({**GOOD_META, "image_shape": "x"}).encode(), "is not a converter's meta.json"),
    (json.dumps({**GOOD_META, "splits": {"train": 5}}).encode(), "is not a converter's meta.json"),
    (json.dumps({**GOOD_META, "format": 99}).encode(), "has format 99"),
    (json.dumps(GOOD_META).encode(), "cannot read .*train.array_record as an ArrayRecord file"),
])
def test_arrayrecord_dir(tmp_path, meta, message):
  (tmp_path / "meta.json").write_bytes(meta)
  (tmp_path / "train.array_record").write_bytes(b"junk" * 10)
  np.save(tmp_path / "train_labels.npy", Y)
  with pytest.raises(InputError, match=message):
    _load(f"arrayrecord:{tmp_path}")


# folder: ----------------------------------------------------------------------------------------

def test_folder_with_truncated_images(tmp_path):
  for split in ("train", "test"):
    for c in ("a", "b"):
      (tmp_path / split / c).mkdir(parents=True)
      for i in range(2):
        Image.fromarray(X[i]).save(tmp_path / split / c / f"{i}.png")
  png = tmp_path / "train" / "b" / "1.png"
  raw = png.read_bytes()
  for cut in (8, 30, len(raw) // 2):  # without only its IEND chunk a PNG still decodes
    png.write_bytes(raw[:cut])
    with pytest.raises(InputError, match="cannot read image .*train/b/1.png"):
      _load(f"folder:{tmp_path}")


# workdirs ---------------------------------------------------------------------------------------

def test_workdirs_that_cannot_be_made(tmp_path):
  (tmp_path / "file").write_text("x")
  with pytest.raises(InputError, match="cannot create workdir .*file/run: Not a directory"):
    with workdir.hold(str(tmp_path / "file" / "run")):
      pass
  with pytest.raises(InputError, match="cannot create workdir .*file: File exists"):
    with workdir.hold(str(tmp_path / "file")):
      pass
  with pytest.raises(InputError, match="cannot create workdir /sys/jaxclean"):
    with workdir.hold("/sys/jaxclean"):  # refused even to root
      pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_parent(tmp_path):
  (tmp_path / "ro").mkdir(mode=0o555)
  with pytest.raises(InputError, match="cannot create workdir .*Permission denied"):
    with workdir.hold(str(tmp_path / "ro" / "run")):
      pass


def test_lock_is_released_by_a_killed_holder(tmp_path):
  holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from jaxclean import workdir; "
                             f"h = workdir.hold({str(tmp_path)!r}); h.__enter__(); "
                             "print('held', flush=True); time.sleep(60)"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == "held"
  with pytest.raises(InputError, match=rf"in use by another run \(pid {holder.pid}\)"):
    with workdir.hold(str(tmp_path)):
      pass
  holder.kill()
  holder.wait()
  with workdir.hold(str(tmp_path)):  # the kernel dropped the dead process's lock
    pass


# the command line -------------------------------------------------------------------------------

def _cli(workdir_, *overrides):
  return [sys.executable, "-m", "jaxclean.main", "--config=configs/default.py",
          f"--workdir={workdir_}", "--config.progress=False", *overrides]


def _one_line(proc, pattern, name=""):
  out, err = proc.communicate(timeout=240)
  lines = [l for l in err.splitlines() if l.strip()]
  assert proc.returncode == 2, (name, proc.returncode, err[-2000:])
  assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
  assert re.search(pattern, lines[0]), (name, lines[0])


def test_cli_bad_inputs_are_one_line(tmp_path):
  (tmp_path / "cut.npz").write_bytes(_npz(tmp_path / "good.npz").read_bytes()[:500])
  (tmp_path / "labels.npy").write_text("0\n1\n")
  (tmp_path / "file").write_text("x")
  np.savez(tmp_path / "one.npz", x_train=X, y_train=np.zeros(40, int), x_test=X,
           y_test=np.zeros(40, int))
  (tmp_path / "bad.py").write_text("def get_config(:\n")
  w = tmp_path / "w"
  cases = {
      "truncated npz": (_cli(w / "1", f"--config.data.name=npz:{tmp_path / 'cut.npz'}"),
                        "cannot read .*cut.npz as an .npz"),
      "text labels": (_cli(w / "2", f"--config.data.labels_file={tmp_path / 'labels.npy'}"),
                      "not a numpy file"),
      "workdir under a file": (_cli(tmp_path / "file" / "run"), "cannot create workdir"),
      "one class": (_cli(w / "3", f"--config.data.name=npz:{tmp_path / 'one.npz'}",
                         "--config.noise.kind=none"), r"use 1 of 1 classes"),
      "bad override type": (_cli(w / "4", "--config.num_epochs=abc"), "config.num_epochs=abc"),
      "unknown field": (_cli(w / "5", "--config.nosuch=1"), "KeyError: 'nosuch'"),
      "missing config": ([sys.executable, "-m", "jaxclean.main", "--config=configs/nope.py",
                          f"--workdir={w / '6'}"], "No such file or directory"),
      "broken config": ([sys.executable, "-m", "jaxclean.main", f"--config={tmp_path / 'bad.py'}",
                         f"--workdir={w / '7'}"], "SyntaxError"),
      "no workdir": ([sys.executable, "-m", "jaxclean.main", "--config=configs/default.py"],
                     r"--workdir=DIR is missing"),
      "extra argument": (_cli(w / "8", "extra"), r"unexpected arguments \['extra'\]"),
  }
  procs = {name: subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for name, (cmd, _) in cases.items()}
  for name, proc in procs.items():
    _one_line(proc, cases[name][1], name)


def test_two_runs_on_one_workdir(tmp_path):
  """The second run is refused while the first holds the workdir; the first ends fine."""
  first = subprocess.Popen(_cli(tmp_path, "--config.num_epochs=2", "--config.aum.skip_epochs=0"),
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  lock = tmp_path / workdir.LOCK
  deadline = time.time() + 180
  while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
    assert first.poll() is None and time.time() < deadline, first.communicate()
    time.sleep(0.2)
  second = subprocess.Popen(_cli(tmp_path, "--config.num_epochs=2", "--config.aum.skip_epochs=0"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  _one_line(second, rf"workdir {tmp_path} is in use by another run \(pid {first.pid}\)")
  out, err = first.communicate(timeout=300)
  assert first.returncode == 0, err[-3000:]
  # progress=False turns off the bar and the epoch lines, never the summary.
  lines = out.splitlines()
  assert not any(l.startswith("epoch ") for l in lines), out
  assert any(l.startswith("estimated wrong labels: ") for l in lines), out
  assert lines[-2:] == [f"scores: {tmp_path / 'scores.csv'}", f"report: {tmp_path / 'report.html'}"]
