"""jaxclean on precomputed embeddings against cleanlab's recipe on the same features, whole
processes, side by side.

  python benchmarks/embeddings.py                       # 10,000 stand-in embeddings, 5 rounds
  python benchmarks/embeddings.py --before DIR          # also another checkout's jaxclean
  python benchmarks/embeddings.py --smoke               # tiny, for the test suite

Features (N, D) and labels: `--features X.npy --labels Y.npy`; else the CIFAR-10 stand-in's
embeddings of training images 0..9999 (experiments/standin.py's cache,
/work/runs/standin/features/cifar10_train.npy, 128 wide) with their CIFAR-10N `aggre` labels
(../shared/data/cifar10/labels.npz) where both exist; else Gaussian clusters (`--n`, `--d`,
`--classes`) with `--rate` of the labels moved to another class. They are written once as .npy
files (not timed).

Each round runs these whole processes one after the other, in a rotated order, and times each
from process start to its results on disk (the Python start and every import included):
  cold      `jaxclean.find_label_issues(x, labels, workdir=TMP, progress=False)`, the default
            recipe (`--epochs` to change it), with an empty compilation cache
            (JAXCLEAN_COMPILATION_CACHE=<fresh folder>): a first run on this machine
  warm      the same, with the cache a run before the rounds filled (not timed): any later run
            of the same shapes
  before    the same call with jaxclean from `--before` (a checkout of older code, first on
            PYTHONPATH), without a persistent cache
  cleanlab  cleanlab's recipe for embeddings: 5-fold `cross_val_predict` of scikit-learn's
            `LogisticRegression(max_iter=1000)` (`predict_proba`), then
            `cleanlab.filter.find_label_issues`, `cleanlab.count.num_label_issues` and
            `cleanlab.rank.get_label_quality_scores`, each with its defaults
  cleanlab1 the same on one thread (`threadpoolctl.threadpool_limits(1)`, find_label_issues'
            n_jobs=1), as experiments/standin.py runs it: with the defaults, OpenBLAS's two
            threads on 2 cores that other jobs load spin and wait (109 s against 2.5 s for
            the cross-validation at load 8)
Each process also reports its own import and call seconds. Every jaxclean run's scores.csv,
label_issues.csv, corrected_labels.npy and summary.json must be the same as its code's first
run's (checked; whether `before` writes the same as now is printed). Prints
the command, date, machine, versions and load first, medians per process last; the last line
is `jaxclean / cleanlab wall time: warm R, cold R; on one thread: warm R1, cold R1` (ratios
of medians).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.host import cpu_model, load_text, version  # noqa: E402  (after the path)
STANDIN = "/work/runs/standin/features/cifar10_train.npy"
CIFAR10N = os.path.join(os.path.dirname(ROOT), "shared", "data", "cifar10", "labels.npz")
OUTPUTS = ("scores.csv", "label_issues.csv", "corrected_labels.npy", "summary.json")

JAXCLEAN = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import jaxclean.protocol  # what the call imports (jax, flax, orbax, pandas)
x, labels = np.load(sys.argv[1]), np.load(sys.argv[2])
t1 = time.perf_counter()
extra = json.loads(sys.argv[4])
r = jaxclean.find_label_issues(x, labels, workdir=sys.argv[3], progress=False, **extra)
t2 = time.perf_counter()
print(json.dumps(dict(import_s=t1 - t0, call_s=t2 - t1, count=r.estimated_wrong_labels,
                      flagged=len(r.flagged), file=sys.modules["jaxclean.api"].__file__)))
"""

CLEANLAB = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import cleanlab.count, cleanlab.filter, cleanlab.rank
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
import threadpoolctl
x, labels = np.load(sys.argv[1]), np.load(sys.argv[2])
one = sys.argv[4] == "1"  # one thread: BLAS and OpenMP limited to 1, find_label_issues n_jobs=1
t1 = time.perf_counter()
with threadpoolctl.threadpool_limits(1 if one else None):
  probs = cross_val_predict(LogisticRegression(max_iter=1000), x, labels, cv=int(sys.argv[3]),
                            method="predict_proba")
  issues = cleanlab.filter.find_label_issues(labels, probs, **(dict(n_jobs=1) if one else {}))
  count = int(cleanlab.count.num_label_issues(labels, probs))
  quality = cleanlab.rank.get_label_quality_scores(labels, probs)
t2 = time.perf_counter()
print(json.dumps(dict(import_s=t1 - t0, call_s=t2 - t1, count=count,
                      flagged=int(issues.sum()))))
"""


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--features", default="", help=".npy of (N, D) features")
  p.add_argument("--labels", default="", help=".npy of N integer labels")
  p.add_argument("--n", type=int, default=10000, help="Gaussian clusters: examples")
  p.add_argument("--d", type=int, default=96, help="Gaussian clusters: features")
  p.add_argument("--classes", type=int, default=10, help="Gaussian clusters: classes")
  p.add_argument("--rate", type=float, default=0.2, help="Gaussian clusters: labels moved")
  p.add_argument("--gaussian", action="store_true", help="Gaussian clusters even where the "
                 "stand-in's embeddings exist")
  p.add_argument("--rounds", type=int, default=5, help="rounds of every process")
  p.add_argument("--epochs", type=int, default=0, help="jaxclean's num_epochs (0: default)")
  p.add_argument("--folds", type=int, default=5, help="cleanlab's cross-validation folds")
  p.add_argument("--before", default="", help="a checkout whose jaxclean runs as `before`")
  p.add_argument("--smoke", action="store_true",
                 help="300 Gaussian examples of 8 features, 2 epochs, 1 round")
  return p.parse_args(argv)


def features(a) -> tuple[np.ndarray, np.ndarray, str]:
  """(x, labels, where they come from)."""
  if a.features:
    return np.load(a.features), np.load(a.labels), f"{a.features}, labels {a.labels}"
  if not a.gaussian and os.path.isfile(STANDIN) and os.path.isfile(CIFAR10N):
    x = np.load(STANDIN)[:a.n]
    with np.load(CIFAR10N) as f:
      labels, truth = f["aggre_label"][:len(x)], f["train_label"][:len(x)]
    return x, labels, (f"the CIFAR-10 stand-in's embeddings of training images 0..{len(x) - 1} "
                       f"({STANDIN}), CIFAR-10N aggre labels ({np.mean(labels != truth):.1%} "
                       f"wrong)")
  rng = np.random.default_rng(0)
  truth = rng.integers(0, a.classes, a.n)
  centres = rng.normal(0, 1, (a.classes, a.d))
  x = (centres[truth] + rng.normal(0, 1.5, (a.n, a.d))).astype(np.float32)
  labels = truth.copy()
  moved = rng.random(a.n) < a.rate
  labels[moved] = (truth[moved] + rng.integers(1, a.classes, moved.sum())) % a.classes
  return x, labels, (f"Gaussian clusters: {a.n} x {a.d}, {a.classes} classes, "
                     f"{moved.mean():.1%} of the labels moved")


def run(code: str, args: list[str], env: dict, cwd: str) -> dict:
  """Wall seconds of `python -c code args` and what it printed last (JSON). `cwd` is not the
  repository: the path's first entry would import its jaxclean, whatever PYTHONPATH says."""
  start = time.perf_counter()
  proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env,
                        capture_output=True, text=True)
  wall = time.perf_counter() - start
  if proc.returncode:
    sys.exit(f"{code.strip().splitlines()[-3]} ... failed (exit {proc.returncode}):\n"
             f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
  return dict(json.loads(proc.stdout.strip().splitlines()[-1]), wall_s=wall)


def environment(path: str | None, cache: str | None) -> dict:
  """The environment of a jaxclean process: `path`'s jaxclean first on PYTHONPATH, and the
  compilation cache at `cache` (None: none of jaxclean's)."""
  env = {k: v for k, v in os.environ.items()
         if k not in ("JAX_COMPILATION_CACHE_DIR", "JAXCLEAN_COMPILATION_CACHE")}
  if path:
    env["PYTHONPATH"] = os.pathsep.join([path] + [p for p in env.get("PYTHONPATH", "").split(
        os.pathsep) if p])
  env["JAXCLEAN_COMPILATION_CACHE"] = cache or "0"
  return env


def same_outputs(a: str, b: str) -> bool:
  for name in OUTPUTS:
    with open(os.path.join(a, name), "rb") as f, open(os.path.join(b, name), "rb") as g:
      if f.read() != g.read():
        return False
  return True


def main(argv=None):
  a = parse_args(argv)
  if a.smoke:
    a.n, a.d, a.classes, a.rounds, a.epochs, a.gaussian = 300, 8, 3, 1, 2, True
  command = shlex.join(["python", "benchmarks/embeddings.py"] + (sys.argv[1:] if argv is None
                                                                 else list(argv)))
  x, labels, source = features(a)
  extra = json.dumps(dict(num_epochs=a.epochs) if a.epochs else {})
  header = [
      f"$ {command}",
      f"# {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}, nproc "
      f"{os.cpu_count()}, {platform.machine()} {cpu_model()}; {load_text()} at the start",
      f"# python {platform.python_version()}, jax {version('jax')}, jaxlib {version('jaxlib')}, "
      f"flax {version('flax')}, cleanlab {version('cleanlab')}, scikit-learn "
      f"{version('scikit-learn')}, numpy {version('numpy')}",
      f"features: {source}; x {x.shape} {x.dtype}",
      "jaxclean: find_label_issues(x, labels, workdir=TMP, progress=False"
      + (f", num_epochs={a.epochs}" if a.epochs else "") + ") (default recipe otherwise)",
      f"cleanlab: {a.folds}-fold cross_val_predict(LogisticRegression(max_iter=1000)) -> "
      "find_label_issues, num_label_issues, get_label_quality_scores (defaults); cleanlab1: "
      "the same in threadpool_limits(1), find_label_issues(n_jobs=1)",
  ]
  print("\n".join(header), flush=True)
  kinds = ["cold", "warm"] + (["before"] if a.before else []) + ["cleanlab", "cleanlab1"]
  times = {k: [] for k in kinds}
  loads = []
  with tempfile.TemporaryDirectory() as tmp:
    xp, yp = os.path.join(tmp, "x.npy"), os.path.join(tmp, "labels.npy")
    np.save(xp, x)
    np.save(yp, labels)
    warm_cache = os.path.join(tmp, "cache_warm")
    first = os.path.join(tmp, "filling")
    run(JAXCLEAN, [xp, yp, first, extra], environment(ROOT, warm_cache), tmp)  # fills the cache
    firsts = {k: first for k in ("cold", "warm")}
    if a.before:
      firsts["before"] = os.path.join(tmp, "check")
      before = run(JAXCLEAN, [xp, yp, firsts["before"], extra],
                   environment(os.path.abspath(a.before), None), tmp)
      if not before["file"].startswith(os.path.abspath(a.before)):
        sys.exit(f"--before: jaxclean was imported from {before['file']}")
      print(f"before and now write the same {', '.join(OUTPUTS)}: "
            f"{'yes' if same_outputs(first, firsts['before']) else 'no'}")
    print(f"\nround  {'process':9s} {'wall_s':>7s} {'import_s':>8s} {'call_s':>7s} "
          f"{'count':>6s} {'flagged':>7s}  load1", flush=True)
    for r in range(a.rounds):
      order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
      for kind in order:
        load = os.getloadavg()[0]
        if kind.startswith("cleanlab"):
          out = run(CLEANLAB, [xp, yp, str(a.folds), "1" if kind == "cleanlab1" else "0"],
                    dict(os.environ), tmp)
        else:
          workdir = os.path.join(tmp, f"{kind}{r}")
          cache = (os.path.join(tmp, f"cache_cold{r}") if kind == "cold" else
                   warm_cache if kind == "warm" else None)
          out = run(JAXCLEAN, [xp, yp, workdir, extra],
                    environment(a.before if kind == "before" else ROOT, cache), tmp)
          if not same_outputs(firsts[kind], workdir):
            sys.exit(f"{kind} round {r}: outputs differ from the first run's ({OUTPUTS})")
        times[kind].append(out["wall_s"])
        loads.append(load)
        print(f"{r:5d}  {kind:9s} {out['wall_s']:7.2f} {out['import_s']:8.2f} "
              f"{out['call_s']:7.2f} {out['count']:6d} {out['flagged']:7d}  {load:.2f}",
              flush=True)
  med = {k: statistics.median(v) for k, v in times.items()}
  lines = ["", f"medians of {a.rounds} round(s), whole processes (wall s): "
           + ", ".join(f"{k} {v:.2f}" for k, v in med.items()),
           f"every jaxclean run wrote the same {', '.join(OUTPUTS)} as its code's first run",
           f"# {load_text()} at the end; 1-minute load when the processes started: "
           f"{min(loads):.2f} to {max(loads):.2f} on {os.cpu_count()} cores"]
  if "before" in med:
    lines.append(f"before / now (cold): {med['before'] / med['cold']:.2f}x, "
                 f"before / now (warm): {med['before'] / med['warm']:.2f}x")
  ratio = lambda k, c: f"{med[k] / med[c]:.2f}"
  lines.append(f"jaxclean / cleanlab wall time: warm {ratio('warm', 'cleanlab')}, cold "
               f"{ratio('cold', 'cleanlab')}; on one thread: warm {ratio('warm', 'cleanlab1')}, "
               f"cold {ratio('cold', 'cleanlab1')}")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
