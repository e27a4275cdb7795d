"""Test error after cleaning: the protocol of Pleiss et al. 2020 (AUM), Table 1.

For each noise setting: one `train.detect` with AUM threshold samples (two
runs, giving the AUM flags and every score), then one retraining from scratch
per removal method, evaluated on the clean test set:

  keep_all       retrain on everything (no removal)
  oracle         remove exactly the injected wrong labels
  random         remove as many random examples as AUM flagged
  aum_threshold  remove what AUM threshold samples flagged
  forgetting     remove the top k by forgetting count (k = as many as AUM
                 flagged, or the number of wrong labels with exp.topk='noisy')

  python -m experiments.cleaning --config=configs/exp_cleaning.py --workdir=runs/exp_cleaning
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from experiments import settings, tables
from jaxclean import clean, protocol

METHODS = ("keep_all", "oracle", "random", "aum_threshold", "forgetting")
# Experiment method -> (clean.removal method, clean.score).
_LIB = {"keep_all": ("keep_all", ""), "oracle": ("oracle", ""), "random": ("random", ""),
        "aum_threshold": ("aum_threshold", ""), "forgetting": ("score", "forgetting")}


def methods(config) -> list[str]:
  names = list(config.exp.methods)
  bad = [m for m in names if m not in METHODS]
  if bad:
    raise ValueError(f"unknown methods {bad}; valid: {', '.join(METHODS)}")
  return names


def _setting(config, ds, labels, is_noisy, workdir, mesh) -> list[dict]:
  if is_noisy is None:
    raise ValueError("cleaning needs known wrong labels (injected noise or CIFAR-10N)")
  if config.aum.threshold_samples == "none":
    raise ValueError("cleaning needs aum.threshold_samples (the AUM flags)")
  with settings.Timer() as t:
    found = protocol.record(config, ds, labels, os.path.join(workdir, "detect"), mesh)
  scores = protocol.score_table(found, labels, is_noisy)
  flagged = int(found.flags["flagged"].sum())
  k = flagged if config.exp.topk == "flagged" else int(is_noisy.sum())
  row = dict(examples=len(labels), noisy=int(is_noisy.sum()), aum_flagged=flagged,
             topk=k, detect_seconds=round(t.seconds, 1))
  for m in methods(config):
    lib_method, score = _LIB[m]
    count = flagged if m == "random" else k
    removed = clean.removal(lib_method, scores, found.flags, is_noisy, score=score or "aum",
                            seed=config.clean.seed, count=count)
    with settings.Timer() as t:
      summary = protocol.retrain(config, ds, labels, ~removed,
                                 os.path.join(workdir, f"retrain_{lib_method}"), mesh)
    pr = clean.precision_recall(removed, is_noisy)
    row.update({f"{m}_error": 100.0 * (1.0 - summary["test_accuracy"]),
                f"{m}_removed": summary["removed"],
                f"{m}_precision": pr["precision"] if removed.any() else np.nan,
                f"{m}_recall": pr["recall"],
                f"{m}_seconds": round(t.seconds, 1)})
  return [row]


def run(config, workdir: str, command: str | None = None) -> pd.DataFrame:
  """One row per noise setting; columns `<method>_error` (test error, %),
  `_removed`, `_precision`, `_recall`, `_seconds`; writes cleaning.csv/.md."""
  with settings.Timer() as total:
    df = settings.for_each_setting(config, workdir, settings.noise_settings(config.exp.settings),
                                 _setting)
  write_tables(config, workdir, df, total.seconds, command)
  return df


def write_tables(config, workdir: str, df: pd.DataFrame, seconds: float,
                 command: str | None) -> str:
  """cleaning.csv and cleaning.md from `run`'s table."""
  names = methods(config)
  errors = df[["setting", "noisy"] + [f"{m}_error" for m in names]].rename(
      columns={f"{m}_error": m for m in names})
  removal = df[["setting", "noisy"]].copy()
  for m in names:
    removal[m] = [f"{r} ({'–' if np.isnan(p) else f'{p:.3f}'} / {q:.3f})" for r, p, q in
                  zip(df[f"{m}_removed"], df[f"{m}_precision"], df[f"{m}_recall"])]
  k_rule = ("as many as AUM flagged" if config.exp.topk == "flagged"
            else "the number of wrong labels")
  return tables.write_outputs(
      config, workdir, "cleaning", "Test error after removing suspected wrong labels",
      df, [("Clean-test error (%) after retraining", errors, ".2f"),
           ("Removed: count (precision / recall against the injected noise)", removal)],
      seconds, command,
      notes=[f"Data {config.data.name} (train_size={config.data.train_size or 'all'}), model "
             f"{config.model.name}, {config.num_epochs} epochs; retraining "
             f"{protocol.retrain_config(config).num_epochs} epochs from scratch, same seed, per column.",
             "aum_threshold: flagged by AUM threshold samples (two runs, "
             f"{config.aum.percentile:g}th percentile). random: as many random examples as "
             f"AUM flagged. forgetting: the top k by forgetting count, k = {k_rule}.",
             f"Asymmetric noise flips `rate` of each source class of the pairs "
             f"{config.noise.pairs or 'of Patrini et al. (CIFAR-10)'} (source:target), so "
             "fewer than `rate` of all labels are wrong (column noisy).",
             "Precision '–': nothing removed."])


if __name__ == "__main__":
  settings.cli("experiments.cleaning", run)
