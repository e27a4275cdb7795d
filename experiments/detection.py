"""Detection quality of every score, and of cleanlab, under synthetic label noise.

For each noise setting: one training run records the dynamics, and every
score (`jaxclean.scores.SCORES`) is ranked against the injected wrong labels
(AUROC, average precision, precision at k = #wrong). The `cleanlab` row is
confident learning on out-of-sample probabilities from 4-fold
cross-validation of the same model and epochs (`third_party/cleanlab_adapter.py`);
its ranking is `get_label_quality_scores` and `flagged`/`flag_precision`/
`flag_recall` describe the set `find_label_issues` returns. `seconds` is the
wall time of each method's whole pipeline (training included): one run gives
all of jaxclean's scores, so they share one time.

  python -m experiments.detection --config=configs/exp_detection.py --workdir=runs/exp_detection
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from experiments import settings, tables
from jaxclean import clean, protocol, quality
from jaxclean import scores as scores_lib
from third_party import cleanlab_adapter


def _setting(config, ds, labels, is_noisy, workdir, mesh) -> list[dict]:
  if is_noisy is None:
    raise ValueError("detection needs known wrong labels (injected noise or CIFAR-10N)")
  with settings.Timer() as t:
    found = protocol.record(config, ds, labels, os.path.join(workdir, "detect"), mesh)
    scores = protocol.score_table(found, labels, is_noisy)
  rows = [dict(r, seconds=round(t.seconds, 1)) for r in settings.detection_rows(scores, is_noisy)]
  if config.exp.cleanlab and cleanlab_adapter.available():
    mean, std = ds.mean_std()
    out = cleanlab_adapter.label_issues(config, ds.train.images, labels, ds.num_classes, mean,
                                        std, os.path.join(workdir, "cleanlab"), mesh,
                                        folds=config.exp.cleanlab_folds)
    q = quality.quality(-out.quality, is_noisy)
    pr = clean.precision_recall(out.is_issue, is_noisy)
    rows.append(dict(method="cleanlab", **{k: float(v) for k, v in q.items()},
                     flagged=int(out.is_issue.sum()),
                     flag_precision=pr["precision"] if out.is_issue.any() else np.nan,
                     flag_recall=pr["recall"], seconds=round(out.seconds, 1)))
  return rows


def run(config, workdir: str, command: str | None = None) -> pd.DataFrame:
  """One row per (setting, method): auroc, ap, precision_at_k, recall_at_k, k, seconds
  (+ flagged, flag_precision, flag_recall for cleanlab); writes detection.csv/.md."""
  notes = []
  if config.exp.cleanlab and not cleanlab_adapter.available():
    notes.append("cleanlab is not installed (pip install -e '.[peers]'): no cleanlab row.")
    print("note: " + notes[-1])
  with settings.Timer() as total:
    df = settings.for_each_setting(config, workdir, settings.noise_settings(config.exp.settings),
                                 _setting)
  write_tables(config, workdir, df, total.seconds, command, notes)
  return df


def write_tables(config, workdir: str, df: pd.DataFrame, seconds: float,
                 command: str | None, notes=()) -> str:
  """detection.csv and detection.md from `run`'s table."""
  df = df.copy()
  for col in ("flagged", "flag_precision", "flag_recall"):
    if col not in df:
      df[col] = np.nan
  order = [m for m in [*scores_lib.SCORES, "cleanlab"] if m in set(df["method"])]
  names = list(dict.fromkeys(df["setting"]))

  def pivot(value):
    p = df.pivot(index="setting", columns="method", values=value)
    return p.loc[names, order].reset_index().rename_axis(columns=None)

  times = pd.DataFrame({"setting": names})
  jaxclean_rows = df[df["method"] != "cleanlab"].groupby("setting", sort=False)["seconds"]
  times["jaxclean (one run, every score)"] = jaxclean_rows.first().loc[names].to_numpy()
  sections = [("AUROC", pivot("auroc")), ("Average precision", pivot("ap")),
              ("Precision at k = number of wrong labels", pivot("precision_at_k"))]
  if "cleanlab" in order:
    cl = df[df["method"] == "cleanlab"].set_index("setting").loc[names]
    times[f"cleanlab ({config.exp.cleanlab_folds}-fold CV + cleanlab)"] = cl["seconds"].to_numpy()
    sections.append(("Wall seconds of each pipeline (training included)", times, ".0f"))
    sections.append(("cleanlab find_label_issues: flagged set against the wrong labels",
                     pd.DataFrame({"setting": names,
                                   "wrong labels": cl["k"].astype(int).to_numpy(),
                                   "flagged": cl["flagged"].astype(int).to_numpy(),
                                   "precision": cl["flag_precision"].to_numpy(),
                                   "recall": cl["flag_recall"].to_numpy()})))
  else:
    sections.append(("Wall seconds of each pipeline (training included)", times, ".0f"))
  notes = list(notes) + [
      f"Data {config.data.name} (train_size={config.data.train_size or 'all'}), model "
      f"{config.model.name}, {config.num_epochs} epochs, one run per setting for every "
      "jaxclean score (so they share one time).",
      f"cleanlab: {config.exp.cleanlab_folds}-fold cross-validated probabilities of the "
      "same model and epochs, ranked by get_label_quality_scores (self-confidence).",
      "variability (Swayamdipta et al.) marks ambiguous examples, not wrong ones: a label "
      "that is consistently wrong has low variability, hence AUROC < 0.5."]
  return tables.write_outputs(config, workdir, "detection", "Detection quality of every score",
                              df, sections, seconds, command, notes)

if __name__ == "__main__":
  settings.cli("experiments.detection", run)
