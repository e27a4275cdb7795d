"""Result tables of the experiments: markdown and CSV, with the command and runtime.

`write_outputs` writes `DIR/<name>.csv` and `DIR/<name>.md`, and also to
`config.exp.results_dir` when that is set.
"""

from __future__ import annotations

import datetime
import os
import subprocess
from typing import Iterable

import jax
import numpy as np
import pandas as pd

from jaxclean import outputs

# The commit the run started from (read at import: commits made while it runs are not its code).
_COMMIT = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or "unknown"


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
  """Runtime line: wall seconds, cores, date, JAX backend, commit, load averages (`uptime`'s)."""
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:
    cores = os.cpu_count()
  date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
  load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
  return (f"Runtime: {seconds:.0f} s wall ({seconds / 60:.1f} min) on nproc={cores}, "
          f"{jax.device_count()} {jax.default_backend()} device(s), {date}, commit {_COMMIT}, "
          f"load average at the end {load} (1, 5, 15 min).")


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
      with outputs.atomic_path(os.path.join(d, f"{name}.csv")) as tmp:
        df.to_csv(tmp, index=False)
      outputs.write_text(os.path.join(d, f"{name}.md"), text)
    print(text, flush=True)
  return text
