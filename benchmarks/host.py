"""What every benchmark's results header says of the machine: the CPU, the load, package
versions. The scripts run as `python benchmarks/<name>.py`, so this folder is on sys.path."""

from __future__ import annotations

import importlib.metadata
import os
import platform


def version(name: str) -> str:
  try:
    return importlib.metadata.version(name)
  except importlib.metadata.PackageNotFoundError:
    return "not installed"


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "cpu"


def load_text() -> str:
  return "load average %.2f %.2f %.2f" % os.getloadavg()
