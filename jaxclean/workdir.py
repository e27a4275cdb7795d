"""A run's hold on its workdir: created if need be, and locked for the run's lifetime.

Two runs in one workdir would race in the checkpointer and mix their outputs.
`hold` takes an exclusive `fcntl.flock` on `WORKDIR/LOCK` through a descriptor
kept open until the run ends; the kernel drops it when the process dies, so a
killed run never leaves a workdir stuck. The file keeps the holder's pid, for
the message a second run gets.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from jaxclean.errors import InputError

LOCK = ".jaxclean.lock"


def create(workdir: str) -> None:
  """Makes `workdir` (and its parents), or raises InputError saying why it cannot be."""
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:  # a file on the way, no permission, read-only file system
    raise InputError(f"cannot create workdir {workdir}: {e.strerror or e}") from None
  if not os.access(workdir, os.W_OK | os.X_OK):
    raise InputError(f"workdir {workdir} is not writable")


@contextlib.contextmanager
def hold(workdir: str):
  """Creates `workdir` and holds its lock until the block ends; InputError if another run
  holds it. A URL (gs://...) has no file lock: it is left to its owner."""
  if "://" in workdir:
    yield
    return
  create(workdir)
  path = os.path.join(workdir, LOCK)
  try:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    raise InputError(f"cannot create {path}: {e.strerror or e}") from None
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
      raise InputError(f"workdir {workdir} is in use by another run (pid {holder}); wait for it "
                       "to finish or use another --workdir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    yield
  finally:
    os.close(fd)  # releases the lock
