"""Real human label noise: CIFAR-10N label sets against the verified clean labels.

For each label set (`exp.label_sets`, e.g. aggre, random1, worst) the
training labels are CIFAR-10N's and the ground truth is `label !=
clean label` (the loader's `train_clean_labels`). One `train.detect` with AUM
threshold samples gives every score's detection quality (AUROC, AP,
precision at k = #wrong) and the AUM-threshold flags' precision and recall.

  python -m experiments.real_noise --config=configs/exp_real_noise.py --workdir=runs/exp_real_noise
"""

from __future__ import annotations

import os

import pandas as pd

from experiments import settings, tables
from jaxclean import clean, protocol
from jaxclean import scores as scores_lib


def label_set_settings(names) -> list[tuple[str, dict]]:
  names = list(names)
  if not names:
    raise ValueError("no label sets given")
  return [(name, {"data.cifar10_labels": name, "noise.kind": "none"}) for name in names]


def _setting(config, ds, labels, is_noisy, workdir, mesh) -> list[dict]:
  if is_noisy is None:
    raise ValueError(f"label set {config.data.cifar10_labels!r} has no ground truth: use a "
                     "CIFAR-10N set (aggre, random1..3, worst) with noise.kind=none")
  with settings.Timer() as t:
    found = protocol.record(config, ds, labels, os.path.join(workdir, "detect"), mesh)
    scores = protocol.score_table(found, labels, is_noisy)
  base = dict(examples=len(labels), noise_rate=float(is_noisy.mean()),
              test_accuracy=float(found.history["test_accuracy"].dropna().iloc[-1]),
              seconds=round(t.seconds, 1))
  rows = [dict(base, **r) for r in settings.detection_rows(scores, is_noisy)]
  if found.flags is not None:
    flags = found.flags["flagged"]
    rows.append(dict(base, method="aum_threshold", k=int(is_noisy.sum()),
                     flagged=int(flags.sum()), **clean.precision_recall(flags, is_noisy)))
  return rows


def run(config, workdir: str, command: str | None = None) -> pd.DataFrame:
  """One row per (label set, method): the scores' auroc/ap/precision_at_k and an
  `aum_threshold` row with flagged/precision/recall; writes real_noise.csv/.md."""
  with settings.Timer() as total:
    df = settings.for_each_setting(config, workdir, label_set_settings(config.exp.label_sets),
                                 _setting)
  names = list(dict.fromkeys(df["setting"]))
  order = [m for m in scores_lib.SCORES if m in set(df["method"])]
  scored = df[df["method"].isin(order)]

  def pivot(value):
    p = scored.pivot(index="setting", columns="method", values=value)
    return p.loc[names, order].reset_index().rename_axis(columns=None)

  sections = [("AUROC", pivot("auroc")), ("Average precision", pivot("ap")),
              ("Precision at k = number of wrong labels", pivot("precision_at_k"))]
  if "aum_threshold" in set(df["method"]):
    aum = df[df["method"] == "aum_threshold"][["setting", "examples", "noise_rate", "k",
                                               "flagged", "precision", "recall",
                                               "test_accuracy", "seconds"]]
    aum = aum.astype({"examples": int, "k": int, "flagged": int})
    sections.append(("AUM threshold-sample flags against the clean labels",
                     aum.rename(columns={"k": "wrong labels"})))
  notes = [f"CIFAR-10 train_size={config.data.train_size or 'all (50000)'}, model "
           f"{config.model.name}, {config.num_epochs} epochs, augment {config.augment.to_dict()}; "
           f"threshold samples: {config.aum.threshold_samples}; test_accuracy is "
           "run 0's, on the clean test set; seconds is the whole detection (both runs)."]
  tables.write_outputs(config, workdir, "real_noise",
                       "Detection of real (CIFAR-10N) label noise", df, sections,
                       total.seconds, command, notes)
  return df


if __name__ == "__main__":
  settings.cli("experiments.real_noise", run)
