"""Ensembles in one step: step time of K members against one, and what K buys.

  python benchmarks/ensemble.py                       # step times, K = 1, 2, 4, 8
  python benchmarks/ensemble.py --auroc 1,2,4 --n 6000   # + AUROC per K on Fashion-MNIST

1. The jitted train step (records on) of the small CNN at batch 128 on
   Fashion-MNIST-shaped inputs, with config.ensemble = K: median step times,
   interleaved in one run, and the ratio K:1. One step of K members costs K
   models' arithmetic; on a CPU that is about K times the time, on an
   accelerator a small model leaves the chip mostly idle, so K members cost
   far less than K runs.
2. With --auroc K,...: the default config on Fashion-MNIST's first --n training
   images with --noise (asymmetric 30 % by default) for each K: AUROC
   of aum, el2n and combined against the injected wrong labels, and wall time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def step_times(members, batch, repeats):
  import jax
  import numpy as np
  from configs import default
  from jaxclean import parallel, train
  from jaxclean.models import get_model
  mesh = parallel.make_mesh(1)
  rng = np.random.default_rng(0)
  local = dict(image=rng.integers(0, 255, (batch, 28, 28, 1)).astype(np.uint8),
               label=rng.integers(0, 10, batch).astype(np.int32),
               index=rng.permutation(10000)[:batch].astype(np.int32), mask=np.ones(batch, bool))
  runs = []
  for k in members:
    c = default.get_config()
    c.ensemble = k
    state = train.create_train_state(c, get_model("cnn", 10), (28, 28, 1), 100)
    state, key = parallel.replicate((state, jax.random.key(0)), mesh)
    box = dict(state=state, records=train.init_records(10000, k, mesh), key=key)
    step = train.make_train_step(c, np.float32(73), np.float32(90), 100, record=True)
    batch_arrays = parallel.to_global(local, mesh, batch)

    def run(step=step, box=box, batch_arrays=batch_arrays):
      box["state"], box["records"], m = step(box["state"], box["records"], batch_arrays,
                                             box["key"], True)
      jax.block_until_ready(m)

    with jax.set_mesh(mesh):
      run()  # compile
    runs.append(run)
  times = [[] for _ in members]
  with jax.set_mesh(mesh):
    for _ in range(repeats):
      for t, fn in zip(times, runs):
        start = time.perf_counter()
        fn()
        t.append(time.perf_counter() - start)
  med = [float(np.median(t)) for t in times]
  print(f"== step time, small CNN, batch {batch}, {repeats} interleaved rounds "
        f"({jax.default_backend()}):")
  for k, m in zip(members, med):
    print(f"K={k}: {1e3 * m:8.1f} ms   ratio K:1 = {m / med[0]:.2f}   per member "
          f"{m / med[0] / k:.2f}")


def auroc(members, n, noise, rate, epochs):
  import numpy as np
  import ml_collections
  from sklearn import metrics
  from configs import default
  from jaxclean import data, noise as noise_lib, protocol
  from jaxclean import scores as scores_lib
  ds = data.load(ml_collections.ConfigDict(dict(name="fashion_mnist")))
  pairs = "0:6,6:0,1:3,3:1,2:4,4:2,5:7,7:5,8:9,9:8"
  labels, is_noisy = noise_lib.inject(ds.train.labels[:n], 10, noise, rate, 0, pairs)
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "data.npz")
    np.savez(path, x_train=ds.train.images[:n], y_train=labels, x_test=ds.test.images[:2000],
             y_test=ds.test.labels[:2000])
    print(f"== AUROC per ensemble size: Fashion-MNIST {n}, {noise} {rate:.0%}, {epochs} epochs")
    for k in members:
      c = default.get_config()
      c.data.name, c.noise.kind, c.num_epochs = f"npz:{path}", "none", epochs
      c.ensemble, c.progress = k, False
      start = time.perf_counter()
      df = protocol.train_and_evaluate(c, os.path.join(tmp, f"k{k}"))["scores"]
      seconds = time.perf_counter() - start
      row = {s: metrics.roc_auc_score(is_noisy, scores_lib.suspicion(s, df[s].to_numpy()))
             for s in ("aum", "el2n", "combined")}
      print(f"K={k}: " + "  ".join(f"{s} {v:.4f}" for s, v in row.items())
            + f"   {seconds:.0f} s", flush=True)


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--members", default="1,2,4,8")
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--repeats", type=int, default=15)
  p.add_argument("--auroc", default="", help="ensemble sizes to train for AUROC, e.g. 1,2,4")
  p.add_argument("--n", type=int, default=6000)
  p.add_argument("--noise", default="asymmetric")
  p.add_argument("--rate", type=float, default=0.3)
  p.add_argument("--epochs", type=int, default=15)
  a = p.parse_args()
  members = [int(k) for k in a.members.split(",")]
  step_times(members, a.batch, a.repeats)
  if a.auroc:
    auroc([int(k) for k in a.auroc.split(",")], a.n, a.noise, a.rate, a.epochs)


if __name__ == "__main__":
  main()
