"""The whole command line on a million examples in a thousand classes: wall time, peak
resident memory, the count against the truth, and whether XLA printed any alarm.

  python benchmarks/million.py              # N = 1e6, C = 1000 (~3 min on 2 quiet cores)
  python benchmarks/million.py --smoke      # N = 2000, C = 10 (the suite's)

The data (made once in /tmp): `npy:` arrays of 8x8 grey images, each its class's random
pattern plus Gaussian noise, with --rate uniform noise injected by the run (the truth known); the default
config with an MLP for --epochs epochs. The run goes through `/usr/bin/time -v` in a child
process; every line of its output that names `slow_operation_alarm` or "Constant folding"
counts as an alarm (XLA prints them when a compiled program folds large constants).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_data(n: int, classes: int) -> str:
  """`npy:` directory of n training and n // 100 test images in `classes` classes, made once."""
  out = f"/tmp/jaxclean_million_{n}_{classes}"
  if not os.path.exists(os.path.join(out, "y_test.npy")):
    rng = np.random.default_rng(0)
    patterns = rng.uniform(0, 255, (classes, 8, 8, 1))
    os.makedirs(out, exist_ok=True)
    for split, size in (("train", n), ("test", max(n // 100, classes))):
      y = rng.integers(0, classes, size).astype(np.int32)
      x = np.empty((size, 8, 8, 1), np.uint8)
      for s in range(0, size, 100_000):
        noise = rng.normal(0, 40, (len(y[s:s + 100_000]), 8, 8, 1))
        x[s:s + 100_000] = np.clip(patterns[y[s:s + 100_000]] + noise, 0, 255)
      np.save(os.path.join(out, f"x_{split}.npy"), x)
      np.save(os.path.join(out, f"y_{split}.npy"), y)
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--n", type=int, default=1_000_000)
  p.add_argument("--classes", type=int, default=1000)
  p.add_argument("--epochs", type=int, default=2)
  p.add_argument("--rate", type=float, default=0.2)
  p.add_argument("--workdir", default="/tmp/jaxclean_million_run")
  p.add_argument("--smoke", action="store_true", help="N = 2000 in 10 classes")
  a = p.parse_args()
  if a.smoke:
    a.n, a.classes = 2000, 10
  data = make_data(a.n, a.classes)
  subprocess.run(["rm", "-rf", a.workdir], check=True)
  cmd = [sys.executable, "-m", "jaxclean.main", "--config=configs/default.py",
         f"--workdir={a.workdir}", f"--config.data.name=npy:{data}", "--config.model.name=mlp",
         f"--config.num_epochs={a.epochs}", f"--config.noise.rate={a.rate}",
         "--config.noise.kind=uniform", "--config.progress=False"]
  print(f"$ python benchmarks/{os.path.basename(__file__)} {' '.join(sys.argv[1:])}\n"
        f"# {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} CPUs, load average "
        "%.2f %.2f %.2f" % os.getloadavg() + f"\n$ python {' '.join(cmd[1:])}", flush=True)
  proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, cwd=ROOT)
  out = proc.stdout + proc.stderr
  if proc.returncode:
    sys.exit(f"the run failed (rc {proc.returncode}):\n{out[-5000:]}")
  wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", out).group(1)
  rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out).group(1))
  alarms = [l for l in out.splitlines() if "slow_operation_alarm" in l or "Constant folding" in l]
  with open(os.path.join(a.workdir, "summary.json")) as f:
    s = json.load(f)
  wrong = int(pd.read_csv(os.path.join(a.workdir, "scores.csv"), usecols=["is_noisy"])
              ["is_noisy"].sum())
  print("# load average after: %.2f %.2f %.2f" % os.getloadavg())
  print(f"estimated wrong labels {s['estimated_wrong_labels']:,} of {wrong:,} injected "
        f"({s['estimated_wrong_labels'] / wrong - 1:+.0%}); test accuracy "
        f"{s['test_accuracy']:.3f}")
  print(f"N={a.n:,} in {a.classes:,} classes, {a.epochs} epochs: wall {wall}, max RSS "
        f"{rss / 1e6:.2f} GB, XLA alarms: {len(alarms)}")


if __name__ == "__main__":
  main()
