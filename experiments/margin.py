"""The relabel margin against the truth, over finished runs: label accuracy of the corrected
labels at each margin, for runs whose early window closed and runs where it never did
(`decide.MARGIN`, `decide.OPEN_MARGIN`). Each run's decisions are made again from its
scores.csv (they are a function of its columns); the true labels are the first N clean
training labels of the data set named beside the runs' glob:

  python -m experiments.margin --out=experiments/results/decisions_margin.md \
      --runs='runs/dec/fm_*:fashion_mnist' --runs='runs/dec/c10n_*:cifar10' \
      --runs='runs/standin/runs/cifar_*/seed*/default:cifar10' ...
"""

from __future__ import annotations

import glob
import os

import ml_collections
import numpy as np
import pandas as pd
from absl import app, flags

from configs import default
from experiments import tables
from jaxclean import data as data_lib
from jaxclean import decide

_RUNS = flags.DEFINE_multi_string("runs", [], "GLOB:DATA, DATA the data set whose clean "
                                  "training labels are the truth (digits, fashion_mnist, cifar10).")
_MARGINS = flags.DEFINE_list("margins", ["0.2", "0.35", "0.5"], "Margins to measure.")
_OUT = flags.DEFINE_string("out", None, "Markdown file to write.")


def truth(name: str) -> np.ndarray:
  config = ml_collections.ConfigDict(default.get_config().data.to_dict())
  config.name = name
  ds = data_lib.load(config)
  return np.asarray(ds.train_clean_labels if ds.train_clean_labels is not None
                    else ds.train.labels)


def run_row(workdir: str, true: np.ndarray, margins: list[float]) -> dict:
  df = decide.again(workdir)
  true = true[:len(df)]
  given, suggested = df["given_label"].to_numpy(), df["suggested_label"].to_numpy()
  row = dict(run=workdir, window_closed=decide.early_window_closed(workdir),
             given=float((given == true).mean()))
  for m in margins:
    d = decide.rule(df["p_given"].to_numpy(), df["p_suggested"].to_numpy(), given != suggested,
                    m)
    row[f"margin {m}"] = float((np.where(d == "relabel", suggested, given) == true).mean())
  row["default"] = float((decide.corrected(df) == true).mean())
  return row


def main(argv):
  del argv
  margins = [float(m) for m in _MARGINS.value]
  rows = []
  for spec in _RUNS.value:
    pattern, name = spec.rsplit(":", 1)
    true = truth(name)
    rows += [run_row(d, true, margins) for d in sorted(glob.glob(pattern))
             if os.path.isfile(os.path.join(d, "scores.csv"))]
  df = pd.DataFrame(rows)
  gains = df.drop(columns=["run", "window_closed", "given"]).sub(df["given"], axis=0)
  summary = pd.DataFrame(dict(
      runs=[len(df)] * 2,
      **{c: [gains[c].min(), gains[c].mean()] for c in gains}), index=["min gain", "mean gain"])
  text = (tables.markdown_table(df, ".4f") + "\n\nGain over the given labels (all runs):\n\n"
          + tables.markdown_table(summary.reset_index(), ".4f"))
  print(text)
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      f.write(f"# The relabel margin against the truth\n\n"
              f"default: `decide.MARGIN` = {decide.MARGIN} where the early window closed, "
              f"`decide.OPEN_MARGIN` = {decide.OPEN_MARGIN} where it never did.\n\n{text}\n")


if __name__ == "__main__":
  app.run(main)
