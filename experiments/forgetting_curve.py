"""Toneva et al. 2019: test accuracy after removing the least-forgotten examples.

One training run records forgetting counts. For each fraction f in
`exp.fractions`, k = round(f * N) examples are removed and a model is
retrained from scratch on the rest, evaluated on the clean test set:

  least_forgotten  the k lowest forgetting counts (unforgettable examples
                   first; ties broken by a seeded random order)
  random           k random examples (seeded by clean.seed)

`clean.removal('score', ...)` removes the *highest* forgetting counts, so
the least-forgotten removal hands it a copy of the score table whose
forgetting column is negated (plus a tie-breaking offset in [0, 0.5)). f = 0
is one keep-all retraining shared by both rows.

  python -m experiments.forgetting_curve --config=configs/exp_forgetting_curve.py \
      --workdir=runs/exp_forgetting_curve
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from experiments import settings, tables
from jaxclean import clean, protocol, rng


def fractions(config) -> list[float]:
  out = [float(f) for f in config.exp.fractions]
  if not out or any(not 0 <= f < 1 for f in out):
    raise ValueError(f"exp.fractions must be in [0, 1), got {config.exp.fractions!r}")
  return out


def least_forgotten(forgetting: np.ndarray, k: int, seed: int) -> np.ndarray:
  """Mask of the k least-forgotten examples, ties broken by a seeded random order."""
  tiebreak = rng.numpy(seed, "tiebreak").permutation(len(forgetting))
  mask = np.zeros(len(forgetting), bool)
  mask[np.lexsort((tiebreak, forgetting))[:k]] = True
  return mask


def _setting(config, ds, labels, is_noisy, workdir, mesh) -> list[dict]:
  found = protocol.record(config, ds, labels, os.path.join(workdir, "detect"), mesh)
  forgetting = protocol.score_table(found, labels, is_noisy)["forgetting"].to_numpy()
  unforgettable = forgetting == 0  # learned and never forgotten
  n, rows = len(labels), []
  for f in fractions(config):
    k = int(round(f * n))
    kinds = ["least_forgotten", "random"] if k else ["none"]
    for kind in kinds:
      if kind == "least_forgotten":
        removed = least_forgotten(forgetting, k, config.clean.seed)
      else:
        removed = clean.removal("random" if k else "keep_all", pd.DataFrame(index=range(n)),
                                None, is_noisy, seed=config.clean.seed, count=k)
      method = {"least_forgotten": "score", "random": "random", "none": "keep_all"}[kind]
      with settings.Timer() as t:
        s = protocol.retrain(config, ds, labels, ~removed,
                             os.path.join(workdir, f"k{k}", f"retrain_{method}"), mesh)
      for name in (["least_forgotten", "random"] if kind == "none" else [kind]):
        rows.append(dict(fraction=f, k=k, removal=name, kept=s["kept"],
                         test_accuracy=s["test_accuracy"],
                         removed_unforgettable=int(np.sum(removed & unforgettable)),
                         unforgettable=int(unforgettable.sum()),
                         removed_mean_forgetting=(float(forgetting[removed].mean())
                                                  if removed.any() else np.nan),
                         seconds=round(t.seconds, 1)))
  return rows


def run(config, workdir: str, command: str | None = None) -> pd.DataFrame:
  """One row per (fraction, removal) with the retrained test accuracy; writes
  forgetting_curve.csv/.md."""
  with settings.Timer() as total:
    df = settings.for_each_setting(config, workdir, settings.noise_settings(config.exp.noise),
                                 _setting)
  curve = df.pivot_table(index=["setting", "fraction", "k"], columns="removal",
                         values="test_accuracy", sort=False).reset_index().rename_axis(columns=None)
  curve["difference"] = curve["least_forgotten"] - curve["random"]
  lf = df[df["removal"] == "least_forgotten"][["setting", "fraction", "k",
                                               "removed_unforgettable", "unforgettable",
                                               "removed_mean_forgetting"]]
  notes = [f"Data {config.data.name} (train_size={config.data.train_size or 'all'}), model "
           f"{config.model.name}, {config.num_epochs} epochs for the forgetting counts and for "
           f"every retraining ({protocol.retrain_config(config).num_epochs} epochs), same seed.",
           "Unforgettable = learned at some presentation and never forgotten (forgetting 0)."]
  tables.write_outputs(config, workdir, "forgetting_curve",
                       "Removing the least-forgotten examples versus random ones", df,
                       [("Clean-test accuracy after removing k examples", curve),
                        ("What the least-forgotten removal took", lf)],
                       total.seconds, command, notes)
  return df


if __name__ == "__main__":
  settings.cli("experiments.forgetting_curve", run)
