"""JAX's persistent compilation cache for jaxclean's runs: a program compiled once on a
machine is read back by every later run there instead of compiled again.

A run compiles about 25 programs, and on a CPU their compiling is most of a small run's
fixed cost: on 2 cores, for the MLP on 10,000 embeddings, initialising the model 2.2-2.7 s
(the threefry draws of six parameter arrays), the train step 2.0 s, the eval step, the
early window's watch, the scores, the count and the decisions 0.1-0.9 s each: 6-8 s in all,
against 4-6 s for the 20 epochs (benchmarks/embeddings.py). What is cached is the compiled program itself, so a run that
reads it computes bit for bit what one that compiled it does. A program is found again when
its shapes and settings are the same: another seed, rate or threshold rule on the same data
compiles nothing; other sizes compile what depends on them.

`enable()` (`protocol.train_and_evaluate` calls it, so the command line, the Python API and
the experiments all do) points JAX's cache at `directory()`:
`$JAXCLEAN_COMPILATION_CACHE` if set to a path, else `~/.cache/jaxclean/xla/<host>`, where
`<host>` is the jax version and a digest of the CPU (machine, model name and feature flags):
XLA:CPU compiles for the host's instruction set and JAX's cache key does not name it, so a
home directory shared by different machines never hands one machine's code to another.
Where JAX's own settings are at their defaults it caches every program (jaxclean's take
0.01-2.7 s each; JAX's default skips those under 1 s) and bounds the directory at
`MAX_BYTES` (least recently used first out; JAX then locks the directory, so runs side by
side share it). Left alone:
  * JAXCLEAN_COMPILATION_CACHE=0 (no cache);
  * a cache directory the process already has (jax_compilation_cache_dir, e.g. from
    JAX_COMPILATION_CACHE_DIR): the user's cache, with the user's settings;
  * a directory that cannot be created or written (nothing is cached).
The cache is JAX's, so it serves the whole process from then on (JAX's documentation: keep
it where only you can write; it is made with mode 0700).
"""

from __future__ import annotations

import hashlib
import os
import platform
from typing import MutableMapping

ENV = "JAXCLEAN_COMPILATION_CACHE"  # 0: no cache; a path: the cache's directory
MAX_BYTES = 2 << 30  # the default directory's bound (JAX's LRU eviction)
_JAX_DEFAULT_MIN_SECONDS = 1.0  # jax_persistent_cache_min_compile_time_secs' default


def host() -> str:
  """The jax version and a short digest of this machine's CPU (architecture, model name,
  x86 feature flags from /proc/cpuinfo where there is one)."""
  import jax
  parts = [platform.machine(), platform.processor()]
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key = line.split(":", 1)[0].strip()
        if key in ("model name", "flags", "Features", "CPU part", "CPU implementer"):
          parts.append(line.strip())
        elif not line.strip() and len(parts) > 2:  # the first processor's block is enough
          break
  except OSError:
    pass
  digest = hashlib.blake2b("\n".join(parts).encode(), digest_size=6).hexdigest()
  return f"jax{jax.__version__}-{platform.machine() or 'cpu'}-{digest}"


def directory(environ: MutableMapping[str, str] = os.environ) -> str | None:
  """Where `enable` puts the cache; None when JAXCLEAN_COMPILATION_CACHE=0."""
  choice = environ.get(ENV, "")
  if choice == "0":
    return None
  if choice:
    return os.path.abspath(os.path.expanduser(choice))
  return os.path.join(os.path.expanduser("~"), ".cache", "jaxclean", "xla", host())


def enable(environ: MutableMapping[str, str] = os.environ) -> str | None:
  """Turns JAX's persistent compilation cache on at `directory()`, unless the module
  docstring says to leave it; returns the directory the process's cache is in (the
  user's own where they set one), or None."""
  import jax
  current = jax.config.jax_compilation_cache_dir
  if current:
    return current
  path = directory(environ)
  if path is None:
    return None
  try:
    os.makedirs(path, mode=0o700, exist_ok=True)
  except OSError:
    return None
  if not os.access(path, os.W_OK | os.X_OK):
    return None
  if jax.config.jax_persistent_cache_min_compile_time_secs == _JAX_DEFAULT_MIN_SECONDS:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  if jax.config.jax_compilation_cache_max_size == -1:
    try:
      import filelock  # noqa: F401  JAX's eviction locks the directory with it
      jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    except ImportError:
      pass
  jax.config.update("jax_compilation_cache_dir", path)
  return path
