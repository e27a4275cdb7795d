"""One process of a multi-process CPU run, for `tests/test_multihost.py`.

Usage: python tests/multihost_worker.py WRITE_LOG -- <jaxclean.main flags>

Runs `python -m jaxclean.main` with the given flags, unchanged, after two
additions: cross-process CPU collectives are pinned to gloo (the default in
current jax, set explicitly so a changed default cannot silently turn the
collectives off), and an audit hook records every file this process opens for
writing or renames into place under `--workdir`. That list is written as JSON
to WRITE_LOG at exit, so the test can tell which process wrote which output.
"""

import atexit
import faulthandler
import json
import os
import runpy
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _install_write_log(log_path: str, workdir: str) -> None:
  root = os.path.realpath(workdir) + os.sep
  written: list[str] = []

  def under_root(path) -> str | None:
    if isinstance(path, int):
      return None
    try:
      p = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
      return None
    return os.path.relpath(p, root) if p.startswith(root) else None

  def hook(event, args):
    if event == "open":
      path, mode, flags = args
      writes = ((isinstance(mode, str) and any(c in mode for c in "wax+")) or
                (isinstance(flags, int) and flags & _WRITE_FLAGS))
      if writes and (rel := under_root(path)) is not None:
        written.append(rel)
    elif event == "os.rename":  # os.rename and os.replace
      if (rel := under_root(args[1])) is not None:
        written.append(rel)

  def dump():
    with open(log_path, "w") as f:
      json.dump(sorted(set(written)), f)

  sys.addaudithook(hook)
  atexit.register(dump)


def main() -> None:
  log_path, sep, *flags = sys.argv[1:]
  assert sep == "--", sys.argv
  sys.path[0] = ROOT  # the repository, not tests/
  faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test's hang report
  workdir = next(f.split("=", 1)[1] for f in flags if f.startswith("--workdir="))
  os.makedirs(workdir, exist_ok=True)
  _install_write_log(log_path, workdir)

  import jax
  jax.config.update("jax_cpu_collectives_implementation", "gloo")

  sys.argv = ["jaxclean.main"] + flags
  runpy.run_module("jaxclean.main", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
  main()
