"""jaxclean against its peers on the same labels, model class and epochs, with wall times.

For each setting (Fashion-MNIST 12k with uniform and asymmetric noise, a
CIFAR-10N subset) and each method, the AUROC and average precision of its
ranking against the known wrong labels, the flagged set's precision and
recall, the estimated number of wrong labels, its error and its interval (and whether
that covers the truth), how often the label it proposes is the true one (over all the
truly wrong labels and over the flagged wrong ones), and the wall time of the whole
pipeline (training included):

  jaxclean          the default config: one run with threshold copies gives
                    every score, `combined`, the flags and the estimate
  jaxclean xK       the same with `ensemble = K` members trained in one step
  aum_reference     the AUM authors' library (`aum` on PyPI) recording a PyTorch
                    model of the same class, recipe and epochs
                    (third_party/aum_reference.py; needs the `peers_torch` extra)
  cleanlab          confident learning on 4-fold cross-validated probabilities
                    of jaxclean's model (third_party/cleanlab_adapter.py): its
                    `find_label_issues` flags and `num_label_issues` count, and
                    the out-of-fold argmax as its proposed label

  python -m experiments.compare --config=configs/exp_compare.py --workdir=runs/exp_compare
"""

from __future__ import annotations

import importlib.util
import os

import pandas as pd

from experiments import settings, tables
import numpy as np

from jaxclean import clean, protocol, quality
from jaxclean import scores as scores_lib
from third_party import cleanlab_adapter

SCORES = ("combined", "aum", "el2n")  # the recommended score and the best single ones


def _quality(suspicion, is_noisy) -> dict:
  q = quality.quality(suspicion, is_noisy)
  return dict(auroc=q["auroc"], ap=q["ap"])


def _flag_rows(flagged, is_noisy) -> dict:
  pr = clean.precision_recall(flagged, is_noisy)
  return dict(flagged=int(flagged.sum()), precision=pr["precision"], recall=pr["recall"])


def _truth(config, ds):
  return ds.train.labels if config.noise.kind != "none" else ds.train_clean_labels


def _proposed(proposed, truth, is_noisy, flagged) -> dict:
  s = quality.suggestions(proposed, proposed, truth, is_noisy, flagged)
  return dict(proposed_right=s["suggested_right"],
              proposed_right_flagged=s["suggested_right_flagged"])


def _jaxclean(config, ds, labels, is_noisy, workdir, mesh, name) -> list[dict]:
  with settings.Timer() as t:
    found = protocol.record(config, ds, labels, workdir, mesh)
    scores = protocol.score_table(found, labels, is_noisy)
  rows = [dict(pipeline=name, score=s, **_quality(
      scores_lib.suspicion(s, scores[s].to_numpy()), is_noisy), seconds=t.seconds)
          for s in SCORES]
  flagged = np.asarray(found.flags["flagged"], bool)
  truth = _truth(config, ds)
  interval = protocol.count_interval(found.history, config.aum.skip_epochs) or [np.nan] * 2
  rows[0].update(_flag_rows(flagged, is_noisy),
                 estimate=protocol.estimated_wrong_labels(found.flags),
                 interval_low=interval[0], interval_high=interval[1],
                 **_proposed(scores["suggested_label"].to_numpy(), truth, is_noisy, flagged),
                 final_prediction_right=quality.suggestions(
                     scores["final_prediction"].to_numpy(), scores["final_prediction"].to_numpy(),
                     truth, is_noisy, flagged)["suggested_right"])
  return rows


def _setting(config, ds, labels, is_noisy, workdir, mesh) -> list[dict]:
  if is_noisy is None:
    raise ValueError("the comparison needs known wrong labels (injected noise or CIFAR-10N)")
  rows = _jaxclean(config, ds, labels, is_noisy, os.path.join(workdir, "jaxclean"), mesh,
                   "jaxclean")
  if config.exp.ensemble > 1:
    c = settings.with_overrides(config, {"ensemble": config.exp.ensemble})
    rows += _jaxclean(c, ds, labels, is_noisy, os.path.join(workdir, "ensemble"), mesh,
                      f"jaxclean x{config.exp.ensemble}")
  if "aum_reference" in config.exp.peers and importlib.util.find_spec("aum"):
    from third_party import aum_reference
    o = config.optimizer
    out = aum_reference.run(ds.train.images, labels, ds.num_classes, model=config.model.name,
                            epochs=config.num_epochs, batch_size=config.batch_size, lr=o.lr,
                            momentum=o.momentum, weight_decay=o.weight_decay, seed=config.seed,
                            skip_epochs=config.aum.skip_epochs)
    rows.append(dict(pipeline="aum_reference", score="aum",
                     **_quality(-out["aum"], is_noisy), seconds=out["seconds"]))
  if "cleanlab" in config.exp.peers and cleanlab_adapter.available():
    mean, std = ds.mean_std()
    c = settings.with_overrides(config, {"aum.threshold_samples": "none"})
    out = cleanlab_adapter.label_issues(c, ds.train.images, labels, ds.num_classes, mean, std,
                                        os.path.join(workdir, "cleanlab"), mesh, folds=4)
    import cleanlab.count
    rows.append(dict(pipeline="cleanlab", score="self_confidence",
                     **_quality(-out.quality, is_noisy),
                     **_flag_rows(out.is_issue, is_noisy), estimate=int(out.is_issue.sum()),
                     num_label_issues=int(cleanlab.count.num_label_issues(labels, out.pred_probs)),
                     **_proposed(out.pred_probs.argmax(1), _truth(config, ds), is_noisy,
                                 out.is_issue),
                     seconds=out.seconds))
  return [dict(r, wrong_labels=int(is_noisy.sum())) for r in rows]


def run(config, workdir: str, command: str | None = None) -> pd.DataFrame:
  """One row per (setting, method); compare.csv/.md are rewritten after every setting."""
  return settings.noise_and_cifar10n(config, workdir, _setting, write_tables, command)


def write_tables(config, workdir: str, df: pd.DataFrame, seconds: float,
                 command: str | None) -> None:
  """compare.csv and compare.md from `run`'s rows."""
  df = df.assign(method=df["pipeline"] + " " + df["score"])
  names = list(dict.fromkeys(df["setting"]))

  def pivot(value, column):
    order = list(dict.fromkeys(df[column]))
    p = df.groupby(["setting", column], sort=False)[value].first().unstack()
    return p.loc[names, order].reset_index().rename_axis(columns=None)

  for column in ("num_label_issues", "final_prediction_right", "interval_low",
                 "interval_high"):
    if column not in df:
      df[column] = np.nan
  flags = df.dropna(subset=["flagged"])[["setting", "pipeline", "wrong_labels", "estimate",
                                         "num_label_issues", "flagged", "precision", "recall"]]
  low, high = df.loc[flags.index, "interval_low"], df.loc[flags.index, "interval_high"]
  flags = flags.assign(estimate_error=(flags["estimate"] - flags["wrong_labels"])
                       / flags["wrong_labels"],
                       interval=[f"{a:.0f}-{b:.0f}" if pd.notna(b) else "–"
                                 for a, b in zip(low, high)],
                       covers=[("yes" if a <= w <= b else "NO") if pd.notna(b) else "–"
                               for a, b, w in zip(low, high, flags["wrong_labels"])])
  proposed = df.dropna(subset=["flagged"])[["setting", "pipeline", "proposed_right",
                                            "proposed_right_flagged", "final_prediction_right"]]
  tables.write_outputs(
      config, workdir, "compare", "jaxclean against the AUM library and cleanlab", df,
      [("AUROC against the known wrong labels", pivot("auroc", "method")),
       ("Average precision", pivot("ap", "method")),
       ("Flagged set and estimated number of wrong labels", flags.astype(
           {"wrong_labels": int, "estimate": int, "flagged": int})),
       ("Proposed label right, over the truly wrong labels (all; flagged) (jaxclean: the "
        "suggestion, and the final model's prediction; cleanlab: the out-of-fold argmax)",
        proposed),
       ("Wall seconds of each pipeline (training included)", pivot("seconds", "pipeline"),
        ".0f")],
      seconds, command,
      notes=[f"Default config: model {config.model.name} (auto: the small CNN for these "
             f"images), {config.num_epochs} epochs, batch {config.batch_size}, SGD lr "
             f"{config.optimizer.lr} momentum {config.optimizer.momentum}, schedule "
             f"{config.optimizer.schedule}; the same recipe for every method.",
             "jaxclean rows share one run (one time): every score comes from it.",
             f"Asymmetric noise pairs {config.noise.pairs} (source:target)."])


if __name__ == "__main__":
  settings.cli("experiments.compare", run)
