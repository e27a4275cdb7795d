"""Cleaning inside the run against detect-then-retrain: test accuracy and wall time.

For each setting (Fashion-MNIST 12k with uniform and asymmetric noise, a CIFAR-10N subset),
with the default config otherwise:

  no cleaning        the default run (threshold copies): its final test accuracy
  retrain            that run's flagged examples removed (`clean.method=aum_threshold`) and
                     a model retrained from scratch on the rest, as many epochs; its time
                     is both trainings'
  in_run <when> fresh/same
                     one run that drops what it has flagged (`clean.method=in_run`) and
                     trains on, with the optimiser's state made anew (fresh) or kept (same),
                     for each `clean.at_epoch` of `exp.at_epochs`: 0 = when the early window
                     closes ("close"), k = after epoch k ("@k")

  python -m experiments.clean_in_run --config=configs/exp_clean_in_run.py \
      --workdir=runs/exp_clean_in_run
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from experiments import settings, tables
from jaxclean import clean, protocol



def _setting(config, ds, labels, is_noisy, workdir, mesh) -> list[dict]:
  if is_noisy is None:
    raise ValueError("the table needs known wrong labels (injected noise or CIFAR-10N)")
  with settings.Timer() as t:
    found = protocol.record(config, ds, labels, os.path.join(workdir, "detect"), mesh)
  scores = protocol.score_table(found, labels, is_noisy)
  removed = clean.removal("aum_threshold", scores, found.flags, is_noisy)
  rows = [dict(pipeline="no cleaning", test_accuracy=float(
      found.history["test_accuracy"].iloc[-1]), seconds=t.seconds)]
  with settings.Timer() as tr:
    out = protocol.retrain(config, ds, labels, ~removed, os.path.join(workdir, "retrain"), mesh)
  rows.append(dict(pipeline="retrain", test_accuracy=out["test_accuracy"],
                   seconds=t.seconds + tr.seconds, removed=out["removed"],
                   epoch=config.num_epochs, **clean.precision_recall(removed, is_noisy)))
  for at, fresh in ((at, fresh) for at in config.exp.at_epochs for fresh in (True, False)):
    c = settings.with_overrides(config, {"clean.method": "in_run", "clean.at_epoch": at,
                                         "clean.fresh_optimizer": fresh})
    name = f"in_run {f'@{at}' if at else 'close'} {'fresh' if fresh else 'same'}"
    with settings.Timer() as ti:
      got = protocol.record(c, ds, labels, os.path.join(workdir, settings.slug(name)), mesh)
    s = protocol.in_run_summary(got, is_noisy)
    rows.append(dict(pipeline=name, test_accuracy=s["test_accuracy"], seconds=ti.seconds,
                     removed=s["removed"], epoch=s["epoch"], precision=s.get("precision"),
                     recall=s.get("recall")))
  return [dict(r, wrong_labels=int(is_noisy.sum())) for r in rows]


def run(config, workdir: str, command: str | None = None) -> pd.DataFrame:
  """One row per (setting, pipeline); clean_in_run.csv/.md are rewritten after every setting."""
  return settings.noise_and_cifar10n(config, workdir, _setting, write_tables, command)


def write_tables(config, workdir: str, df: pd.DataFrame, seconds: float,
                 command: str | None) -> None:
  """clean_in_run.csv and clean_in_run.md from `run`'s rows."""
  names = list(dict.fromkeys(df["setting"]))

  def pivot(value):
    p = df.groupby(["setting", "pipeline"], sort=False)[value].first().unstack()
    return p.loc[names, list(dict.fromkeys(df["pipeline"]))].reset_index().rename_axis(
        columns=None)

  removal = df.dropna(subset=["removed"])[["setting", "pipeline", "wrong_labels", "epoch",
                                           "removed", "precision", "recall"]].astype(
                                               {"removed": int, "epoch": "Int64"})
  tables.write_outputs(
      config, workdir, "clean_in_run", "Cleaning inside the run against detect-then-retrain",
      df, [("Clean-test accuracy", pivot("test_accuracy")),
           ("Wall seconds (retrain: the detection run and the retraining)", pivot("seconds"),
            ".0f"),
           ("Removed: after how many epochs (retrain: a new run of that many), count, "
            "precision and recall against the known wrong labels", removal)],
      seconds, command,
      notes=[f"Default config: model {config.model.name}, {config.num_epochs} epochs, batch "
             f"{config.batch_size}, SGD lr {config.optimizer.lr} momentum "
             f"{config.optimizer.momentum}, schedule {config.optimizer.schedule}, threshold "
             "copies; the retraining has the same recipe.",
             "retrain removes the default run's flagged set (the early window's count, top by "
             "`combined`); in_run removes what is flagged when the window closes (close: "
             "with the threshold copies) or after epoch k (@k: the count of the window so "
             "far; the copies stay), then trains on the rest to the last epoch.",
             f"Asymmetric noise pairs {config.noise.pairs} (source:target).",
             "One seed; with 2,000 test images a difference of ~1 point is within noise."])


if __name__ == "__main__":
  settings.cli("experiments.clean_in_run", run)
