"""Smoke run of benchmarks/overhead.py: a few tiny steps, and the last line's format."""

import os
import re
import subprocess
import sys

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
