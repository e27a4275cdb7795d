"""The XLA:CPU flag that jaxclean's entry points add before JAX starts its backend.

jaxlib 0.10's XLA:CPU hands every convolution to YNNPACK. On x86 CPUs without
AVX-512 (measured: AMD Zen 3) YNNPACK's kernel gradient of a 3x3 convolution
is about 8x slower than XLA's own (Eigen) one, half of the small CNN's step;
`--xla_cpu_experimental_ynn_fusion_type=individual_dot` keeps YNNPACK for dots
only and makes that step 2.4x faster (JAX/PyTorch 2.6 -> 1.1). With AVX-512
(measured: Intel Sapphire Rapids) YNNPACK's convolutions are as fast or
faster overall: the flag gains 2-6 % on the small CNN, nothing on ResNet-32,
and costs 8 % on PreAct ResNet-18, so it is left out there. Rankings agree
either way (Spearman of AUM 0.999). Numbers: benchmarks/README.md.

XLA reads XLA_FLAGS once, when JAX initialises its first backend, and aborts
the process on a flag its build does not know; so `apply` runs before any
JAX computation and adds the flag only when all of these hold:
  * JAXCLEAN_XLA_DEFAULTS is not "0" (the way out);
  * XLA_FLAGS does not mention ynn: a user's own YNNPACK setting always wins
    (any other flags of theirs are kept, in front);
  * the default platform will be the CPU: JAX_PLATFORMS, when set, starts with
    cpu; when unset, no accelerator plugin (jax_plugins, libtpu) is installed.
    Nothing is imported or initialised to find out;
  * the installed jaxlib is a release in which the flag exists and was measured
    (`JAXLIBS`);
  * the CPU is x86 with AVX2 and without AVX-512 (/proc/cpuinfo), or
    JAXCLEAN_XLA_DEFAULTS=1 asks for the flag on any CPU.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from typing import MutableMapping

FLAG = "--xla_cpu_experimental_ynn_fusion_type=individual_dot"
ENV = "JAXCLEAN_XLA_DEFAULTS"  # 0: never add FLAG; 1: on any CPU; unset: where it was measured faster
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
  cpu = _cpu_flags()
  return choice == "1" or ("avx2" in cpu and "avx512f" not in cpu)


def apply(environ: MutableMapping[str, str] = os.environ) -> bool:
  """Adds `FLAG` to XLA_FLAGS in `environ` when `wanted`; True if it did."""
  if not wanted(environ):
    return False
  environ["XLA_FLAGS"] = f"{environ.get('XLA_FLAGS', '')} {FLAG}".strip()
  return True
