"""Smoke runs of benchmarks/overhead.py (a few tiny steps, the last line's format) and
a syntax check of benchmarks/accelerator.sh."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from jaxclean import xla_defaults

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_overhead_smoke():
  cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "overhead.py"), "--sections",
         "overhead", "--steps", "3", "--warmup", "1", "--batch", "16", "--num_examples", "1000",
         "--data", "random"]
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  assert re.fullmatch(r"recording overhead: -?\d+\.\d %", lines[-1]), lines[-3:]
  assert "records donated (input buffers consumed, updated in place): yes" in proc.stdout


def test_end_to_end_smoke():
  """benchmarks/end_to_end.py on 300 Fashion-MNIST images, 2 epochs: both processes, last line."""
  import pytest
  pytest.importorskip("torch")
  pytest.importorskip("aum")
  if not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
    pytest.skip("needs Debian's dataset-fashion-mnist")
  cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "end_to_end.py"), "--n", "300",
         "--n_test", "100", "--epochs", "2", "--noise", "uniform", "--rate", "0.2",
         "--jax_flags", "--config.model.name=mlp --config.progress=False"]
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  assert re.fullmatch(r"end-to-end wall-time ratio jax/torch: \d+\.\d\d", lines[-1]), lines[-3:]
  assert re.search(r"AUROC of -AUM .*: jax 0\.\d{4}, torch 0\.\d{4}", proc.stdout)


def test_torch_section_takes_the_cli_flag_and_ends_with_the_ratio():
  pytest.importorskip("torch")
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAXCLEAN_XLA_DEFAULTS")}
  cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "overhead.py"), "--sections", "torch",
         "--torch_steps", "1", "--warmup", "1", "--batch", "8", "--num_examples", "100",
         "--data", "random"]
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  assert re.fullmatch(r"jax/torch step ratio: \d+\.\d\d", lines[-1]), lines[-3:]
  added = f"jaxclean's XLA default: {xla_defaults.FLAG} added" in proc.stdout
  assert added == xla_defaults.wanted(env)


def test_accelerator_script_parses():
  subprocess.run(["bash", "-n", os.path.join(ROOT, "benchmarks", "accelerator.sh")], check=True)


def test_backbones_smoke():
  """benchmarks/backbones.py on keras-hub's tiny random backbones: every row and the ratio."""
  pytest.importorskip("keras_hub")
  cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "backbones.py"), "--smoke",
         "--batch", "4", "--repeats", "1"]
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [l.split() for l in proc.stdout.splitlines() if l.startswith("tiny_")]
  assert [r[0] for r in rows] == ["tiny_dinov2", "tiny_resnet"]
  assert all(float(v) > 0 for r in rows for v in r[1:])
  if importlib.util.find_spec("jimm"):
    assert re.search(r"jax-image-models / keras-hub: [\d.]+ / [\d.]+ ms per example = [\d.]+",
                     proc.stdout)


def _smoke(script: str, *args: str) -> str:
  """stdout of benchmarks/`script` with `args`, which must succeed."""
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args],
                        capture_output=True, text=True, timeout=600, cwd=ROOT)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  return proc.stdout


def test_scale_smoke():
  """benchmarks/scale.py, every section at a tiny size: the summary lines, the issue's last."""
  out = _smoke("scale.py", "--smoke")
  assert re.fullmatch(r"input pipeline: \d+\.\d{3} ms per batch at N=1e3, \d+\.\d{3} ms at N=1e4",
                      out.strip().splitlines()[-1]), out[-2000:]
  assert "record update at N=1e+04 vs N=1e+03" in out
  assert "records per device at N=1e+03 on 8 devices" in out


def test_ensemble_smoke():
  out = _smoke("ensemble.py", "--members", "1,2", "--batch", "8", "--repeats", "1")
  assert re.search(r"K=2: +\d+\.\d ms +ratio K:1 = \d+\.\d\d", out), out


def test_step_flops_smoke():
  out = _smoke("step_flops.py", "--smoke")
  assert len(re.findall(r"^full_\w+: mlp, batch 8, .* FLOP per step", out, re.M)) == 2, out


def test_embeddings_smoke():
  """benchmarks/embeddings.py on 300 Gaussian vectors, 2 epochs, the checkout itself as the
  `before` code: every process, the same outputs from every jaxclean run, the last line."""
  pytest.importorskip("cleanlab")
  out = _smoke("embeddings.py", "--smoke", "--before", ROOT)
  kinds = re.findall(r"^ +0  (\w+) +\d+\.\d\d ", out, re.M)
  assert sorted(kinds) == ["before", "cleanlab", "cleanlab1", "cold", "warm"], out
  assert "every jaxclean run wrote the same" in out
  assert re.fullmatch(r"jaxclean / cleanlab wall time: warm \d+\.\d\d, cold \d+\.\d\d; "
                      r"on one thread: warm \d+\.\d\d, cold \d+\.\d\d",
                      out.strip().splitlines()[-1]), out[-1000:]


def test_every_script_runs_in_the_suite():
  """Each script of benchmarks/ and experiments/ (less the modules they share) is run by a
  test at a tiny size, so a changed signature fails the suite, not the next person."""
  import pathlib
  tests = "\n".join(p.read_text() for p in pathlib.Path(ROOT, "tests").glob("test_*.py"))
  shared = {"__init__", "settings", "tables", "host", "dumps"}
  scripts = [p for d in ("benchmarks", "experiments")
             for p in sorted(pathlib.Path(ROOT, d).glob("*.py")) if p.stem not in shared]
  run = lambda p: re.search(rf'"{p.stem}\.py"|experiments\.{p.stem}\b'
                            rf'|from experiments import [\w, ]*\b{p.stem}\b', tests)
  missing = [p.name for p in scripts if not run(p)]
  assert len(scripts) > 10 and not missing, missing


def test_million_smoke(tmp_path):
  """benchmarks/million.py at N = 2000: the command line's run, its count and no XLA alarm."""
  out = _smoke("million.py", "--smoke", "--workdir", str(tmp_path / "run"))
  assert re.search(r"estimated wrong labels [\d,]+ of 400 injected", out), out
  assert re.search(r"N=2,000 in 10 classes, 2 epochs: wall \S+, max RSS \d+\.\d\d GB, "
                   r"XLA alarms: 0$", out.strip()), out
