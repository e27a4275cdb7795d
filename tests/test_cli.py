"""The command line: bad input ends with one line on stderr and exit status 2, before training."""

import datetime
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT


def _main(workdir, *overrides, timeout=120):
  return subprocess.run(
      [sys.executable, "-m", "jaxclean.main", "--config=configs/default.py",
       f"--workdir={workdir}", "--config.progress=False", *overrides],
      cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _bad_folder(root):
  for split in ("train", "test"):
    for c in ("a", "b"):
      d = root / split / c
      d.mkdir(parents=True)
      for i in range(3):
        Image.fromarray(np.full((4, 4), 40 * i, np.uint8)).save(d / f"{i}.png")
  (root / "train" / "b" / "9.png").write_bytes(b"not a png")
  return root


def _bad_labels(path):
  np.save(path, np.zeros(7, np.int64))  # digits has 1500 training examples
  return path


CASES = {
    "unknown data set": (lambda p: ["--config.data.name=imagenet22k"], "unknown data set"),
    "bad labels file": (lambda p: [f"--config.data.labels_file={_bad_labels(p / 'l.npy')}"],
                        "expected 1500 labels"),
    "unreadable image": (lambda p: [f"--config.data.name=folder:{_bad_folder(p / 'f')}"],
                         "cannot read image .*train/b/9.png"),
    "bad noise rate": (lambda p: ["--config.noise.rate=1.5"], r"noise.rate 1.5 is outside"),
    "bad noise pairs": (lambda p: ["--config.noise.kind=asymmetric", "--config.noise.pairs=3-4"],
                        "must look like"),
    "no epochs": (lambda p: ["--config.num_epochs=0"], "num_epochs must be at least 1"),
    "no AUM epoch": (lambda p: ["--config.num_epochs=2", "--config.aum.skip_epochs=2"],
                     "leaves no epoch for AUM"),
    "threshold setting": (lambda p: ["--config.aum.threshold_samples=yes"],
                          "aum.threshold_samples='yes'"),
    "count rule": (lambda p: ["--config.aum.rule=magic"],
                   "aum.rule='magic'; valid: confident, calibrated, percentile"),
    "early window": (lambda p: ["--config.early.copies_accuracy=0"],
                     r"early.copies_accuracy and early.copies_probability must be in \(0, 1\]"),
    "early window, soft": (lambda p: ["--config.early.copies_probability=1.5"],
                           r"got 0.085, 1.5 and 2"),
    "in-run epoch": (lambda p: ["--config.clean.method=in_run", "--config.clean.at_epoch=20"],
                     r"clean.at_epoch must be in \[0, num_epochs=20\)"),
    "in-run copies": (lambda p: ["--config.clean.method=in_run",
                                 "--config.aum.threshold_samples=none"],
                      "clean.method=in_run needs aum.threshold_samples=copies"),
}


def test_bad_input_is_one_line_and_exit_2(tmp_path):
  import re
  procs = {}
  for name, (args, _) in CASES.items():  # in parallel: each start imports JAX
    d = tmp_path / name.replace(" ", "_")
    d.mkdir()
    procs[name] = subprocess.Popen(
        [sys.executable, "-m", "jaxclean.main", "--config=configs/default.py",
         f"--workdir={d / 'work'}", "--config.progress=False", *args(d)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  for name, p in procs.items():
    out, err = p.communicate(timeout=180)
    lines = [l for l in err.splitlines() if l.strip()]
    assert p.returncode == 2, (name, p.returncode, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
    assert re.search(CASES[name][1], lines[0]), (name, lines[0])
    assert "Traceback" not in err and not os.path.exists(tmp_path / name / "work" / "checkpoints")


def test_settings_are_refused_before_any_data_is_loaded(tmp_path):
  # A data set that would take minutes to fetch is never touched: the setting fails first.
  r = _main(tmp_path, "--config.data.name=tfds:imagenet2012", "--config.num_epochs=0")
  assert r.returncode == 2 and "num_epochs" in r.stderr and "imagenet" not in r.stderr


def test_negative_checkpoint_seconds_are_refused(tmp_path):
  r = _main(tmp_path, "--config.checkpoint.every_seconds=-1")
  assert r.returncode == 2 and "every_seconds must be >= 0" in r.stderr, r.stderr[-1000:]
  assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
  assert not os.path.exists(tmp_path / "checkpoints")


def _shown(workdir):
  """README's main command's lines as a terminal shows them (progress-bar redraws aside)."""
  r = subprocess.run([sys.executable, "-m", "jaxclean.main", f"--workdir={workdir}"], cwd=ROOT,
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900,
                     env=dict(os.environ, PYTHONUNBUFFERED="1"))  # as a terminal shows it
  out = r.stdout.decode()  # bytes: text mode would turn the redraws' "\r" into new lines
  assert r.returncode == 0, out[-3000:]
  # A redraw rewrites its line after a carriage return: keep what each line ends as.
  lines = [l.rsplit("\r", 1)[-1] for l in out.split("\n")]
  return [l for l in lines if l.strip()]


def test_default_run_is_quiet_and_ends_with_the_summary(tmp_path):
  """README's main command, the packaged default config: under 60 lines, the summary last;
  run again, it says that it trained nothing, and when the results were made."""
  lines = _shown(tmp_path)
  assert len(lines) < 60, "\n".join(lines)
  assert not [l for l in lines if l.startswith(("I1", "W1", "INFO", "WARNING"))], lines
  assert lines[-2] == f"scores: {tmp_path / 'scores.csv'}"
  assert lines[-1] == f"report: {tmp_path / 'report.html'}"
  assert any(l.startswith("estimated wrong labels: ") for l in lines[-20:])
  assert any(l.startswith("epoch 20/20: ") for l in lines)
  for name in ("scores.csv", "detection.json", "summary.json", "label_issues.csv",
               "report.html", "flagged.csv"):
    assert (tmp_path / name).exists(), name
  assert not any(l.startswith("already finished") for l in lines)
  # Read before the second run, which writes its outputs again: the date is the first run's.
  made = datetime.datetime.fromtimestamp(os.path.getmtime(tmp_path / "summary.json"))
  again = _shown(tmp_path)
  assert again[1] == (f"already finished: results from {made:%Y-%m-%d %H:%M}, restored, not "
                      f"trained again (another --workdir, or {tmp_path} emptied, starts afresh)")
  assert not any(l.startswith("epoch ") for l in again)
  assert [l for l in again if l.startswith("estimated wrong labels: ")] == [
      l for l in lines if l.startswith("estimated wrong labels: ")]


def _command(*args, cwd):
  return subprocess.run([sys.executable, "-m", "jaxclean.main", *args], cwd=cwd,
                        capture_output=True, text=True, timeout=120)


def test_help_is_short_usage_with_exit_0(tmp_path):
  from configs import default
  r = _command("--help", cwd=tmp_path)
  assert r.returncode == 0 and not r.stderr, r.stderr
  lines = r.stdout.splitlines()
  assert lines[0].startswith("usage: jaxclean --workdir=DIR [--config=FILE]") and len(lines) < 40
  assert "--config=FILE" in r.stdout and "--workdir=DIR" in r.stdout
  assert sum(l.lstrip().startswith("jaxclean --workdir=") for l in lines) == 3  # the examples
  # The defaults it names are the packaged config's.
  assert f"(default {default.get_config().num_epochs})" in r.stdout
  assert _command("-h", cwd=tmp_path).stdout == r.stdout


def test_no_arguments_print_the_usage_with_exit_2(tmp_path):
  r = _command(cwd=tmp_path)
  assert r.returncode == 2 and not r.stdout and r.stderr.startswith("usage: jaxclean")


def test_missing_workdir_is_one_line(tmp_path):
  r = _command("--config.num_epochs=1", cwd=tmp_path)
  assert r.returncode == 2 and r.stderr.splitlines() == [
      "error: --workdir=DIR is missing: where the run's results go (jaxclean --help)"]
