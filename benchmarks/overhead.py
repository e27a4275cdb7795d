"""Recording overhead, epoch throughput and a PyTorch comparison for the small CNN.

  python benchmarks/overhead.py            # all three sections; a few minutes on 2 idle cores
  python benchmarks/overhead.py --sweep    # the PyTorch-gap exploration, one process per variant
  python benchmarks/overhead.py --sections overhead --steps 3 --batch 16   # smoke run

Measured side by side in one process (interleaved, medians, paired ratios, so
that load from other processes cancels out as far as it can):
1. recording overhead: the jitted train step with recording
   (`make_train_step(..., record=True)`) against the same step without, on the
   small CNN at batch 256 with N = 60000 records, in the order A B, B A, ...;
   the overhead is the median of the paired ratios minus one. Also checks that
   the records are donated (updated in place), lists any copy of a record array
   in the compiled step, and times the record update alone.
2. epoch throughput (examples/s) of `jaxclean.train.fit`, the real pipeline
   with prefetch, with and without `record_dynamics`.
3. the JAX step (no recording) against the same CNN and optimizer in PyTorch,
   NCHW and channels_last, interleaved (only if `import torch` works).
4. (`--sections models`, not in the default set) every model's train step, with
   recording, compiled with jaxlib's XLA:CPU default and with jaxclean's
   (`jaxclean.xla_defaults`, passed as a compile option), in one process,
   interleaved; run it with JAXCLEAN_XLA_DEFAULTS=0 so that the process
   itself has jaxlib's default.

Fashion-MNIST comes from /usr/share/datasets/fashion-mnist when present, else
random uint8 images of its shape. `--xla_flags`, `--cpus` and the thread count
need a fresh process: the script sets them before it imports JAX, and
`--sweep` runs each variant of section 3 in a subprocess and prints a table.
Like `python -m jaxclean.main`, the script adds jaxclean's XLA:CPU flag where
`jaxclean.xla_defaults` wants it (x86 with AVX2, or JAXCLEAN_XLA_DEFAULTS=1;
never when XLA_FLAGS, with `--xla_flags`, mentions ynn, or with
JAXCLEAN_XLA_DEFAULTS=0), and keeps XLA's temporaries in the heap as it does
(`xla_defaults.reuse_heap`); the header says what it did.

The last lines are `recording overhead: X.X %` when section 1 ran, then
`jax/torch step ratio: R` when section 3 ran.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.host import cpu_model, load_text  # noqa: E402  (after the path)

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
JSON_PREFIX = "JSON "

# (name, extra arguments, extra environment) for --sweep; each runs section 3 in a fresh process.
NO_FLAG, FLAG = {"JAXCLEAN_XLA_DEFAULTS": "0"}, {"JAXCLEAN_XLA_DEFAULTS": "1"}
SWEEP = [
    ("baseline: as python -m jaxclean.main here", [], {}),
    ("jaxlib's and glibc's defaults (JAXCLEAN_XLA_DEFAULTS=0)", [], NO_FLAG),
    ("glibc's malloc, XLA flag on (MALLOC_ARENA_MAX=8)", [], {"MALLOC_ARENA_MAX": "8"}),
    ("YNNPACK dots only (Eigen convs)", [], FLAG),
    ("conv: kernel grad as im2col dot, jaxlib's default", ["--conv", "im2col_grad"], NO_FLAG),
    ("pool: ReLU, then max of strided slices", ["--pool", "relu_slices"], {}),
    ("pool: ReLU, then nn.max_pool", ["--pool", "relu_max_pool"], {}),
    ("conv: im2col + dot", ["--conv", "im2col"], {}),
    ("conv: kernel grad as im2col dot, YNNPACK dots only", ["--conv", "im2col_grad"], FLAG),
    ("bfloat16 compute", ["--dtype", "bfloat16"], {}),
    ("batch 64", ["--batch", "64"], {}),
    ("batch 128", ["--batch", "128"], {}),
    ("batch 512", ["--batch", "512"], {}),
    ("1 core, 1 thread each", ["--cpus", "0"], {}),
    ("xla_cpu_multi_thread_eigen=false", ["--xla_flags=--xla_cpu_multi_thread_eigen=false"], {}),
    ("xla_cpu_use_thunk_runtime=false", ["--xla_flags=--xla_cpu_use_thunk_runtime=false"], {}),
    ("xla_cpu_enable_fast_math=true", ["--xla_flags=--xla_cpu_enable_fast_math=true"], {}),
    ("YNNPACK off (Eigen convs/dots)", ["--xla_flags=--xla_cpu_experimental_ynn_fusion_type="], {}),
    ("xla_cpu_use_onednn=true", ["--xla_flags=--xla_cpu_use_onednn=true"], {}),
    ("OPENBLAS_CORETYPE=Haswell", [], {"OPENBLAS_CORETYPE": "Haswell"}),
    ("OMP_WAIT_POLICY=PASSIVE (torch threads sleep)", [], {"OMP_WAIT_POLICY": "PASSIVE"}),
]


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--sections", default="overhead,fit,torch",
                 help="comma list of overhead, fit, torch, models (default: the first three)")
  p.add_argument("--batch", type=int, default=256)
  p.add_argument("--steps", type=int, default=60, help="timed A/B pairs for the overhead")
  p.add_argument("--warmup", type=int, default=3, help="untimed steps of each variant first")
  p.add_argument("--num_examples", type=int, default=60000, help="N, the number of records")
  p.add_argument("--data", choices=("auto", "fashion_mnist", "random"), default="auto")
  p.add_argument("--fit_epochs", type=int, default=1)
  p.add_argument("--fit_examples", type=int, default=0,
                 help="train fit on the first n examples (0 = all N)")
  p.add_argument("--torch_steps", type=int, default=20, help="timed rounds of section 3")
  p.add_argument("--block", type=int, default=6,
                 help="section 3: steps of one framework back to back per round, the first "
                 "untimed (1: one timed step each, alternating)")
  p.add_argument("--pool", choices=("library", "relu_slices", "relu_max_pool"), default="library",
                 help="JAX ReLU + max pool in section 3 (library = the CNN's max_pool_relu)")
  p.add_argument("--conv", choices=("lax", "im2col", "im2col_grad"), default="lax",
                 help="JAX 3x3 conv in section 3: nn.Conv, patches + one dot, or nn.Conv "
                 "with an im2col kernel gradient (see make_model)")
  p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                 help="compute dtype in section 3 (PyTorch uses CPU autocast for bfloat16)")
  p.add_argument("--threads", type=int, default=0,
                 help="torch intra-op threads (0 = the cores this process may use)")
  p.add_argument("--cpus", default="",
                 help="comma list of CPU ids to pin the process to (e.g. 0 for one core)")
  p.add_argument("--xla_flags", default="", help="appended to XLA_FLAGS before JAX starts")
  p.add_argument("--sweep", action="store_true",
                 help="run section 3 for each variant in a subprocess and print a table")
  p.add_argument("--sweep_steps", type=int, default=10, help="timed rounds per sweep variant")
  p.add_argument("--sweep_only", default="",
                 help="comma list of substrings: run only the sweep variants whose name has one")
  p.add_argument("--sweep_cpus", default="",
                 help="pin every sweep variant to these CPUs (e.g. 0: one core, one thread each)")
  p.add_argument("--models", default="cnn,resnet32,preact_resnet18",
                 help="comma list of models for section 4")
  p.add_argument("--model_batch", type=int, default=64, help="batch size of section 4")
  p.add_argument("--model_steps", type=int, default=5, help="timed rounds of section 4")
  p.add_argument("--json", action="store_true", help="also print results as one JSON line")
  args = p.parse_args(argv)
  args.sections = [s for s in args.sections.split(",") if s]
  unknown = set(args.sections) - {"overhead", "fit", "torch", "models"}
  if unknown:
    p.error(f"unknown sections {sorted(unknown)}")
  return args


def setup_process(args):
  """CPU pinning and XLA flags, jaxclean's defaults as `jaxclean.main` sets them (the flag and
  the heap): all must happen before JAX (or torch) starts. Returns whether the flag was added
  (None for --sweep, whose variants each decide in their own process); `args.heap` says
  whether the heap setting was made."""
  from jaxclean import xla_defaults
  if "jax" in sys.modules:
    raise RuntimeError("overhead.py sets XLA flags: it needs a process in which JAX has "
                       "not started")
  if args.cpus:
    os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
  if args.xla_flags:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + args.xla_flags).strip()
  args.heap = not args.sweep and xla_defaults.reuse_heap()  # PyTorch's steps gain from it too
  return None if args.sweep else xla_defaults.apply()


def cores() -> int:
  return len(os.sched_getaffinity(0))


def have_torch() -> bool:
  try:
    import torch  # noqa: F401
  except ImportError:
    return False
  return True


def header(args, default_added):
  import jax
  from jaxclean import xla_defaults
  import jaxlib
  import flax
  lines = [f"command: {shlex.join(['python', 'benchmarks/overhead.py'] + sys.argv[1:])}",
           f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
           f"machine: {platform.machine()} {cpu_model()}, nproc {os.cpu_count()}, "
           f"this process may use {cores()} cores; {load_text()}",
           f"python {platform.python_version()}, jax {jax.__version__}, jaxlib "
           f"{jaxlib.__version__}, flax {flax.__version__}, backend {jax.default_backend()}"]
  if "torch" not in args.sections and not args.sweep:
    pass  # importing torch costs seconds: only where section 3 runs
  elif have_torch():
    import torch
    lines.append(f"torch {torch.__version__} (threads {torch_threads(args)})")
  else:
    lines.append("torch: not installed (section 3 skipped)")
  env = {k: v for k, v in os.environ.items()
         if k.startswith(("OPENBLAS", "OMP_", "MKL_", "XLA_FLAGS", "KMP_"))}
  lines.append(f"environment: {env or 'no OPENBLAS_/OMP_/MKL_/KMP_ variables, no XLA_FLAGS'}")
  lines.append("jaxclean's XLA default: " + {
      True: f"{xla_defaults.FLAG} added (as python -m jaxclean.main does here; "
      "JAXCLEAN_XLA_DEFAULTS=0 leaves it out)",
      False: "no flag added (as python -m jaxclean.main here; JAXCLEAN_XLA_DEFAULTS=1 adds it)",
      None: "each variant's own, as python -m jaxclean.main"}[default_added])
  lines.append("jaxclean's heap setting: " + (
      "each variant's own" if default_added is None else
      "one malloc arena, no mmap, no trim (as python -m jaxclean.main; PyTorch's steps, in this "
      "process, gain from it too)" if args.heap else "glibc's defaults"))
  return "\n".join(lines)


def torch_threads(args) -> int:
  return args.threads or cores()


# ----------------------------------------------------------------------------- data and models


def load_data(args):
  """(images uint8 (N, 28, 28, 1), labels int32, mean, std, description)."""
  import numpy as np
  n = args.num_examples
  use_real = args.data == "fashion_mnist" or (
      args.data == "auto" and os.path.exists(os.path.join(FASHION_MNIST_DIR,
                                                          "train-images-idx3-ubyte.gz")))
  if use_real:
    import ml_collections
    from jaxclean import data as data_lib
    ds = data_lib.load(ml_collections.ConfigDict(dict(name="fashion_mnist",
                                                      data_dir=FASHION_MNIST_DIR)))
    images, labels = ds.train.images, ds.train.labels.astype(np.int32)
    if n > len(labels):
      raise ValueError(f"--num_examples {n} > {len(labels)} Fashion-MNIST training images")
    images, labels = images[:n], labels[:n]
    what = f"Fashion-MNIST ({FASHION_MNIST_DIR}), first {n} training images"
  else:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.int32)
    what = f"random uint8 images (N={n}, 28x28x1)"
  total = squares = 0.0
  for start in range(0, n, 10000):  # float64 in chunks, as Dataset.mean_std
    x = images[start:start + 10000].astype(np.float64)
    total, squares = total + x.sum(), squares + np.square(x).sum()
  m = total / images.size
  mean = np.full(1, m, np.float32)
  std = np.full(1, max(np.sqrt(max(squares / images.size - m * m, 0.0)), 1e-6), np.float32)
  return images, labels, mean, std, what


def base_config(batch):
  from configs import default
  c = default.get_config()
  c.model.name = "cnn"
  c.batch_size = batch
  c.num_devices = 1
  c.progress = False
  return c


def max_pool_slices(x):
  """2x2 max pool, stride 2: the maximum of four strided slices (the library's CNN before
  `max_pool_relu`)."""
  import jax.numpy as jnp
  x = x[:, :x.shape[1] // 2 * 2, :x.shape[2] // 2 * 2]
  return jnp.maximum(jnp.maximum(x[:, 0::2, 0::2], x[:, 0::2, 1::2]),
                     jnp.maximum(x[:, 1::2, 0::2], x[:, 1::2, 1::2]))


def conv_im2col_grad(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                     dimension_numbers=None, feature_group_count=1, precision=None):
  """`lax.conv_general_dilated` (NHWC, HWIO, stride 1) whose kernel gradient is one dot.

  Forward and input gradient are XLA's convolutions; the kernel gradient, which XLA:CPU
  otherwise runs as a convolution with an HxW window over the batch (slow), is
  patches^T @ dy, patches being the kh*kw shifted copies of the padded input.
  For flax: `nn.Conv(..., conv_general_dilated=conv_im2col_grad)`.
  """
  import functools
  import jax
  import jax.numpy as jnp
  from jax import lax
  if tuple(window_strides) != (1, 1) or feature_group_count != 1 or any(
      d not in (None, (1, 1)) and tuple(d) != (1, 1) for d in (lhs_dilation, rhs_dilation)):
    raise ValueError("conv_im2col_grad supports stride 1, no dilation, no groups")
  conv = functools.partial(lax.conv_general_dilated, window_strides=window_strides,
                           padding=padding, dimension_numbers=dimension_numbers,
                           precision=precision)

  @jax.custom_vjp
  def f(x, k):
    return conv(x, k)

  def fwd(x, k):
    return conv(x, k), (x, k)

  def bwd(res, g):
    x, k = res
    dx = jax.vjp(lambda x_: conv(x_, k), x)[1](g)[0]
    kh, kw, c, features = k.shape
    n, h, w, _ = g.shape
    pads = (lax.padtype_to_pads(x.shape[1:3], (kh, kw), (1, 1), padding)
            if isinstance(padding, str) else padding)
    xp = jnp.pad(x, ((0, 0), tuple(pads[0]), tuple(pads[1]), (0, 0)))
    patches = jnp.concatenate([xp[:, i:i + h, j:j + w] for i in range(kh) for j in range(kw)], -1)
    dk = lax.dot_general(patches.reshape(-1, kh * kw * c), g.reshape(-1, features),
                         (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
    return dx, dk.reshape(k.shape).astype(k.dtype)

  f.defvjp(fwd, bwd)
  return f(lhs, rhs)


def make_model(pool="library", conv="lax", dtype="float32"):
  """The library's CNN, or a copy of it with another ReLU + max pool or conv.

  pool: library (`max_pool_relu`), relu_slices (ReLU, then the maximum of four strided slices),
  relu_max_pool (ReLU, then nn.max_pool). conv: lax (nn.Conv), im2col (nine shifted copies
  concatenated on channels and one dot, forward and backward), im2col_grad (nn.Conv whose kernel
  gradient alone is an im2col dot, see `conv_im2col_grad`).
  """
  import flax.linen as nn
  import jax.numpy as jnp
  from jaxclean.models import get_model
  from jaxclean.models.cnn import max_pool_relu
  compute = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
  if pool == "library" and conv == "lax":
    return get_model("cnn", 10, dtype=compute)
  pool_fn = dict(library=max_pool_relu,
                 relu_slices=lambda x, b: max_pool_slices(nn.relu(x + b)),
                 relu_max_pool=lambda x, b: nn.max_pool(nn.relu(x + b), (2, 2), (2, 2)))[pool]

  class Im2colConv(nn.Module):
    """3x3 'SAME' conv as nine shifted copies concatenated on channels and one dot."""
    features: int

    @nn.compact
    def __call__(self, x):
      n, h, w, c = x.shape
      kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, c, self.features))
      xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
      patches = jnp.concatenate([xp[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], -1)
      y = patches.reshape(n * h * w, 9 * c) @ kernel.reshape(9 * c, -1).astype(compute)
      return y.reshape(n, h, w, -1)

  def conv_layer(features):
    if conv == "im2col":
      return Im2colConv(features)
    extra = dict(conv_general_dilated=conv_im2col_grad) if conv == "im2col_grad" else {}
    return nn.Conv(features, (3, 3), padding="SAME", use_bias=False, dtype=compute, **extra)

  class VariantCNN(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
      del train
      x = x.astype(compute)
      for i, features in enumerate((32, 64)):
        bias = self.param(f"bias_{i}", nn.initializers.zeros, (features,)).astype(compute)
        x = pool_fn(conv_layer(features)(x), bias)
      x = nn.relu(nn.Dense(128, dtype=compute)(x.reshape(x.shape[0], -1)))
      return nn.Dense(10, dtype=compute)(x).astype(jnp.float32)

  return VariantCNN()


class JaxStep:
  """One compiled train step with its own state and records, on a one-device mesh like `fit`;
  `compiler_options` are XLA options for this compilation only."""

  def __init__(self, config, model, mean, std, spe, record, n, mesh, batch0,
               compiler_options=None):
    import jax
    from jaxclean import parallel, train
    state = train.create_train_state(config, model, batch0["image"].shape[1:], spe)
    self.state, self.key = parallel.replicate((state, jax.random.key(1)), mesh)
    self.records = train.init_records(n, config.ensemble, mesh)
    fn = train.make_train_step(config, mean, std, spe, record)
    t = time.perf_counter()
    self.compiled = fn.lower(self.state, self.records, batch0, self.key, True).compile(
        compiler_options)
    self.compile_s = time.perf_counter() - t

  def __call__(self, batch):
    import jax
    self.state, self.records, metrics = self.compiled(self.state, self.records, batch, self.key, True)
    jax.block_until_ready((self.state, self.records, metrics))
    return metrics


def device_batches(images, labels, batch, count, mesh):
  """`count` global batches of the first epoch's order, already on the mesh."""
  from jaxclean import parallel
  from jaxclean.data import pipeline
  out = []
  for s in range(count):
    index, mask = pipeline.batch_indices(len(labels), batch, 0, s)
    out.append(parallel.to_global(pipeline.gather(images, labels, index, mask), mesh, batch))
  return out


def interleaved(fns, rounds, batches, block=1):
  """Seconds per call of each fn, called in a rotating order each round (A B C, B C A, ...).

  With `block` > 1 each fn runs `block` calls back to back per round and the first of them is
  not timed: the previous fn's worker threads, which spin a while before they sleep (PyTorch's
  OpenMP, XLA's Eigen pool), would compete with it for the cores.
  """
  times = [[] for _ in fns]
  order = list(range(len(fns)))
  for r in range(rounds):
    rot = order[r % len(fns):] + order[:r % len(fns)]
    for i in rot:
      for c in range(block):
        t = time.perf_counter()
        fns[i](batches[(r * block + c) % len(batches)])
        if c or block == 1:
          times[i].append(time.perf_counter() - t)
  return times


def summary(times):
  import numpy as np
  t = np.asarray(times)
  return dict(median_ms=float(np.median(t) * 1e3), q25_ms=float(np.percentile(t, 25) * 1e3),
              q75_ms=float(np.percentile(t, 75) * 1e3))


def paired(a, b):
  """Median and quartiles of a[i] / b[i]."""
  import numpy as np
  r = np.asarray(a) / np.asarray(b)
  return float(np.median(r)), float(np.percentile(r, 25)), float(np.percentile(r, 75))


# ----------------------------------------------------------------------------- section 1


def hlo_record_copies(hlo: str, n: int) -> list[str]:
  """Copy instructions on arrays of the records' shape ([n]) in compiled HLO text."""
  import re
  pat = re.compile(rf"%(\S+) = (\w+\[{n}\])\S* copy\(%(\S+?)\)")
  return [f"{m.group(2)} {m.group(1)} <- {m.group(3)}" for m in pat.finditer(hlo)]


def hlo_counts(hlo: str) -> dict:
  import collections
  import re
  ops = collections.Counter(re.findall(r"= [^=]*? (scatter|gather|copy|convolution|dot|fusion)\(",
                                       hlo))
  return dict(sorted(ops.items()))


def section_overhead(args, data, out):
  import jax
  import numpy as np
  from jaxclean import parallel
  from jaxclean import records as records_lib
  from jaxclean.data import pipeline
  images, labels, mean, std, _ = data
  n, b = len(labels), args.batch
  config = base_config(b)
  spe = pipeline.steps_per_epoch(n, b)
  mesh = parallel.make_mesh(1)
  batches = device_batches(images, labels, b, 8, mesh)
  model = make_model()
  print(f"\n== 1. recording overhead: small CNN, batch {b}, N = {n} records "
        f"({records_lib.BYTES_PER_EXAMPLE} B each); {load_text()}")
  with jax.set_mesh(mesh):
    rec = JaxStep(config, model, mean, std, spe, True, n, mesh, batches[0])
    plain = JaxStep(config, model, mean, std, spe, False, n, mesh, batches[0])
    # Donation: the record buffers passed in must be consumed, not copied.
    old = rec.records
    rec(batches[0])
    donated = all(a.is_deleted() for a in jax.tree.leaves(old))
    hlo_rec, hlo_plain = rec.compiled.as_text(), plain.compiled.as_text()
    copies = hlo_record_copies(hlo_rec, n)
    alias = rec.compiled.memory_analysis()
    for _ in range(args.warmup):
      rec(batches[0])
      plain(batches[0])
    t_rec, t_plain = interleaved([rec, plain], args.steps, batches)  # A B, B A, ...

    # The record update alone, on the logits of a batch, donated like in the step.
    update = jax.jit(records_lib.update, donate_argnums=0)
    logits = jax.random.normal(jax.random.key(0), (b, 10))
    recs = parallel.replicate(records_lib.init(n), mesh)
    bt = batches[1]
    args_u = (bt["index"], logits, bt["label"], bt["mask"], True)
    recs = update(recs, *args_u)
    jax.block_until_ready(recs)
    t_upd = []
    for _ in range(max(2 * args.steps, 20)):
      t = time.perf_counter()
      recs = update(recs, *args_u)
      jax.block_until_ready(recs)
      t_upd.append(time.perf_counter() - t)

  ratio, lo, hi = paired(t_rec, t_plain)
  s_rec, s_plain, s_upd = summary(t_rec), summary(t_plain), summary(t_upd)
  print(f"compile: with recording {rec.compile_s:.1f} s, without {plain.compile_s:.1f} s")
  aliasing = ("" if alias is None else f"; the executable aliases {alias.alias_size_in_bytes / 1e6:.2f}"
              f" MB of its {alias.output_size_in_bytes / 1e6:.2f} MB of outputs to inputs")
  print(f"records donated (input buffers consumed, updated in place): "
        f"{'yes' if donated else 'NO'}{aliasing}")
  print(f"copies of record arrays in the compiled step: {copies or 'none'}")
  print(f"HLO ops with recording {hlo_counts(hlo_rec)}; without {hlo_counts(hlo_plain)}")
  print(f"step with recording    {s_rec['median_ms']:8.2f} ms median "
        f"(IQR {s_rec['q25_ms']:.2f}-{s_rec['q75_ms']:.2f}), {len(t_rec)} steps")
  print(f"step without recording {s_plain['median_ms']:8.2f} ms median "
        f"(IQR {s_plain['q25_ms']:.2f}-{s_plain['q75_ms']:.2f}), {len(t_plain)} steps")
  print(f"paired ratio with/without: median {ratio:.4f} (IQR {lo:.4f}-{hi:.4f})")
  print(f"record update alone (jit, donated): {s_upd['median_ms']:.3f} ms median = "
        f"{100 * s_upd['median_ms'] / s_plain['median_ms']:.2f} % of the step without recording")
  print(f"after section 1: {load_text()}")
  out["overhead"] = dict(batch=b, n=n, rec=s_rec, plain=s_plain, paired_ratio=ratio,
                         paired_iqr=[lo, hi], overhead_pct=100 * (ratio - 1), donated=donated,
                         record_copies=copies, update_alone=s_upd,
                         compile_s=dict(rec=rec.compile_s, plain=plain.compile_s))


# ----------------------------------------------------------------------------- section 2


def section_fit(args, data, out):
  import numpy as np
  from jaxclean import train
  images, labels, mean, std, what = data
  if args.fit_examples:
    images, labels = images[:args.fit_examples], labels[:args.fit_examples]
  n, b = len(labels), args.batch
  print(f"\n== 2. epoch throughput of jaxclean.train.fit: {what}, {n} examples, batch {b}, "
        f"{args.fit_epochs} epoch(s), 1 device, prefetch on; {load_text()}")
  # fit compiles the step inside its first epoch; wrapping make_train_step notes when the
  # first call (compile + dispatch) returns, so the compile can be taken out of that epoch.
  real = train.make_train_step
  marks = {}

  def timed_make(*a, **kw):
    step = real(*a, **kw)
    marks["made"] = time.time()

    def call(*ca):
      result = step(*ca)
      marks.setdefault("first", time.time())
      return result
    return call

  results = {}
  for record in (False, True):
    config = base_config(b)
    config.num_epochs = args.fit_epochs
    config.record_dynamics = record
    config.checkpoint.every_steps = 0
    marks.clear()
    train.make_train_step = timed_make
    try:
      with tempfile.TemporaryDirectory() as workdir:
        t = time.perf_counter()
        result = train.fit(config, images, labels, 10, workdir, mean, std)
        wall = time.perf_counter() - t
    finally:
      train.make_train_step = real
    seconds = result.history["seconds"].to_numpy()
    first = float(seconds[0])
    compile_s = marks["first"] - marks["made"] if "first" in marks else float("nan")
    steady = first - compile_s
    row = dict(wall_s=wall, epoch_s=[float(s) for s in seconds], compile_s=compile_s,
               first_epoch_excl_compile_s=steady,
               examples_per_s=n / steady if np.isfinite(steady) else n / first,
               examples_per_s_incl_compile=n / first,
               last_epoch_examples_per_s=n / float(seconds[-1]),
               train_accuracy=float(result.history["train_accuracy"].iloc[-1]))
    results["record" if record else "plain"] = row
    name = "with recording   " if record else "without recording"
    print(f"{name}: fit {wall:6.1f} s; epoch {first:6.1f} s incl. {compile_s:.1f} s compile -> "
          f"{row['examples_per_s']:7.0f} examples/s excl. compile "
          f"({row['examples_per_s_incl_compile']:.0f} incl.)"
          + (f"; last epoch {row['last_epoch_examples_per_s']:.0f} examples/s"
             if len(seconds) > 1 else "")
          + f"; train accuracy {row['train_accuracy']:.3f}")
  ratio = results["plain"]["examples_per_s"] / results["record"]["examples_per_s"]
  print(f"throughput without/with recording: {ratio:.3f} (one epoch each, run one after the "
        f"other: the paired step ratio of section 1 is the precise number); {load_text()}")
  out["fit"] = results


# ----------------------------------------------------------------------------- section 3


def torch_cnn():
  import torch
  import torch.nn.functional as F

  class Net(torch.nn.Module):
    """conv3x3-32 ReLU maxpool2, conv3x3-64 ReLU maxpool2, dense 128 ReLU, dense 10."""

    def __init__(self):
      super().__init__()
      self.c1 = torch.nn.Conv2d(1, 32, 3, padding=1)
      self.c2 = torch.nn.Conv2d(32, 64, 3, padding=1)
      self.f1 = torch.nn.Linear(64 * 7 * 7, 128)
      self.f2 = torch.nn.Linear(128, 10)

    def forward(self, x):
      x = F.max_pool2d(F.relu(self.c1(x)), 2)
      x = F.max_pool2d(F.relu(self.c2(x)), 2)
      return self.f2(F.relu(self.f1(x.flatten(1))))

  return Net()


class TorchStep:
  """The same train step in PyTorch: uint8 -> normalized float, forward, CE, backward, SGD."""

  def __init__(self, config, mean, std, channels_last, dtype, host_batches):
    import torch
    torch.manual_seed(0)
    o = config.optimizer
    self.net = torch_cnn()
    self.channels_last = channels_last
    if channels_last:
      self.net = self.net.to(memory_format=torch.channels_last)
    self.opt = torch.optim.SGD(self.net.parameters(), lr=o.lr, momentum=o.momentum,
                               nesterov=o.nesterov, weight_decay=o.weight_decay)
    self.mean, self.std = float(mean[0]), float(std[0])
    self.autocast = dtype == "bfloat16"
    self.batches = [(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(),
                     torch.from_numpy(y).long()) for x, y in host_batches]
    self.i = 0

  def __call__(self, _):
    import torch
    import torch.nn.functional as F
    x, y = self.batches[self.i % len(self.batches)]
    self.i += 1
    x = (x.float() - self.mean) / self.std
    if self.channels_last:
      x = x.contiguous(memory_format=torch.channels_last)
    self.opt.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
      logits = self.net(x)
    loss = F.cross_entropy(logits.float(), y)
    loss.backward()
    self.opt.step()
    return loss


def section_torch(args, data, out):
  import jax
  from jaxclean import parallel
  from jaxclean.data import pipeline
  if not have_torch():
    print("\n== 3. PyTorch comparison: skipped (torch is not installed; "
          "pip install torch for this section)")
    return
  import torch
  torch.set_num_threads(torch_threads(args))
  images, labels, mean, std, _ = data
  n, b = len(labels), args.batch
  config = base_config(b)
  config.optimizer.schedule = "constant"  # as the PyTorch side; the schedule costs nothing
  spe = pipeline.steps_per_epoch(n, b)
  mesh = parallel.make_mesh(1)
  batches = device_batches(images, labels, b, 4, mesh)
  host = []
  for s in range(4):
    index, mask = pipeline.batch_indices(n, b, 0, s)
    host.append((images[index], labels[index]))
  variant = f"pool={args.pool} conv={args.conv} dtype={args.dtype}"
  print(f"\n== 3. JAX vs PyTorch train step: small CNN, batch {b}, {variant}, "
        f"torch threads {torch.get_num_threads()}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
        f"{cores()} cores; {load_text()}")
  model = make_model(args.pool, args.conv, args.dtype)
  with jax.set_mesh(mesh):
    jstep = JaxStep(config, model, mean, std, spe, False, n, mesh, batches[0])
    nchw = TorchStep(config, mean, std, False, args.dtype, host)
    nhwc = TorchStep(config, mean, std, True, args.dtype, host)
    fns = [jstep, nchw, nhwc]
    for _ in range(args.warmup):
      for f in fns:
        f(batches[0])
    t_jax, t_nchw, t_cl = interleaved(fns, args.torch_steps, batches, args.block)
  res = dict(batch=b, pool=args.pool, conv=args.conv, dtype=args.dtype,
             xla_flags=os.environ.get("XLA_FLAGS", ""), cores=cores(),
             torch_threads=torch.get_num_threads(), jax=summary(t_jax), torch=summary(t_nchw),
             torch_cl=summary(t_cl), ratio=paired(t_jax, t_nchw)[0],
             ratio_cl=paired(t_jax, t_cl)[0], compile_s=jstep.compile_s,
             load=os.getloadavg())
  print(f"JAX (no recording)       {res['jax']['median_ms']:8.1f} ms median "
        f"(IQR {res['jax']['q25_ms']:.1f}-{res['jax']['q75_ms']:.1f})")
  print(f"PyTorch NCHW             {res['torch']['median_ms']:8.1f} ms median "
        f"(IQR {res['torch']['q25_ms']:.1f}-{res['torch']['q75_ms']:.1f})")
  print(f"PyTorch channels_last    {res['torch_cl']['median_ms']:8.1f} ms median "
        f"(IQR {res['torch_cl']['q25_ms']:.1f}-{res['torch_cl']['q75_ms']:.1f})")
  print(f"JAX / PyTorch (median of paired ratios): {res['ratio']:.2f} vs NCHW, "
        f"{res['ratio_cl']:.2f} vs channels_last; {args.torch_steps} rounds; {load_text()}")
  out["torch"] = res


# ----------------------------------------------------------------------------- section 4

# jaxclean.xla_defaults.FLAG as a compile option (the enum's full name).
YNN_DOTS_ONLY = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


def section_models(args, out):
  import jax
  import numpy as np
  from jaxclean import parallel
  from jaxclean.data import pipeline
  from jaxclean.models import get_model
  if "ynn" in os.environ.get("XLA_FLAGS", "").lower():
    raise SystemExit("section models compares jaxlib's XLA:CPU default with jaxclean's: run it "
                     "with JAXCLEAN_XLA_DEFAULTS=0 and no ynn flag in XLA_FLAGS")
  b = args.model_batch
  mesh = parallel.make_mesh(1)
  print(f"\n== 4. train step (with recording) per model, batch {b}: jaxlib's XLA:CPU default "
        f"vs jaxclean's ({YNN_DOTS_ONLY}), {args.model_steps} interleaved rounds; {load_text()}")
  out["models"] = {}
  for name in args.models.split(","):
    shape = (28, 28, 1) if name in ("mlp", "cnn") else (32, 32, 3)
    rng = np.random.default_rng(0)
    n = 8 * b
    images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.int32)
    config = base_config(b)
    config.model.name = name
    if shape[-1] == 3:  # the AUM recipe's augmentation
      config.augment.crop, config.augment.flip = 4, True
    mean, std = np.full(shape[-1], 128, np.float32), np.full(shape[-1], 64, np.float32)
    batches = device_batches(images, labels, b, 2, mesh)
    with jax.set_mesh(mesh):
      steps = [JaxStep(config, get_model(name, 10), mean, std, pipeline.steps_per_epoch(n, b),
                       True, n, mesh, batches[0], options) for options in (None, YNN_DOTS_ONLY)]
      for _ in range(args.warmup):
        for f in steps:
          f(batches[0])
      t_lib, t_ours = interleaved(steps, args.model_steps, batches)
    res = dict(batch=b, jaxlib=summary(t_lib), jaxclean=summary(t_ours),
               ratio=paired(t_ours, t_lib)[0], ratio_iqr=paired(t_ours, t_lib)[1:],
               compile_s=dict(jaxlib=steps[0].compile_s, jaxclean=steps[1].compile_s))
    print(f"{name:16s} jaxlib's default {res['jaxlib']['median_ms']:8.1f} ms, jaxclean's "
          f"{res['jaxclean']['median_ms']:8.1f} ms median; paired ratio jaxclean/jaxlib "
          f"{res['ratio']:.2f} (IQR {res['ratio_iqr'][0]:.2f}-{res['ratio_iqr'][1]:.2f}); compile {steps[0].compile_s:.1f} s vs {steps[1].compile_s:.1f} s;"
          f" {load_text()}", flush=True)
    out["models"][name] = res


# ----------------------------------------------------------------------------- sweep


def run_sweep(args, default_added):
  print(header(args, default_added))
  print(f"\n== sweep: section 3 per variant, each in a fresh process, {args.sweep_steps} "
        f"interleaved rounds (JAX, PyTorch NCHW, PyTorch channels_last); ratio = median of "
        f"paired JAX/PyTorch step times, < 1 means JAX is faster", flush=True)
  cols = ("variant", "batch", "JAX ms", "torch ms", "torch_cl ms", "JAX/torch", "JAX/torch_cl",
          "load")
  print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols), flush=True)
  base = ["--sections", "torch", "--json", "--torch_steps", str(args.sweep_steps),
          "--batch", str(args.batch), "--num_examples", str(args.num_examples),
          "--data", args.data, "--warmup", str(args.warmup)]
  if args.sweep_cpus:
    base += ["--cpus", args.sweep_cpus]
  only = [w for w in args.sweep_only.split(",") if w]
  rows = []
  for name, extra, env in SWEEP:
    if only and not any(w in name for w in only):
      continue
    if args.sweep_cpus and "--cpus" in extra:
      continue
    cmd = [sys.executable, os.path.abspath(__file__)] + base + extra
    proc = subprocess.run(cmd, env=dict(os.environ, **env), capture_output=True, text=True)
    res = None
    for line in proc.stdout.splitlines():
      if line.startswith(JSON_PREFIX):
        res = json.loads(line[len(JSON_PREFIX):]).get("torch")
    if res is None:
      err = (proc.stderr.strip().splitlines() or ["no output"])[-1][:120]
      print(f"| {name} | - | failed: {err} | | | | | |", flush=True)
      rows.append(dict(variant=name, error=err))
      continue
    print(f"| {name} | {res['batch']} | {res['jax']['median_ms']:.1f} | "
          f"{res['torch']['median_ms']:.1f} | {res['torch_cl']['median_ms']:.1f} | "
          f"{res['ratio']:.2f} | {res['ratio_cl']:.2f} | {res['load'][0]:.1f} |", flush=True)
    rows.append(dict(variant=name, **res))
  print(f"\nper-example JAX step time (ms / example) by batch: " + ", ".join(
      f"{r['batch']}: {r['jax']['median_ms'] / r['batch']:.3f}" for r in rows
      if "jax" in r and (r["variant"].startswith("batch") or r["variant"].startswith("baseline"))))
  print(f"after the sweep: {load_text()}")
  return rows


# ----------------------------------------------------------------------------- main


def main(argv=None):
  args = parse_args(argv)
  default_added = setup_process(args)
  if args.sweep:
    run_sweep(args, default_added)
    return
  print(header(args, default_added), flush=True)
  data = load_data(args)
  print(f"data: {data[4]}; mean {float(data[2][0]):.2f}, std {float(data[3][0]):.2f}")
  out = {}
  if "overhead" in args.sections:
    section_overhead(args, data, out)
  if "fit" in args.sections:
    section_fit(args, data, out)
  if "torch" in args.sections:
    section_torch(args, data, out)
  if "models" in args.sections:
    section_models(args, out)
  if args.json:
    print(JSON_PREFIX + json.dumps(out))
  if "overhead" in out:
    o = out["overhead"]
    print(f"\nsummary: step {o['plain']['median_ms']:.1f} ms without recording, "
          f"{o['rec']['median_ms']:.1f} ms with, N = {o['n']}, batch {o['batch']}")
    print(f"recording overhead: {o['overhead_pct']:.1f} %")
  if "torch" in out:
    print(f"jax/torch step ratio: {out['torch']['ratio']:.2f}")


if __name__ == "__main__":
  main()
