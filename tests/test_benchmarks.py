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
