"""What the experiment scripts share: the loop over settings, timing, the command line.

Every script is `python -m experiments.<name> --config=configs/exp_<name>.py
--workdir=DIR` and exposes `run(config, workdir) -> DataFrame`. Runs go under
`DIR/<setting>/...` (each training resumes from its checkpoints, so a rerun
after an interruption only trains what is missing); `experiments.tables`
writes the results.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time
from typing import Callable, Iterable

import ml_collections
import numpy as np
import pandas as pd

from jaxclean import data as data_lib
from jaxclean import parallel, protocol, quality
from jaxclean import scores as scores_lib


def noise_settings(pairs) -> list[tuple[str, dict]]:
  """(('uniform', 0.2), ('none', 0)) -> [('uniform 20%', {'noise.kind': ..., 'noise.rate': ...})]."""
  out = []
  for item in pairs:
    if (len(item) != 2 or item[0] not in ("uniform", "asymmetric", "none")
        or not 0 <= float(item[1]) < 1):
      raise ValueError(f"bad noise setting {item!r}; use e.g. ('uniform', 0.4), ('none', 0)")
    kind, rate = item[0], float(item[1])
    label = "no noise" if kind == "none" else f"{kind} {rate:.0%}"
    out.append((label, {"noise.kind": kind, "noise.rate": rate}))
  if not out:
    raise ValueError("no settings given")
  return out


def with_overrides(config: ml_collections.ConfigDict, overrides: dict
                   ) -> ml_collections.ConfigDict:
  """A resolved copy of `config` with dotted-path `overrides` applied."""
  c = config.copy_and_resolve_references()
  with c.unlocked():
    for path, value in overrides.items():
      *parents, leaf = path.split(".")
      node = c
      for p in parents:
        node = node[p]
      node[leaf] = value
  return c


def slug(label: str) -> str:
  return re.sub(r"[^a-z0-9]+", "_", label.lower().replace("%", "pct")).strip("_")


class Timer:
  """`with Timer() as t: ...`; then `t.seconds` (wall clock)."""

  def __enter__(self):
    self.start = time.perf_counter()
    self.seconds = 0.0
    return self

  def __exit__(self, *exc):
    self.seconds = time.perf_counter() - self.start


def for_each_setting(config, workdir: str, settings: Iterable[tuple[str, dict]],
                     fn: Callable) -> pd.DataFrame:
  """Calls `fn(config, ds, labels, is_noisy, workdir, mesh) -> list[dict]` per setting.

  `config` is the experiment config with the setting's overrides; `workdir`
  is `workdir/<slug(label)>`. Each row gets the setting's label first. Data
  sets are loaded once per distinct `config.data`.
  """
  mesh = parallel.make_mesh(config.num_devices)
  loaded: dict[str, data_lib.Dataset] = {}
  rows = []
  for label, overrides in settings:
    c = with_overrides(config, overrides)
    key = json.dumps(c.data.to_dict(), sort_keys=True, default=str)
    if key not in loaded:
      loaded[key] = data_lib.load(c.data)
    ds = loaded[key]
    labels, is_noisy = protocol.noisy_labels(c, ds)
    c = protocol.resolve(c, ds)
    print(f"== {label}: {len(labels)} training examples"
          + ("" if is_noisy is None else f", {int(is_noisy.sum())} wrong labels"), flush=True)
    for row in fn(c, ds, labels, is_noisy, os.path.join(workdir, slug(label)), mesh):
      rows.append({"setting": label, **row})
  return pd.DataFrame(rows)


def noise_and_cifar10n(config, workdir: str, setting: Callable, write: Callable,
                       command: str | None) -> pd.DataFrame:
  """`setting`'s rows over `config.exp.noise` then the CIFAR-10N label sets `exp.cifar10n`
  (first `exp.cifar10_size` images); `write(config, workdir, rows, seconds, command)` after
  every setting, so an interrupted run leaves its tables so far."""
  cases = (noise_settings(config.exp.noise) if config.exp.noise else []) + [
      (f"CIFAR-10N {name}", {"data.name": "cifar10", "data.cifar10_labels": name,
                             "data.train_size": config.exp.cifar10_size, "noise.kind": "none"})
      for name in config.exp.cifar10n]
  frames = []
  with Timer() as total:
    for case in cases:
      frames.append(for_each_setting(config, workdir, [case], setting))
      write(config, workdir, pd.concat(frames, ignore_index=True),
            time.perf_counter() - total.start, command)
  return pd.concat(frames, ignore_index=True)


def detection_rows(scores: pd.DataFrame, is_noisy: np.ndarray) -> list[dict]:
  """One row per recorded score: AUROC, AP, precision/recall at k = #noisy."""
  names = [s for s in scores_lib.SCORES if s in scores]
  table = quality.table({s: scores[s].to_numpy() for s in names}, is_noisy)
  return [dict(method=s, **{k: float(v) for k, v in table.loc[s].items()}) for s in names]


def command_line(module: str) -> str:
  return " ".join(["python -m", module] + [shlex.quote(a) for a in sys.argv[1:]])


def cli(module: str, run: Callable) -> None:
  """`app.run` for an experiment: --config (config_flags) and --workdir."""
  from absl import app, flags, logging
  from ml_collections import config_flags

  config_flag = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                                lock_config=True)
  workdir_flag = flags.DEFINE_string("workdir", None, "Directory for runs and tables.")
  flags.mark_flags_as_required(["config", "workdir"])

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from jaxclean import xla_defaults
    xla_defaults.apply()  # the CPU settings of `jaxclean`, before JAX starts a backend
    xla_defaults.reuse_heap()
    logging.set_verbosity(logging.WARNING)
    run(config_flag.value, workdir_flag.value, command=command_line(module))

  app.run(main)
