"""End to end, process start to scores: jaxclean against the AUM authors' PyTorch library.

  python benchmarks/end_to_end.py --data fashion_mnist --n 12000 --noise asymmetric --rate 0.3
  python benchmarks/end_to_end.py --data cifar10 --n 5000 --noise uniform --rate 0.2 --epochs 5

Writes the first `--n` training and `--n_test` test images once as an npz
(x_train, y_train, x_test, y_test) in a temporary folder, with noisy labels
from `jaxclean.noise.inject` as a .npy, then runs, alternately (A B A B ...,
`--repeats` pairs), two whole processes on them and times each (wall clock,
from process start to the scores on disk):
  A  python -m jaxclean.main --config=configs/default.py --workdir=<fresh tmp>
       --config.data.name=npz:<npz> --config.data.labels_file=<labels.npy>
       --config.noise.kind=none --config.num_epochs=E  <--jax_flags>
  B  python -m third_party.aum_reference --npz <npz> --labels <labels.npy>
       --epochs E --model cnn --out <tmp>/aum.csv  <--torch_flags>
The default `--jax_flags` mirror B's recipe (small CNN, batch 128, SGD lr 0.05
with plain momentum 0.9, no weight decay, constant rate, AUM from epoch 1 on)
and are spelled out so that changes to jaxclean's defaults do not change the
comparison. A also evaluates on the test split each epoch, checkpoints and
writes every score; B only trains and records AUM: each tool's whole job.

Both AUMs are scored against the injected wrong labels: AUROC of -AUM
(low AUM = suspicious). Prints a block for `results/end_to_end.txt`; the last
line is `end-to-end wall-time ratio jax/torch: R`, R = median(A) / median(B).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.host import cpu_model, load_text, version  # noqa: E402  (after the path)

JAX_FLAGS = ("--config.model.name=cnn --config.batch_size=128 --config.optimizer.lr=0.05 "
             "--config.optimizer.momentum=0.9 --config.optimizer.nesterov=False "
             "--config.optimizer.weight_decay=0 --config.optimizer.schedule=constant "
             "--config.aum.skip_epochs=1")
# Fashion-MNIST's look-alike classes, both ways: T-shirt/shirt, trouser/dress, pullover/coat,
# sandal/sneaker, bag/ankle boot.
FMNIST_PAIRS = "0:6,6:0,1:3,3:1,2:4,4:2,5:7,7:5,8:9,9:8"


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--data", default="fashion_mnist", choices=("fashion_mnist", "cifar10"))
  p.add_argument("--n", type=int, default=12000, help="first n training images")
  p.add_argument("--n_test", type=int, default=2000, help="first n test images")
  p.add_argument("--noise", default="asymmetric", choices=("uniform", "asymmetric"))
  p.add_argument("--rate", type=float, default=0.2)
  p.add_argument("--noise_seed", type=int, default=0)
  p.add_argument("--pairs", default=None,
                 help="asymmetric pairs; default: Fashion-MNIST look-alikes, CIFAR-10 Patrini")
  p.add_argument("--epochs", type=int, default=15)
  p.add_argument("--repeats", type=int, default=1, help="A B pairs")
  p.add_argument("--jax_flags", default=JAX_FLAGS, help="jaxclean flags after the data ones (shlex-split); the default is B's recipe")
  p.add_argument("--torch_flags", default="", help="extra aum_reference flags (shlex-split)")
  p.add_argument("--cpus", default="",
                 help="pin both processes to these CPUs, e.g. '0' (comma list; torch gets as "
                      "many threads): steadier on a loaded machine")
  p.add_argument("--keep", default="", help="folder to keep the data, logs and scores in")
  return p.parse_args(argv)


def write_data(a, folder: str) -> tuple[str, str, np.ndarray]:
  """(npz path, labels .npy path, bool mask of the wrong labels)."""
  import ml_collections
  from jaxclean import data, noise
  cifar10_dir = os.path.join(os.path.dirname(ROOT), "shared", "data", "cifar10")
  data_dir = cifar10_dir if a.data == "cifar10" and os.path.isdir(cifar10_dir) else ""
  ds = data.load(ml_collections.ConfigDict(dict(
      name=a.data, data_dir=data_dir, cache_dir="", train_split="train", eval_split="test",
      labels_file="", cifar10_labels="clean", train_size=a.n, eval_size=a.n_test)))
  pairs = a.pairs if a.pairs is not None else (FMNIST_PAIRS if a.data == "fashion_mnist" else "")
  labels, wrong = noise.inject(ds.train.labels, ds.num_classes, a.noise, a.rate, a.noise_seed,
                               pairs if a.noise == "asymmetric" else None)
  npz, labels_file = os.path.join(folder, "data.npz"), os.path.join(folder, "labels.npy")
  np.savez(npz, x_train=ds.train.images, y_train=ds.train.labels, x_test=ds.test.images,
           y_test=ds.test.labels)
  np.save(labels_file, labels)
  return npz, labels_file, wrong


def timed(cmd: list[str], log: str, cpus: set[int] | None = None) -> float:
  """Wall seconds of `cmd` run in the repository root (its jaxclean, not an installed one).

  With `cpus`, the process is pinned to them before it starts.
  """
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
  with open(log, "w") as out:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                          preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    seconds = time.perf_counter() - start
  if proc.returncode:
    with open(log) as f:
      tail = f.read()[-4000:]
    sys.exit(f"{shlex.join(cmd)} failed (exit {proc.returncode}):\n{tail}")
  return seconds


def auroc(wrong: np.ndarray, aum: np.ndarray) -> float:
  from sklearn.metrics import roc_auc_score
  return float(roc_auc_score(wrong, -aum))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
  return float(np.corrcoef(pd.Series(a).rank(), pd.Series(b).rank())[0, 1])


def main(argv=None):
  a = parse_args(argv)
  command = shlex.join(["python", "benchmarks/end_to_end.py"] + (sys.argv[1:] if argv is None
                                                                  else list(argv)))
  with tempfile.TemporaryDirectory() as tmp:
    folder = a.keep or tmp
    os.makedirs(folder, exist_ok=True)
    t0 = time.perf_counter()
    npz, labels_file, wrong = write_data(a, folder)
    prep = time.perf_counter() - t0
    cpus = {int(c) for c in a.cpus.split(",")} if a.cpus else None
    torch_flags = shlex.split(a.torch_flags)
    if cpus and "--threads" not in torch_flags:
      torch_flags += ["--threads", str(len(cpus))]
    runs = {"jax": [], "torch": []}
    for r in range(a.repeats):
      workdir = os.path.join(folder, f"jax{r}")
      jax_cmd = [sys.executable, "-m", "jaxclean.main", "--config=configs/default.py",
                 f"--workdir={workdir}", f"--config.data.name=npz:{npz}",
                 f"--config.data.labels_file={labels_file}", "--config.noise.kind=none",
                 f"--config.num_epochs={a.epochs}"] + shlex.split(a.jax_flags)
      load = os.getloadavg()[0]
      seconds = timed(jax_cmd, os.path.join(folder, f"jax{r}.log"), cpus)
      jax_scores = pd.read_csv(os.path.join(workdir, "scores.csv"))
      history = pd.read_csv(os.path.join(workdir, "history.csv"))
      runs["jax"].append(dict(
          seconds=seconds, load=(load, os.getloadavg()[0]),
          auroc=auroc(wrong, jax_scores["aum"].to_numpy()),
          aum=jax_scores["aum"].to_numpy(), train_seconds=history["seconds"].sum(),
          test_accuracy=history["test_accuracy"].iloc[-1] if "test_accuracy" in history else None))
      print(f"jax   run {r}: {seconds:.1f} s, AUROC {runs['jax'][-1]['auroc']:.4f}", flush=True)

      out = os.path.join(folder, f"torch{r}.csv")
      torch_cmd = [sys.executable, "-m", "third_party.aum_reference", "--npz", npz,
                   "--labels", labels_file, "--epochs", str(a.epochs), "--model", "cnn",
                   "--out", out] + torch_flags
      torch_log = os.path.join(folder, f"torch{r}.log")
      load = os.getloadavg()[0]
      seconds = timed(torch_cmd, torch_log, cpus)
      torch_aum = pd.read_csv(out)["aum"].to_numpy()
      with open(torch_log) as f:
        inner = re.search(r"training \+ recording ([\d.]+) s", f.read())
      runs["torch"].append(dict(seconds=seconds, load=(load, os.getloadavg()[0]),
                                auroc=auroc(wrong, torch_aum), aum=torch_aum,
                                train_seconds=float(inner.group(1)) if inner else float("nan")))
      print(f"torch run {r}: {seconds:.1f} s, AUROC {runs['torch'][-1]['auroc']:.4f}", flush=True)

  med = {k: statistics.median(x["seconds"] for x in v) for k, v in runs.items()}
  lines = [
      f"$ {command}",
      f"# {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}, nproc "
      f"{os.cpu_count()}, {platform.machine()} {cpu_model()}; {load_text()} at the end",
      f"# python {platform.python_version()}, jax {version('jax')}, jaxlib {version('jaxlib')}, "
      f"flax {version('flax')}, torch {version('torch')}, aum {version('aum')}",
      f"data: {a.data}, first {a.n} train / {a.n_test} test images, {a.noise} noise rate "
      f"{a.rate} (seed {a.noise_seed}): {int(wrong.sum())} wrong labels; npz written in "
      f"{prep:.1f} s (not timed below)",
      f"A (jax):   python -m jaxclean.main --config=configs/default.py --workdir=TMP "
      f"--config.data.name=npz:DATA.npz --config.data.labels_file=LABELS.npy "
      f"--config.noise.kind=none --config.num_epochs={a.epochs} {a.jax_flags}",
      f"B (torch): python -m third_party.aum_reference --npz DATA.npz --labels LABELS.npy "
      f"--epochs {a.epochs} --model cnn --out TMP/aum.csv {shlex.join(torch_flags)}".rstrip(),
      f"both pinned to CPUs {sorted(cpus)}" if cpus else "not pinned (both may use every core)",
      "",
      "run  method  wall_s  train_s  AUROC(-aum)  load1 start/end",
  ]
  for r in range(a.repeats):
    for k in ("jax", "torch"):
      x = runs[k][r]
      lines.append(f"{r:3d}  {k:6s}  {x['seconds']:6.1f}  {x['train_seconds']:7.1f}  "
                   f"{x['auroc']:.4f}       {x['load'][0]:.1f} / {x['load'][1]:.1f}")
  lines += [
      "(wall_s: whole process; train_s: jax = sum of history.csv epoch seconds, with each "
      "epoch's test evaluation; torch = training + recording + finalize as it reports; "
      "load1: 1-minute load average when the process started and ended, on nproc cores)",
      f"median wall: jax {med['jax']:.1f} s, torch {med['torch']:.1f} s",
      f"AUROC of -AUM against the wrong labels (median): jax "
      f"{statistics.median(x['auroc'] for x in runs['jax']):.4f}, torch "
      f"{statistics.median(x['auroc'] for x in runs['torch']):.4f}",
      f"Spearman of the two AUMs (run 0): {spearman(runs['jax'][0]['aum'], runs['torch'][0]['aum']):.3f}",
  ]
  if runs["jax"][-1]["test_accuracy"] is not None:
    lines.append(f"jax final test accuracy (run {a.repeats - 1}, noisy-label training): "
                 f"{runs['jax'][-1]['test_accuracy']:.4f}")
  lines.append(f"end-to-end wall-time ratio jax/torch: {med['jax'] / med['torch']:.2f}")
  print("\n".join(["", "----- results (paste into benchmarks/results/end_to_end.txt) -----"]
                  + lines))


if __name__ == "__main__":
  main()
