"""What the experiment scripts share: settings loop, timing, tables, command line.

Every script is `python -m experiments.<name> --config=configs/exp_<name>.py
--workdir=DIR` and exposes `run(config, workdir) -> DataFrame`. Runs go under
`DIR/<setting>/...` (each training resumes from its checkpoints, so a rerun
after an interruption only trains what is missing); the table is written as
`DIR/<name>.csv` and `DIR/<name>.md`, and also to `config.exp.results_dir`
when that is set.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shlex
import sys
import time
from typing import Callable, Iterable

import jax
import ml_collections
import numpy as np
import pandas as pd

from jaxclean import data as data_lib
from jaxclean import detection, io, parallel, train
from jaxclean import scores as scores_lib


# Settings ------------------------------------------------------------------------------------

def noise_settings(text: str) -> list[tuple[str, dict]]:
  """'uniform:0.2,asymmetric:0.4' -> [('uniform 20%', {'noise.kind': ..., 'noise.rate': ...})]."""
  out = []
  for item in filter(None, (s.strip() for s in text.split(","))):
    kind, _, rate = item.partition(":")
    if kind not in ("uniform", "asymmetric", "none") or (kind != "none" and not rate):
      raise ValueError(f"bad noise setting {item!r}; use e.g. uniform:0.4, asymmetric:0.2, none")
    rate = float(rate or 0)
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
    labels, is_noisy = train.noisy_labels(c, ds)
    print(f"== {label}: {len(labels)} training examples"
          + ("" if is_noisy is None else f", {int(is_noisy.sum())} wrong labels"), flush=True)
    for row in fn(c, ds, labels, is_noisy, os.path.join(workdir, slug(label)), mesh):
      rows.append({"setting": label, **row})
  return pd.DataFrame(rows)


def detection_rows(scores: pd.DataFrame, is_noisy: np.ndarray) -> list[dict]:
  """One row per recorded score: AUROC, AP, precision/recall at k = #noisy."""
  names = [s for s in scores_lib.SCORES if s in scores]
  table = detection.table({s: scores[s].to_numpy() for s in names}, is_noisy)
  return [dict(method=s, **{k: float(v) for k, v in table.loc[s].items()}) for s in names]


# Tables ---------------------------------------------------------------------------------------

def markdown_table(df: pd.DataFrame, floatfmt: str = ".4f") -> str:
  """A GitHub markdown table (no tabulate dependency); NaN prints as '–'."""

  def cell(v):
    if isinstance(v, (float, np.floating)):
      return "–" if np.isnan(v) else format(v, floatfmt)
    if isinstance(v, (int, np.integer)):
      return str(int(v))
    return str(v).replace("|", "\\|")

  head = "| " + " | ".join(str(c) for c in df.columns) + " |"
  rule = "|" + "|".join("---" for _ in df.columns) + "|"
  body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
  return "\n".join([head, rule, *body])


def environment(seconds: float) -> str:
  """Runtime line: wall seconds, cores, date, JAX backend."""
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:
    cores = os.cpu_count()
  date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
  return (f"Runtime: {seconds:.0f} s wall ({seconds / 60:.1f} min) on nproc={cores}, "
          f"{jax.device_count()} {jax.default_backend()} device(s), {date}.")


def write_outputs(config, workdir: str, name: str, title: str, df: pd.DataFrame,
                  sections: list[tuple], seconds: float,
                  command: str | None, notes: Iterable[str] = ()) -> str:
  """Writes `<name>.csv` (df) and `<name>.md` (title, command, runtime, sections, notes)

  `sections` are (heading, table) or (heading, table, float format) tuples. Both files
  are written atomically to `workdir` and to `config.exp.results_dir` if set; the
  markdown is printed and returned.
  """
  parts = [f"# {title}", ""]
  if command:
    parts += ["```", command, "```", ""]
  parts += [environment(seconds), ""]
  for heading, table, *fmt in sections:
    if heading:
      parts += [f"## {heading}", ""]
    parts += [markdown_table(table, *fmt), ""]
  notes = list(notes)
  if notes:
    parts += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
  text = "\n".join(parts)
  if jax.process_index() == 0:
    dirs = [workdir] + ([config.exp.results_dir] if config.exp.get("results_dir") else [])
    for d in dirs:
      with io.atomic_path(os.path.join(d, f"{name}.csv")) as tmp:
        df.to_csv(tmp, index=False)
      io.write_text(os.path.join(d, f"{name}.md"), text)
    print(text, flush=True)
  return text


def command_line(module: str) -> str:
  return " ".join(["python -m", module] + [shlex.quote(a) for a in sys.argv[1:]])


def cli(module: str, run: Callable) -> None:
  """`app.run` for an experiment: --config (config_flags) and --workdir."""
  from absl import app, flags
  from ml_collections import config_flags

  config_flag = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                                lock_config=True)
  workdir_flag = flags.DEFINE_string("workdir", None, "Directory for runs and tables.")
  flags.mark_flags_as_required(["config", "workdir"])

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments {argv[1:]}")
    run(config_flag.value, workdir_flag.value, command=command_line(module))

  app.run(main)
