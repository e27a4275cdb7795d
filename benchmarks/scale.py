"""Records at scale: update cost vs N, memory vs N, devices, input pipeline.

  python benchmarks/scale.py                      # everything, N up to 1e8 (~3.2 GB of records)
  python benchmarks/scale.py --max_n 1e6          # quicker
  python benchmarks/scale.py --sections pipeline  # sections 4-6 only (~2 GB of files in /tmp)
  python benchmarks/scale.py --sections sharded --shard_n 1e6   # replicated vs sharded records
  python benchmarks/scale.py --sections update --min_n 1e8 --max_n 1e9 --shard_records  # one GPU
  python benchmarks/scale.py --smoke              # every section at a tiny size (the suite's)

Prints, as ratios measured side by side in one run:
1. the record update versus the rest of a train step (small CNN, batch 256)
   at N = 1e5 ... 1e8 (up to 1e9 with --max_n; an N whose records do not fit
   in device memory is reported and skipped): the update is a gather/scatter
   of B rows, flat in N; `--shard_records` runs it as `config.shard_records`
   does (on one device the shard_map has a single shard);
2. peak host memory (and device memory where the backend reports it) for
   records of N examples, each N in a fresh process;
3. step time on 1, 2, 4, 8 fake CPU devices against one device (the same
   global batch; on CPU the fake devices share the cores, so this checks the
   sharded step's overhead, not a speed-up);
4. the input pipeline against the step: time to build a global batch on the
   host, and the step time with batches built inline or read ahead by grain;
5. the input pipeline against N: the host time to compute global batch s's
   indices (`pipeline.batch_indices`) and gather its rows from a memory-mapped
   `.npy` of 16-byte examples (N = 1e8: a 1.6 GB file in /tmp, made once and
   kept; read through once first, so the page cache holds it at every N),
   and the time per batch through grain (`pipeline.batches`). The last line
   gives the medians at the smallest and the largest N;
6. reading ahead from an ArrayRecord file (50k CIFAR-sized images, made once
   in /tmp): inline, grain's threads, or grain's worker processes.
7. records replicated against records sharded over 8 fake CPU devices
   (`config.shard_records`): bytes per device, the record update alone in
   three layouts (replicated; sharded with XLA partitioning `records.update`;
   sharded with `records.update_sharded`, the shard_map that `shard_records`
   runs), the collectives in each compiled update (none may move O(N) rows),
   and the whole train step with each of the two layouts jaxclean uses.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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


def _setup(batch, n, mesh, shard=False):
  """A small-CNN train state, records for n examples and a random batch on `mesh`."""
  import jax
  import numpy as np
  from configs import default
  from jaxclean import parallel, train
  from jaxclean.models import get_model
  c = default.get_config()
  c.model.name = "cnn"
  c.shard_records = shard
  x = np.random.default_rng(0).integers(0, 255, (batch, 28, 28, 1)).astype(np.uint8)
  state = train.create_train_state(c, get_model("cnn", 10), x.shape[1:], 100)
  local = dict(image=x, label=np.arange(batch, dtype=np.int32) % 10,
               index=np.random.default_rng(1).choice(n, batch, replace=False).astype(np.int32),
               mask=np.ones(batch, bool))
  state, key = parallel.replicate((state, jax.random.key(0)), mesh)
  recs = train.init_records(n, 1, mesh, shard)
  batch_arrays = parallel.to_global(local, mesh, batch)
  mean, std = np.float32(128), np.float32(64)
  steps = {r: train.make_train_step(c, mean, std, 100, record=r) for r in (True, False)}
  return c, state, recs, batch_arrays, key, steps, local


def _update_fn(update):
  """`update` (records.update or update_sharded) jitted and donated as in the train step:
  vmapped over the member axis."""
  import jax
  return jax.jit(jax.vmap(update, in_axes=(0, None, 0, None, None)), donate_argnums=0)


def _logits(batch, mesh):
  """(1 member, batch, 10) logits, sharded over the batch like the step's."""
  import jax
  from jax.sharding import NamedSharding, PartitionSpec as P
  x = jax.random.normal(jax.random.key(0), (1, batch, 10))
  return jax.device_put(x, NamedSharding(mesh, P(None, "data")))


def update_cost(ns, batch, repeats, shard=False):
  """Record update vs the rest of the step, per N, on one device."""
  import jax
  from jaxclean import parallel
  mesh = parallel.make_mesh(1)
  rows = []
  for n in ns:
    try:
      with jax.set_mesh(mesh):
        rows.append(_update_cost(n, batch, repeats, shard, mesh))
    except jax.errors.JaxRuntimeError as e:
      if "RESOURCE_EXHAUSTED" not in str(e):
        raise
      rows.append(dict(n=n, skipped=f"out of device memory ({str(e).splitlines()[0][:80]})"))
  return rows


def _update_cost(n, batch, repeats, shard, mesh):
  """One row of `update_cost`: the step with and without records, and the update alone."""
  import jax
  from jaxclean import records
  _, state, recs, b, key, steps, _ = _setup(batch, n, mesh, shard)
  upd = _update_fn(records.update_sharded if shard else records.update)
  box = dict(state=state, recs=recs)

  def with_rec():
    box["state"], box["recs"], m = steps[True](box["state"], box["recs"], b, key, True)
    jax.block_until_ready(m)

  def without():
    box["state"], box["recs"], m = steps[False](box["state"], box["recs"], b, key, True)
    jax.block_until_ready(m)

  logits = _logits(batch, mesh)

  def update_only():
    box["recs"] = upd(box["recs"], b["index"], logits, b["label"], b["mask"])
    jax.block_until_ready(box["recs"].seen)

  for f in (with_rec, without, update_only):
    f()
  t_rec, t_plain, t_upd = _median_times([with_rec, without, update_only], repeats)
  peak = (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")
  return dict(n=n, records_gb=records.BYTES_PER_EXAMPLE * n / 1e9, step_ms=t_plain * 1e3,
              step_with_records_ms=t_rec * 1e3, update_alone_ms=t_upd * 1e3,
              update_over_step=t_upd / t_plain, overhead=t_rec / t_plain - 1,
              device_peak_gb=peak / 1e9 if peak else None)


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


def devices(batch, repeats, counts=(1, 2, 4, 8)):
  """Step time (with records) on 1, 2, 4, 8 fake devices, same global batch."""
  import jax
  from jaxclean import parallel
  rows = []
  for d in counts:
    mesh = parallel.make_mesh(d)
    _, state, recs, b, key, steps, _ = _setup(batch, 60000, mesh)
    box = dict(state=state, recs=recs)

    def step():
      with jax.set_mesh(mesh):
        box["state"], box["recs"], m = steps[True](box["state"], box["recs"], b, key, True)
      jax.block_until_ready(m)

    step()
    rows.append(dict(devices=d, step_ms=_median_times([step], repeats)[0] * 1e3))
  for r in rows:
    r["vs_one_device"] = r["step_ms"] / rows[0]["step_ms"]
  return rows


def pipeline(batch, repeats, n=60000):
  """Host batch building vs the step, and steps with batches built inline or read ahead."""
  import jax
  import numpy as np
  from jaxclean import parallel
  from jaxclean.data import pipeline as pipe
  mesh = parallel.make_mesh(1)
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
      box["state"], box["recs"], m = steps[True](box["state"], box["recs"], bb, key, True)
    jax.block_until_ready(m)
    return (time.perf_counter() - start) / repeats

  run(pipe.batches(images, labels, batch, 0, mesh, range(2)))  # compile
  inline = run((s, build(s)) for s in range(repeats))
  read_ahead = run(pipe.batches(images, labels, batch, 0, mesh, range(repeats)))
  return [dict(build_batch_ms=t_build * 1e3, step_inline_ms=inline * 1e3,
               step_read_ahead_ms=read_ahead * 1e3, build_over_step=t_build / read_ahead,
               pipeline_examples_per_s=batch / t_build, step_examples_per_s=batch / read_ahead)]


def _memmap_source(n):
  """(images (n, 4, 4, 1) uint8, labels (n,) uint8), memory-mapped from /tmp, made once.

  Row i holds i as four little-endian uint32 copies, so a gathered batch can be
  checked; files are written under a temporary name and renamed when full.
  """
  import numpy as np
  paths = [f"/tmp/jaxclean_scale_{n}_{kind}.npy" for kind in ("images", "labels")]
  if not all(os.path.exists(p) for p in paths):
    for path, shape in zip(paths, [(n, 4, 4, 1), (n,)]):
      tmp = path + ".tmp"
      out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
      for start in range(0, n, 10**7):
        rows = np.arange(start, min(start + 10**7, n), dtype=np.uint32)
        out[start:start + len(rows)] = (rows[:, None].repeat(4, 1).view(np.uint8)
                                        .reshape(-1, 4, 4, 1) if len(shape) > 1 else rows % 10)
      out.flush()
      del out
      os.replace(tmp, path)
  images, labels = (np.load(p, mmap_mode="r") for p in paths)
  for start in range(0, n, 10**7):  # read through once: the page cache holds it at every N
    images[start:start + 10**7].max()
  return images, labels


def pipeline_scale(ns, batch, repeats):
  """Host time to build global batch s (indices + gathered rows) and grain's time per batch,
  from a memory-mapped source of n 16-byte examples, per n."""
  import numpy as np
  from jaxclean import parallel
  from jaxclean.data import pipeline as pipe
  mesh = parallel.make_mesh(1)
  sources = {n: _memmap_source(n) for n in ns}
  counters = {n: 0 for n in ns}

  def indices_only(n):
    counters[n] += 1
    return pipe.batch_indices(n, batch, 0, counters[n] * 7919)

  def build(n):
    index, mask = indices_only(n)
    rows = pipe.gather(*sources[n], index, mask)
    assert np.array_equal(rows["image"][:, 0, :, 0].copy().view(np.uint32)[:, 0], index)
    return rows

  for n in ns:
    build(n)
  rounds = 10 * repeats  # a batch takes about a millisecond: many rounds are cheap
  t_indices = _median_times([lambda n=n: indices_only(n) for n in ns], rounds)
  t_build = _median_times([lambda n=n: build(n) for n in ns], rounds)
  rows = []
  for n, ti, tb in zip(ns, t_indices, t_build):
    start = time.perf_counter()
    for _ in pipe.batches(*sources[n], batch, 0, mesh, range(5 * 10**6, 5 * 10**6 + rounds)):
      pass
    rows.append(dict(n=n, file_mb=sources[n][0].nbytes / 1e6, indices_ms=ti * 1e3,
                     build_batch_ms=tb * 1e3, grain_per_batch_ms=(time.perf_counter() - start)
                     / rounds * 1e3, build_vs_smallest=tb / t_build[0]))
  return rows


def read_ahead(batch, rounds, n=50000):
  """Time per batch (after the first) of `n` CIFAR-sized images read from an ArrayRecord file:
  built inline, read ahead by grain's threads (`pipeline.READ_OPTIONS`, what runs use), or by
  two grain worker processes (`mp_prefetch`)."""
  import grain
  import ml_collections
  import numpy as np
  from absl import flags
  from jaxclean import data as data_lib
  from jaxclean.data import convert
  from jaxclean.data import pipeline as pipe
  flags.FLAGS.mark_as_parsed()  # grain's worker processes read grain's absl flags
  out = "/tmp/jaxclean_scale_cifar_arrayrecord" + ("" if n == 50000 else f"_{n}")
  if not os.path.exists(os.path.join(out, "meta.json")):  # n random 32x32x3 images, once
    rng = np.random.default_rng(0)
    npz = out + ".npz"
    np.savez(npz, x_train=rng.integers(0, 256, (n, 32, 32, 3), np.uint8),
             y_train=rng.integers(0, 10, n), x_test=np.zeros((1, 32, 32, 3), np.uint8),
             y_test=np.zeros(1, int))
    convert.convert(f"npz:{npz}", out)
    os.remove(npz)
  ds = data_lib.load(ml_collections.ConfigDict(dict(name=f"arrayrecord:{out}")))
  images, labels = ds.train.images, ds.train.labels

  def local(step):
    index, mask = pipe.batch_indices(len(labels), batch, 0, step)
    return pipe.gather(images, labels, index, mask)

  steps = grain.MapDataset.range(rounds + 1).map(local)
  variants = dict(
      inline=(local(s) for s in range(rounds + 1)),
      threads=steps.to_iter_dataset(pipe.READ_OPTIONS),
      processes=steps.to_iter_dataset().mp_prefetch(grain.MultiprocessingOptions(num_workers=2)))
  row = {}
  for name, it in variants.items():
    it = iter(it)
    next(it)  # start-up (worker processes) left out
    start = time.perf_counter()
    for _ in it:
      pass
    row[f"{name}_ms"] = (time.perf_counter() - start) / rounds * 1e3
  return [row]


def _collectives(compiled, rows):
  """(count, largest element count, whether one has an axis of `rows` or more: a device's
  share of the records) of the cross-device operations in a compiled program."""
  import numpy as np
  found = re.findall(r"= \S+?\[([\d,]*)\]\S* (all-gather|all-reduce|all-to-all|"
                     r"collective-permute|reduce-scatter)(?:-start)?\(", compiled.as_text())
  shapes = [[int(d) for d in dims.split(",") if d] for dims, _ in found]
  biggest = max((int(np.prod(s)) for s in shapes), default=0)
  return len(found), biggest, any(d >= rows for s in shapes for d in s)


def sharded(n, batch, repeats):
  """Replicated vs sharded records on 8 fake devices: bytes, update alone, whole step."""
  import jax
  from jaxclean import parallel, records, train
  mesh = parallel.make_mesh(8)
  layouts = [("replicated", False, records.update),
             ("sharded, XLA partitions update", True, records.update),
             ("sharded, update_sharded (shard_map)", True, records.update_sharded)]
  rows, fns = [], {}
  with jax.set_mesh(mesh):
    logits = _logits(batch, mesh)
    for name, shard, update in layouts:
      _, state, recs, b, key, steps, _ = _setup(batch, n, mesh, shard)
      upd = _update_fn(update)
      args = (b["index"], logits, b["label"], b["mask"])
      count, biggest, o_n = _collectives(upd.lower(recs, *args).compile(), n // mesh.size)
      rows.append(dict(layout=name, n=n, devices=mesh.size,
                       bytes_per_device=sum(a.addressable_shards[0].data.nbytes
                                            for a in jax.tree.leaves(recs)),
                       collectives=count, largest_collective_elements=biggest,
                       moves_O_N_rows=o_n))
      box = dict(recs=upd(recs, *args))

      def update_only(box=box, upd=upd, args=args):
        box["recs"] = upd(box["recs"], *args)
        jax.block_until_ready(box["recs"])

      fns[name, "update_alone_ms"] = update_only
      if update is records.update_sharded or not shard:  # the two layouts `fit` runs
        box.update(state=state, step_recs=train.init_records(n, 1, mesh, shard))
        rows[-1]["step_moves_O_N_rows"] = _collectives(
            steps[True].lower(state, box["step_recs"], b, key, True).compile(),
            n // mesh.size)[2]

        def step(box=box, step_fn=steps[True], b=b, key=key):
          box["state"], box["step_recs"], m = step_fn(box["state"], box["step_recs"], b, key, True)
          jax.block_until_ready(m)

        fns[name, "step_with_records_ms"] = step
    for fn in fns.values():
      fn()  # compile
    times = _median_times(list(fns.values()), repeats)
  for (name, column), t in zip(fns, times):
    next(r for r in rows if r["layout"] == name)[column] = t * 1e3
  for r in rows:
    r["bytes_vs_replicated"] = r["bytes_per_device"] / rows[0]["bytes_per_device"]
    r["update_vs_replicated"] = r["update_alone_ms"] / rows[0]["update_alone_ms"]
  return rows


SECTIONS = ("update", "memory", "devices", "pipeline", "sharded")


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--min_n", type=float, default=1e5)
  p.add_argument("--max_n", type=float, default=1e8)
  p.add_argument("--shard_records", action="store_true",
                 help="section 1 with sharded records (records.update_sharded)")
  p.add_argument("--batch", type=int, default=256)
  p.add_argument("--repeats", type=int, default=30)
  p.add_argument("--shard_n", type=float, default=1e6, help="N of section 7")
  p.add_argument("--sections", default=",".join(SECTIONS),
                 help=f"comma-separated, of {', '.join(SECTIONS)} (pipeline: sections 4-6)")
  p.add_argument("--smoke", action="store_true",
                 help="every chosen section at a tiny size, to check that the script runs")
  p.add_argument("--memory_child", type=int, default=0, help=argparse.SUPPRESS)
  a = p.parse_args()
  if a.smoke:
    a.min_n, a.max_n, a.shard_n, a.batch, a.repeats = 1e3, 1e4, 1e3, 16, 2
  small = dict(n=2000) if a.smoke else {}
  if a.memory_child:
    return memory_child(a.memory_child)
  chosen = [x for x in a.sections.split(",") if x]
  if set(chosen) - set(SECTIONS):
    p.error(f"--sections: unknown {sorted(set(chosen) - set(SECTIONS))}; valid: {SECTIONS}")
  import jax
  jax.config.update("jax_num_cpu_devices", 8)
  import pandas as pd
  ns = [int(10**k) for k in range(3, 10) if a.min_n <= 10**k <= a.max_n]
  print(f"$ python benchmarks/scale.py {' '.join(sys.argv[1:])}\n"
        f"# {time.strftime('%Y-%m-%d %H:%M %Z')}, load average %.2f %.2f %.2f" % os.getloadavg())
  print(f"jax {jax.__version__}, {os.cpu_count()} CPUs, devices: {jax.device_count()} x "
        f"{jax.devices()[0].device_kind}, batch {a.batch}, median of {a.repeats} interleaved "
        f"steps\n", flush=True)

  def pipeline_sections():
    rows = pipeline_scale([ns[0], ns[-1]], a.batch, a.repeats)
    results["pipeline_scale"] = rows
    return [("4. input pipeline vs the small-CNN step", pipeline(a.batch, a.repeats, **small)),
            (f"5. input pipeline vs N (memory-mapped 16-byte examples, median of "
             f"{10 * a.repeats})", rows),
            (f"6. reading ahead, {small.get('n', 50000):,} 32x32x3 images in ArrayRecord (ms "
             f"per batch, mean of {10 * a.repeats})", read_ahead(a.batch, 10 * a.repeats, **small))]

  runs = dict(
      update=lambda: [("1. record update vs the rest of the step",
                       update_cost(ns, a.batch, a.repeats, a.shard_records))],
      memory=lambda: [("2. memory of the records", memory(ns))],
      devices=lambda: [("3. fake CPU devices (same global batch)",
                        devices(a.batch, a.repeats, (1, 2) if a.smoke else (1, 2, 4, 8)))],
      pipeline=pipeline_sections,
      sharded=lambda: [(f"7. records replicated vs sharded, 8 fake CPU devices, "
                        f"N={a.shard_n:.0e}", sharded(int(a.shard_n), a.batch, a.repeats))])
  results = {}
  for key in chosen:
    for title, rows in runs[key]():
      results.setdefault(key, rows)
      print(title)
      print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
      print(flush=True)
  if "update" in results:
    flat = [r for r in results["update"] if "skipped" not in r]
    print(f"record update at N={flat[-1]['n']:.0e} vs N={flat[0]['n']:.0e}: "
          f"{flat[-1]['update_alone_ms'] / flat[0]['update_alone_ms']:.2f}x")
  if "sharded" in results:
    rep_, _, shm = results["sharded"]
    print(f"records per device at N={shm['n']:.0e} on {shm['devices']} devices: replicated "
          f"{rep_['bytes_per_device'] / 1e6:.1f} MB, sharded {shm['bytes_per_device'] / 1e6:.1f} "
          f"MB ({shm['bytes_vs_replicated']:.3f}x); update {rep_['update_alone_ms']:.2f} ms vs "
          f"{shm['update_alone_ms']:.2f} ms ({shm['update_vs_replicated']:.2f}x); step "
          f"{rep_['step_with_records_ms']:.1f} ms vs {shm['step_with_records_ms']:.1f} ms "
          f"({shm['step_with_records_ms'] / rep_['step_with_records_ms']:.2f}x)")
  if "pipeline_scale" in results:  # last: the line the issue reads
    rows = results["pipeline_scale"]
    print(f"input pipeline: {rows[0]['build_batch_ms']:.3f} ms per batch at "
          f"N=1e{len(str(rows[0]['n'])) - 1}, {rows[-1]['build_batch_ms']:.3f} ms at "
          f"N=1e{len(str(rows[-1]['n'])) - 1}")


if __name__ == "__main__":
  main()
