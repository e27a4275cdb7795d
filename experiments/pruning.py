"""Data Diet (Paul et al. 2021): test accuracy after keeping only the hardest examples.

One short scoring run (`exp.score`: its epochs, members and schedule) gives every example's
EL2N (averaged over its presentations in that run, early in training as the paper's score,
and over the members, as the paper averages over seeds) and GraNd over the same members, at
initialisation (`grand`) and, as the paper also does, a few epochs in: after the scoring
run's last epoch (`grand_trained`, its final model, by `grand.After` in the same run). For
each fraction f in `exp.fractions` and each of `exp.scores` the round(f * N) highest-scoring
examples (`random`: a seeded random subset) are kept and a model is retrained from scratch on
them with the experiment's recipe, evaluated on the clean test set; one keep-all retraining
gives the full-data row.

  python -m experiments.pruning --config=configs/exp_pruning.py --workdir=runs/exp_pruning
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from experiments import settings, tables
from jaxclean import clean, grand, protocol

SCORES = ("el2n", "grand", "grand_trained", "random")
GRANDS = ("grand", "grand_trained")


def hardest(values: np.ndarray, k: int) -> np.ndarray:
  """Mask of the k highest values (ties by index)."""
  keep = np.zeros(len(values), bool)
  keep[np.argsort(-values, kind="stable")[:k]] = True
  return keep


def input_norms(ds) -> np.ndarray:
  """||(x - mean) / std||_2 of every training image, read in chunks."""
  mean, std = ds.mean_std()
  images, n = ds.train.images, len(ds.train.labels)
  return np.concatenate([
      np.linalg.norm(((images[np.arange(s, min(s + 4096, n))] - mean) / std).reshape(
          min(4096, n - s), -1), axis=1) for s in range(0, n, 4096)])


def _setting(config, ds, labels, is_noisy, workdir, mesh) -> list[dict]:
  bad = [s for s in config.exp.scores if s not in SCORES]
  if bad:
    raise ValueError(f"unknown scores {bad}; valid: {', '.join(SCORES)}")
  s = config.exp.score
  trained = "grand_trained" in config.exp.scores
  scoring = settings.with_overrides(config, {"num_epochs": s.num_epochs, "ensemble": s.ensemble,
                                             "optimizer.schedule": s.schedule,
                                             "grand.epochs": s.num_epochs if trained else -1})
  score_dir = os.path.join(workdir, "score")
  with settings.Timer() as t:
    found = protocol.record(scoring, ds, labels, score_dir, mesh)
    # The run's `grand` is after its last epoch; at initialisation needs no training.
    df = protocol.score_table(found, labels, is_noisy).rename(columns={"grand": "grand_trained"})
    if "grand" in config.exp.scores:
      df["grand"] = grand.After(settings.with_overrides(scoring, {"grand.epochs": 0}), ds, labels,
                                ds.num_classes, mesh, score_dir).value()
  n = len(labels)
  kept = [("full data", 1.0, np.ones(n, bool))]
  for f in config.exp.fractions:
    k = int(round(f * n))
    kept += [(name, f, ~clean.removal("random", df, None, None, seed=config.clean.seed,
                                      count=n - k) if name == "random"
              else hardest(df[name].to_numpy(), k)) for name in config.exp.scores]
  rows = []
  for name, f, keep in kept:
    with settings.Timer() as tr:
      out = protocol.retrain(config, ds, labels, keep,
                             os.path.join(workdir, f"retrain_{settings.slug(name)}_{f:g}"), mesh)
    counts = np.bincount(labels[keep], minlength=ds.num_classes) / np.bincount(
        labels, minlength=ds.num_classes)
    rows.append(dict(score=name, fraction=f, kept=out["kept"],
                     test_accuracy=out["test_accuracy"], least_kept_class=float(counts.min()),
                     seconds=round(tr.seconds, 1)))
  rows[0]["scoring_seconds"] = round(t.seconds, 1)
  norms = pd.Series(input_norms(ds)).rank() if set(GRANDS) & set(df) else None
  for g in (g for g in GRANDS if g in df):
    rows[0][f"el2n_{g}_spearman"] = float(df["el2n"].rank().corr(df[g].rank()))
    rows[0][f"{g}_input_norm_spearman"] = float(df[g].rank().corr(norms))
  if set(GRANDS) <= set(df):
    rows[0]["grand_grand_trained_spearman"] = float(df["grand"].rank().corr(
        df["grand_trained"].rank()))
  return rows


def run(config, workdir: str, command: str | None = None) -> pd.DataFrame:
  """One row per (score, fraction) with the retrained test accuracy, and the full-data row;
  writes pruning.csv/.md."""
  with settings.Timer() as total:
    df = settings.for_each_setting(config, workdir, settings.noise_settings((("none", 0),)),
                                   _setting)
  full = df[df["score"] == "full data"].iloc[0]
  def pivot(value):
    t = df[df["score"] != "full data"].pivot_table(index="fraction", columns="score",
                                                   values=value, sort=False)
    t = t.sort_index(ascending=False).reset_index().rename_axis(columns=None)
    t.insert(1, "kept", [int(round(f * full["kept"])) for f in t["fraction"]])
    return t

  s = config.exp.score
  notes = [f"Data {config.data.name} (train_size={config.data.train_size or 'all'}), clean labels, "
           f"model {config.model.name}; every retraining: {config.num_epochs} epochs, "
           f"{config.optimizer.schedule} lr {config.optimizer.lr}, from scratch, same seed.",
           f"Full data: test accuracy {full['test_accuracy']:.4f} with all {int(full['kept'])} "
           "examples.",
           f"EL2N: ||softmax - onehot||_2 averaged over every presentation of a {s.num_epochs}-"
           f"epoch scoring run ({s.schedule} lr {config.optimizer.lr}), and over its "
           f"{s.ensemble} members (seeds); the paper scores at one early epoch (20 of 200 on "
           f"CIFAR-10) averaged over 10 seeds.",
           f"GraNd: ||grad of the loss||_2, eval mode, the mean over the same {s.ensemble} "
           f"members (jaxclean/grand.py); `grand` at initialisation, `grand_trained` after the "
           f"scoring run's {s.num_epochs} epochs (the model EL2N's scoring run ends with); the paper "
           "has both (at initialisation and a few epochs in).",
           "Kept: the round(fraction * N) highest scores (the hardest), or a seeded random subset.",
           "Spearman rank correlations: "
           + "; ".join(f"{a} and {b} {full.get(key, np.nan):.3f}" for a, b, key in (
               ("EL2N", "GraNd at init", "el2n_grand_spearman"),
               ("EL2N", "GraNd trained", "el2n_grand_trained_spearman"),
               ("GraNd at init", "GraNd trained", "grand_grand_trained_spearman"),
               ("GraNd at init", "the normalised input's norm", "grand_input_norm_spearman"),
               ("GraNd trained", "the normalised input's norm",
                "grand_trained_input_norm_spearman"))) + ".",
           f"Scoring run {full['scoring_seconds']:.0f} s (training and GraNd); each retraining's "
           "seconds are in pruning.csv."]
  tables.write_outputs(config, workdir, "pruning",
                       "Keeping the hardest examples by EL2N or GraNd versus random (Data Diet)",
                       df, [("Clean-test accuracy after training on the kept fraction",
                             pivot("test_accuracy")),
                            ("Share of the least-kept class that was kept", pivot("least_kept_class"),
                             ".3f")],
                       total.seconds, command, notes)
  return df


if __name__ == "__main__":
  settings.cli("experiments.pruning", run)
