"""The XLA:CPU settings that jaxclean's entry points apply before JAX starts.

1. `FLAG`. jaxlib 0.10's XLA:CPU hands every convolution to YNNPACK, whose
   kernel gradient of a 3x3 convolution is several times slower than XLA's own
   (Eigen) one; `--xla_cpu_experimental_ynn_fusion_type=individual_dot` keeps
   YNNPACK for dots only. Measured, train step with the flag / without, 2
   threads: AMD Zen 3 (AVX2) small CNN 0.42; Intel Sapphire Rapids (AVX-512)
   small CNN 0.51-0.55, ResNet-32 0.99, PreAct ResNet-18 0.84. Rankings agree
   as closely as two thread splits of the same code do (Spearman of AUM
   0.9989). Numbers: benchmarks/README.md.
2. `reuse_heap`. XLA:CPU allocates each step's temporaries (about 90 MB for the
   small CNN at batch 256) afresh on a worker thread; glibc serves blocks that
   large with mmap and unmaps them when the step ends, so every step
   page-faults them in again (about a third of the CNN's step in the kernel).
   One malloc arena, no mmap and no trimming keep them in the heap for the
   next step: the step takes 0.78 of the time.

XLA reads XLA_FLAGS once, when JAX initialises its first backend, and aborts
the process on a flag its build does not know; so `apply` runs before any
JAX computation and adds the flag only when all of these hold:
  * JAXCLEAN_XLA_DEFAULTS is not "0" (the way out of both settings);
  * XLA_FLAGS does not mention ynn: a user's own YNNPACK setting always wins
    (any other flags of theirs are kept, in front);
  * the default platform will be the CPU: JAX_PLATFORMS, when set, starts with
    cpu; when unset, no accelerator plugin (jax_plugins, libtpu) is installed.
    Nothing is imported or initialised to find out;
  * the installed jaxlib is a release in which the flag exists and was measured
    (`JAXLIBS`);
  * the CPU is x86 with AVX2 (/proc/cpuinfo), or JAXCLEAN_XLA_DEFAULTS=1 asks
    for the flag on any CPU.
`reuse_heap` needs the first three of those (a user's own MALLOC_* or glibc.malloc
tunables in place of the second) and glibc.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import platform
from typing import MutableMapping

FLAG = "--xla_cpu_experimental_ynn_fusion_type=individual_dot"
ENV = "JAXCLEAN_XLA_DEFAULTS"  # 0: neither setting; 1: FLAG on any CPU; unset: where measured
# mallopt(3) parameters: one arena, no mmap, trim only above 2 GiB free at the heap's top.
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
HEAP = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1))
JAXLIBS = ((0, 10),)  # (major, minor) releases whose XLA:CPU has FLAG, measured


def _jaxlib_release() -> tuple[int, ...] | None:
  try:
    return tuple(int(p) for p in importlib.metadata.version("jaxlib").split(".")[:2])
  except (importlib.metadata.PackageNotFoundError, ValueError):
    return None


def _cpu_flags() -> set[str]:
  """The x86 feature flags of the first CPU in /proc/cpuinfo (empty elsewhere)."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("flags"):
          return set(line.split(":", 1)[1].split())
  except OSError:
    pass
  return set()


def _platform_is_cpu(environ: MutableMapping[str, str]) -> bool:
  """Whether JAX's default platform will be the CPU, without importing or starting JAX."""
  platforms = environ.get("JAX_PLATFORMS") or environ.get("JAX_PLATFORM_NAME")
  if platforms:
    return platforms.split(",")[0].strip().lower() == "cpu"
  return not (importlib.metadata.entry_points(group="jax_plugins")
              or importlib.util.find_spec("jax_plugins")
              or importlib.util.find_spec("libtpu"))


def wanted(environ: MutableMapping[str, str] = os.environ) -> bool:
  """Whether `apply` adds `FLAG` under `environ` (every condition of the module docstring)."""
  choice = environ.get(ENV, "")
  if choice == "0" or "ynn" in environ.get("XLA_FLAGS", "").lower():
    return False
  if not _platform_is_cpu(environ) or _jaxlib_release() not in JAXLIBS:
    return False
  return choice == "1" or "avx2" in _cpu_flags()


def apply(environ: MutableMapping[str, str] = os.environ) -> bool:
  """Adds `FLAG` to XLA_FLAGS in `environ` when `wanted`; True if it did."""
  if not wanted(environ):
    return False
  environ["XLA_FLAGS"] = f"{environ.get('XLA_FLAGS', '')} {FLAG}".strip()
  return True


def reuse_heap(environ: MutableMapping[str, str] = os.environ) -> bool:
  """Sets `HEAP` with mallopt(3) when the module docstring's conditions hold; True if it did.

  Call it before JAX starts its threads (an arena made before stays)."""
  if environ.get(ENV, "") == "0" or not _platform_is_cpu(environ):
    return False
  if "malloc" in environ.get("GLIBC_TUNABLES", "") or any(k.startswith("MALLOC_") for k in environ):
    return False
  if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
    return False
  libc = ctypes.CDLL(None)
  return all([libc.mallopt(param, value) == 1 for param, value in HEAP])
