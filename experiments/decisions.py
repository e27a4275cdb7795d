"""From flags to a better data set: the decisions (`jaxclean.decide`) against the truth.

For each case (Fashion-MNIST 12k with uniform and asymmetric noise, CIFAR-10N label sets on
the first `exp.cifar10_size` images), one default run with threshold copies
(`protocol.train_and_evaluate`, into WORKDIR/<case>; a case whose scores.csv is there is
read, not trained), then:

  labels     label accuracy of the given labels and of `corrected_labels.npy` (every
             `relabel` applied), the wrong labels fixed and the right ones broken, and
             the same for taking every flagged suggestion (label_issues.csv's
             predicted_label), what the run invited before
  reliability  P(given wrong) and P(suggestion right) against the observed rates, in ten
             bins pooled per family, and each case's expected calibration error (ECE)
  retrain    with exp.retrain: test accuracy after training from scratch (threshold copies
             off, the detection recipe) on the given labels, on the corrected labels, on
             the given labels less the flagged, and less the truly wrong (oracle)

  python -m experiments.decisions --config=configs/exp_decisions.py --workdir=runs/exp_decisions
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from experiments import settings, tables
from jaxclean import decide, protocol

BINS = np.linspace(0, 1, 11)
RETRAIN = ("given", "corrected", "flagged_removed", "oracle_removed")


def _detect(config, ds, workdir: str) -> pd.DataFrame:
  """The case's scores with the current rule's decisions: from a finished run's scores.csv
  (decided again: the decisions are a function of its columns), else trained."""
  if not os.path.isfile(os.path.join(workdir, "scores.csv")):
    protocol.train_and_evaluate(config, workdir, dataset=ds)
  return decide.again(workdir)


def _fixes(given, new, truth) -> dict:
  changed = new != given
  return dict(accuracy=float((new == truth).mean()), changed=int(changed.sum()),
              fixed=int((changed & (new == truth)).sum()),
              broken=int((changed & (given == truth)).sum()))


def _ece(p: np.ndarray, hit: np.ndarray) -> float:
  ok = np.isfinite(p)
  b = np.clip(np.digitize(p[ok], BINS) - 1, 0, len(BINS) - 2)
  return float(sum(abs(p[ok][b == i].mean() - hit[ok][b == i].mean()) * (b == i).sum()
                   for i in np.unique(b)) / ok.sum())


def _setting(config, ds, labels, is_noisy, workdir, mesh) -> list[dict]:
  truth = ds.train.labels if config.noise.kind != "none" else ds.train_clean_labels
  df = _detect(config, ds, workdir)
  given = df["given_label"].to_numpy()
  flagged = pd.read_csv(os.path.join(workdir, "label_issues.csv"))["is_label_issue"].to_numpy()
  auto = _fixes(given, decide.corrected(df), truth)
  invited = _fixes(given, np.where(flagged, df["suggested_label"], given), truth)
  p_wrong, p_sugg = 1 - df["p_given"].to_numpy(), df["p_suggested"].to_numpy()
  counts = decide.summary(df)
  row = dict(examples=len(df), wrong=int((given != truth).sum()),
             given_accuracy=float((given == truth).mean()),
             corrected_accuracy=auto["accuracy"], fixed=auto["fixed"], broken=auto["broken"],
             relabel=counts["relabel"], review=counts["review"],
             review_wrong=float((given != truth)[df["decision"] == "review"].mean())
             if counts["review"] else np.nan,
             flagged_accuracy=invited["accuracy"], flagged_fixed=invited["fixed"],
             flagged_broken=invited["broken"],
             ece_wrong=_ece(p_wrong, given != truth),
             ece_suggestion=_ece(p_sugg, df["suggested_label"].to_numpy() == truth),
             expected_wrong=float(np.nansum(p_wrong)))
  if config.exp.retrain:
    keep_all = np.ones(len(given), bool)
    variants = dict(given=(given, keep_all), corrected=(decide.corrected(df), keep_all),
                    flagged_removed=(given, ~flagged), oracle_removed=(given, given == truth))
    for name in RETRAIN:
      y, keep = variants[name]
      row[f"test_{name}"] = protocol.retrain(config, ds, y.astype(np.int32), keep,
                                             os.path.join(workdir, f"retrain_{name}"),
                                             mesh)["test_accuracy"]
  # Per-example columns for the pooled reliability tables (dropped from the CSV).
  row["_p"] = (p_wrong, given != truth, p_sugg, df["suggested_label"].to_numpy() == truth)
  return [row]


def reliability(rows: pd.DataFrame) -> pd.DataFrame:
  """Predicted against observed rates in ten bins of the probability, pooled per family."""
  out = []
  for family, part in rows.groupby(rows["setting"].str.startswith("CIFAR").map(
      {True: "CIFAR-10N", False: "Fashion-MNIST"})):
    for what, (pi, hi) in (("P(given wrong)", (0, 1)), ("P(suggestion right)", (2, 3))):
      p = np.concatenate([r[pi] for r in part["_p"]])
      hit = np.concatenate([r[hi] for r in part["_p"]])
      ok = np.isfinite(p)
      b = np.clip(np.digitize(p[ok], BINS) - 1, 0, len(BINS) - 2)
      for i in range(len(BINS) - 1):
        n = int((b == i).sum())
        out.append(dict(family=family, probability=what, bin=f"{BINS[i]:.1f}-{BINS[i + 1]:.1f}",
                        examples=n, predicted=p[ok][b == i].mean() if n else np.nan,
                        observed=hit[ok][b == i].mean() if n else np.nan))
  return pd.DataFrame(out)


def run(config, workdir: str, command: str | None = None) -> pd.DataFrame:
  """One row per case; writes decisions.csv/.md."""
  with settings.Timer() as total:
    df = settings.noise_and_cifar10n(config, workdir, _setting, lambda *a: None, command)
  write_tables(config, workdir, df, total.seconds, command)
  return df.drop(columns="_p")


def write_tables(config, workdir: str, df: pd.DataFrame, seconds: float,
                 command: str | None) -> str:
  labels = df[["setting", "examples", "wrong"]].copy()
  labels["given -> corrected"] = [f"{a:.3f} -> {b:.3f}" for a, b in
                                  zip(df["given_accuracy"], df["corrected_accuracy"])]
  labels["fixed / broken"] = [f"{f:,} / {b:,}" for f, b in zip(df["fixed"], df["broken"])]
  labels["relabel / review"] = [f"{a:,} / {b:,}" for a, b in zip(df["relabel"], df["review"])]
  labels["review: wrong share"] = df["review_wrong"]
  labels["every flagged suggestion taken"] = [
      f"{a:.3f} ({f:,} / {b:,})" for a, f, b in
      zip(df["flagged_accuracy"], df["flagged_fixed"], df["flagged_broken"])]
  calibration = df[["setting", "wrong", "expected_wrong", "ece_wrong", "ece_suggestion"]]
  sections = [("Label accuracy: given -> corrected_labels.npy", labels, ".3f"),
              ("Calibration per case (sum of P(given wrong) against the wrong labels; ECE "
               "over ten bins)", calibration, ".3f"),
              ("Reliability, pooled per family", reliability(df), ".3f")]
  if config.exp.retrain:
    sections.append(("Test accuracy after training from scratch",
                     df[["setting"] + [f"test_{n}" for n in RETRAIN]].rename(
                         columns={f"test_{n}": n for n in RETRAIN}), ".4f"))
  return tables.write_outputs(
      config, workdir, "decisions", "Decisions against the truth: corrected labels, "
      "calibration, retraining", df.drop(columns="_p"), sections, seconds, command,
      notes=[f"Default decision rule (jaxclean.decide): relabel when P(suggestion right) > "
             f"P(given right) + {decide.MARGIN} ({decide.OPEN_MARGIN} where the run's early "
             f"window never closed); review when not relabelled and P(given wrong)"
             f" > {decide.REVIEW}; keep otherwise. The probabilities: scores.label_posterior "
             "(Bayes with the confident joint's noise, sharpness fitted by maximum likelihood "
             "of the given labels; no truth used).",
             "fixed: wrong labels changed to the truth; broken: right labels changed. "
             "'every flagged suggestion taken': label_issues.csv's predicted_label.",
             f"Data: {config.data.name} first {config.data.train_size} (Fashion-MNIST) and "
             f"CIFAR-10 first {config.exp.cifar10_size or 'all'} (CIFAR-10N), model "
             f"{config.model.name}, {config.num_epochs} epochs; retraining: the same recipe "
             "without threshold copies, from scratch."])


if __name__ == "__main__":
  settings.cli("experiments.decisions", run)
