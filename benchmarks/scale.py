"""Records at scale: update cost vs N, memory vs N, devices, input pipeline.

  python benchmarks/scale.py                 # everything, N up to 1e8 (~3.2 GB of records)
  python benchmarks/scale.py --max_n 1e6     # quicker

Prints, as ratios measured side by side in one run:
1. the record update versus the rest of a train step (small CNN, batch 256)
   at N = 1e5 ... 1e8: the update is a gather/scatter of B rows, flat in N;
2. peak host memory (and device memory where the backend reports it) for
   records of N examples, each N in a fresh process;
3. step time on 1, 2, 4, 8 fake CPU devices against one device (the same
   global batch; on CPU the fake devices share the cores, so this checks the
   sharded step's overhead, not a speed-up);
4. the input pipeline: time to build a global batch on the host versus the
   step, and the step time with and without the background prefetch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _median_times(fns, repeats):
  """Interleaved timing: median seconds of each fn over `repeats` rounds."""
  import numpy as np
  times = [[] for _ in fns]
  for _ in range(repeats):
    for t, fn in zip(times, fns):
      start = time.perf_counter()
      fn()
      t.append(time.perf_counter() - start)
  return [float(np.median(t)) for t in times]


def _setup(batch, n, mesh):
  """A small-CNN train state, records for n examples and a random batch on `mesh`."""
  import jax
  import numpy as np
  from configs import default
  from jaxclean import parallel, train
  from jaxclean.models import get_model
  c = default.get_config()
  c.model.name = "cnn"
  x = np.random.default_rng(0).integers(0, 255, (batch, 28, 28, 1)).astype(np.uint8)
  state = train.create_train_state(c, get_model("cnn", 10), x.shape[1:], 100)
  local = dict(image=x, label=np.arange(batch, dtype=np.int32) % 10,
               index=np.random.default_rng(1).choice(n, batch, replace=False).astype(np.int32),
               mask=np.ones(batch, bool))
  state, key = parallel.replicate((state, jax.random.key(0)), mesh)
  recs = parallel.replicate(train.init_records(n, 1), mesh)
  batch_arrays = parallel.to_global(local, mesh, batch)
  mean, std = np.float32(128), np.float32(64)
  steps = {r: train.make_train_step(c, mean, std, 100, record=r) for r in (True, False)}
  return c, state, recs, batch_arrays, key, steps, local


def update_cost(ns, batch, repeats):
  """Record update vs the rest of the step, per N."""
  import jax
  from jaxclean import parallel, records
  mesh = parallel.make_mesh(1)
  rows = []
  for n in ns:
    _, state, recs, b, key, steps, _ = _setup(batch, n, mesh)
    upd = jax.jit(records.update, donate_argnums=0)
    box = dict(state=state, recs=recs)

    def with_rec():
      box["state"], box["recs"], m = steps[True](box["state"], box["recs"], b, key)
      jax.block_until_ready(m)

    def without():
      box["state"], box["recs"], m = steps[False](box["state"], box["recs"], b, key)
      jax.block_until_ready(m)

    logits = jax.numpy.zeros((batch, 10))

    def update_only():
      box["recs"] = upd(box["recs"], b["index"], logits, b["label"], b["mask"])
      jax.block_until_ready(box["recs"].seen)

    for f in (with_rec, without, update_only):
      f()
    t_rec, t_plain, t_upd = _median_times([with_rec, without, update_only], repeats)
    rows.append(dict(n=n, step_ms=t_plain * 1e3, step_with_records_ms=t_rec * 1e3,
                     update_alone_ms=t_upd * 1e3, update_over_step=t_upd / t_plain,
                     overhead=t_rec / t_plain - 1))
    del box, recs
  return rows


def memory_child(n):
  """Runs in a fresh process: resident memory added by records of n after 10 updates."""
  import jax
  import jax.numpy as jnp
  import psutil
  from jaxclean import records
  upd = jax.jit(records.update, donate_argnums=0)
  args = (jnp.arange(256), jnp.zeros((256, 10)), jnp.zeros(256, jnp.int32), jnp.ones(256, bool))
  jax.block_until_ready(upd(records.init(256), *args))  # compile, warm the allocator
  base = psutil.Process().memory_info().rss
  r = records.init(n)
  for _ in range(10):
    r = upd(r, *args)
  jax.block_until_ready(r)
  rss = psutil.Process().memory_info().rss
  stats = jax.devices()[0].memory_stats() or {}
  print(json.dumps(dict(n=n, records_bytes=records.BYTES_PER_EXAMPLE * n,
                        rss_added_bytes=rss - base, rss_over_records=(rss - base) / (
                            records.BYTES_PER_EXAMPLE * n),
                        device_peak_bytes=stats.get("peak_bytes_in_use"))))


def memory(ns):
  rows = []
  for n in ns:
    out = subprocess.run([sys.executable, __file__, "--memory_child", str(n)],
                         capture_output=True, text=True, check=True)
    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
  return rows


def devices(batch, repeats):
  """Step time (with records) on 1, 2, 4, 8 fake devices, same global batch."""
  import jax
  from jaxclean import parallel
  rows = []
  for d in (1, 2, 4, 8):
    mesh = parallel.make_mesh(d)
    _, state, recs, b, key, steps, _ = _setup(batch, 60000, mesh)
    box = dict(state=state, recs=recs)

    def step():
      with jax.set_mesh(mesh):
        box["state"], box["recs"], m = steps[True](box["state"], box["recs"], b, key)
      jax.block_until_ready(m)

    step()
    rows.append(dict(devices=d, step_ms=_median_times([step], repeats)[0] * 1e3))
  for r in rows:
    r["vs_one_device"] = r["step_ms"] / rows[0]["step_ms"]
  return rows


def pipeline(batch, repeats):
  """Host batch building vs the step, and steps with and without prefetch."""
  import jax
  import numpy as np
  from jaxclean import parallel
  from jaxclean.data import pipeline as pipe
  mesh = parallel.make_mesh(1)
  n = 60000
  _, state, recs, b, key, steps, _ = _setup(batch, n, mesh)
  images = np.random.default_rng(0).integers(0, 255, (n, 28, 28, 1)).astype(np.uint8)
  labels = np.random.default_rng(1).integers(0, 10, n).astype(np.int32)

  def build(s):
    index, mask = pipe.batch_indices(n, batch, 0, s)
    return parallel.to_global(pipe.gather(images, labels, index, mask), mesh, batch)

  t_build = _median_times([lambda: jax.block_until_ready(build(0))], repeats)[0]
  box = dict(state=state, recs=recs)

  def run(source):
    start = time.perf_counter()
    for *_, bb in source:
      box["state"], box["recs"], m = steps[True](box["state"], box["recs"], bb, key)
    jax.block_until_ready(m)
    return (time.perf_counter() - start) / repeats

  run(pipe.batches(images, labels, batch, 0, mesh, range(2)))  # compile
  inline = run((s, build(s)) for s in range(repeats))
  threaded = run(pipe.batches(images, labels, batch, 0, mesh, range(repeats)))
  return [dict(build_batch_ms=t_build * 1e3, step_inline_ms=inline * 1e3,
               step_prefetched_ms=threaded * 1e3, build_over_step=t_build / threaded)]


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--max_n", type=float, default=1e8)
  p.add_argument("--batch", type=int, default=256)
  p.add_argument("--repeats", type=int, default=30)
  p.add_argument("--memory_child", type=int, default=0, help=argparse.SUPPRESS)
  a = p.parse_args()
  if a.memory_child:
    return memory_child(a.memory_child)
  import jax
  jax.config.update("jax_num_cpu_devices", 8)
  import pandas as pd
  ns = [int(10**k) for k in range(5, 9) if 10**k <= a.max_n]
  print(f"jax {jax.__version__}, {os.cpu_count()} CPUs, batch {a.batch}, "
        f"median of {a.repeats} interleaved steps\n")
  sections = [("1. record update vs the rest of the step", update_cost(ns, a.batch, a.repeats)),
              ("2. memory of the records", memory(ns)),
              ("3. fake CPU devices (same global batch)", devices(a.batch, a.repeats)),
              ("4. input pipeline", pipeline(a.batch, a.repeats))]
  for title, rows in sections:
    print(title)
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print()
  flat = sections[0][1]
  print(f"record update at N={flat[-1]['n']:.0e} vs N={flat[0]['n']:.0e}: "
        f"{flat[-1]['update_alone_ms'] / flat[0]['update_alone_ms']:.2f}x")


if __name__ == "__main__":
  main()
