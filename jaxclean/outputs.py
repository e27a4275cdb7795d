"""Atomic file outputs: write to a temporary file beside the target, then rename.

A reader (or a crash) never sees half a file: every output of a run goes
through `atomic_path`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile

import pandas as pd


def _umask() -> int:
  """The process umask, read without changing it (Linux), else by the set-and-restore idiom.

  Called once at import, before any thread of ours writes files: setting the
  umask while another thread creates a file would give that file mode 0666.
  """
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except OSError:
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


_UMASK = _umask()

@contextlib.contextmanager
def atomic_path(path: str):
  """Yields a temporary path; on success it replaces `path` in one rename."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path))
  os.close(fd)
  os.chmod(tmp, 0o666 & ~_UMASK)  # as open() would create it, not mkstemp's 0600
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_text(path: str, text: str) -> None:
  with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
    f.write(text)


def write_json(path: str, obj) -> None:
  write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")


def write_table(path: str, df: pd.DataFrame) -> None:
  """Writes `df` as CSV at `path` and as Parquet beside it (same stem)."""
  with atomic_path(path) as tmp:
    df.to_csv(tmp, index=False)
  with atomic_path(os.path.splitext(path)[0] + ".parquet") as tmp:
    df.to_parquet(tmp, index=False)
