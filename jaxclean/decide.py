"""A decision per example: keep the given label, relabel to the suggestion, review, or drop.

From the probabilities of `scores.label_posterior` (Bayes' rule with the confident joint's
noise, sharpened until the expected number of wrong labels is the count): relabelling
an example to its suggestion adds P(suggestion right) - P(given right) to the expected
number of right labels, so it is done only where that gain exceeds `MARGIN` (a margin,
because the probabilities are estimates); an example whose given label is more likely
wrong than `REVIEW` and not relabelled goes to a person (`review.csv`), and `drop` is left
to people. The decisions are scores.csv's `decision`, `p_given`, `p_suggested`;
`corrected_labels.npy` holds the given labels with the relabels applied (what a user gets
without looking). A decisions file (the report's export, `export`'s columns: index,
decision, label) is read back by `read` and applied by `apply` (data.decisions_file).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from jaxclean import outputs
from jaxclean.errors import InputError, MissingFile

DECISIONS = ("keep", "relabel", "review", "drop")
MARGIN = 0.2  # relabel when P(suggestion right) exceeds P(given right) by this much
# ... and by this much when the early window never closed: the model was still learning,
# its probabilities overstate the noise (a head on 50,000 weak embeddings of CIFAR-10N
# aggre: count +123 %, relabels 0.910 -> 0.902 at MARGIN, 0.911 at this; measured over
# 42 runs in experiments/results/decisions_margin.md).
OPEN_MARGIN = 0.5
REVIEW = 0.5  # not relabelled and P(given wrong) above this: a person looks
COLUMNS = ("index", "decision", "label")  # a decisions file


def add(df: pd.DataFrame, num_classes: int, window_closed: bool = True) -> pd.DataFrame:
  """`df` (scores.csv) with `p_given`, `p_suggested` and `decision`; `window_closed`: whether
  the run's early window closed (`MARGIN`) or stayed open to the end (`OPEN_MARGIN`)."""
  from jaxclean import scores
  given = df["given_label"].to_numpy(np.int32)
  p_given, p_suggested, _ = scores.label_posterior(
      df["early_confidence"].to_numpy(np.float32), df["early_rival"].to_numpy(np.float32),
      df["suggested_label"].to_numpy(np.int32), given, num_classes)
  out = df.assign(p_given=np.asarray(p_given), p_suggested=np.asarray(p_suggested))
  out["decision"] = rule(out["p_given"].to_numpy(), out["p_suggested"].to_numpy(),
                         given != out["suggested_label"].to_numpy(),
                         MARGIN if window_closed else OPEN_MARGIN)
  return out


def early_window_closed(workdir: str) -> bool:
  """Whether a finished run's early window closed before its last epoch (history.csv)."""
  return not pd.read_csv(os.path.join(workdir, "history.csv"))["early"].astype(bool).all()


def again(workdir: str) -> pd.DataFrame:
  """A finished run's scores.csv with its decisions taken again under today's rule: they
  are a function of its columns, its classes (summary.json) and `early_window_closed`."""
  import json
  with open(os.path.join(workdir, "summary.json")) as f:
    num_classes = json.load(f)["num_classes"]
  return add(pd.read_csv(os.path.join(workdir, "scores.csv")), num_classes,
             window_closed=early_window_closed(workdir))


def rule(p_given: np.ndarray, p_suggested: np.ndarray, differs: np.ndarray,
         margin: float = MARGIN, review: float = REVIEW) -> np.ndarray:
  """The default decision from the two probabilities; NaN (never seen) keeps."""
  relabel = differs & (p_suggested > p_given + margin)
  look = ~relabel & (1 - p_given > review)
  return np.where(relabel, "relabel", np.where(look, "review", "keep")).astype(object)


def corrected(df: pd.DataFrame) -> np.ndarray:
  """The given labels with every `relabel` decision applied."""
  return np.where(df["decision"] == "relabel", df["suggested_label"],
                  df["given_label"]).astype(np.int32)


def review_table(df: pd.DataFrame) -> pd.DataFrame:
  """The examples for a person, most useful first: by P(given wrong), the expected number
  of labels one look fixes."""
  rows = df[df["decision"] == "review"]
  rows = rows.iloc[np.argsort(rows["p_given"].to_numpy(), kind="stable")]
  return rows[["index", "given_label", "suggested_label", "suggested_support", "p_given",
               "p_suggested"]]


def export(df: pd.DataFrame) -> pd.DataFrame:
  """The automatic decisions as a decisions file: one row per relabel (to the suggestion)."""
  if "decision" not in df:
    raise InputError("these scores have no decisions (a run with threshold copies makes them)")
  rows = df[df["decision"] == "relabel"]
  return pd.DataFrame(dict(index=rows["index"].to_numpy(), decision="relabel",
                           label=rows["suggested_label"].to_numpy()))


def write(workdir: str, df: pd.DataFrame) -> None:
  """corrected_labels.npy and review.csv, atomically."""
  with outputs.atomic_path(os.path.join(workdir, "corrected_labels.npy")) as tmp, \
       open(tmp, "wb") as f:
    np.save(f, corrected(df))
  outputs.write_text(os.path.join(workdir, "review.csv"), review_table(df).to_csv(index=False))


def summary(df: pd.DataFrame) -> dict:
  """How many examples got each decision."""
  counts = df["decision"].value_counts()
  return {d: int(counts.get(d, 0)) for d in DECISIONS}


def read(path: str) -> pd.DataFrame:
  """A decisions file (`COLUMNS`: index, decision keep | relabel | drop, label for relabel),
  checked for its form; `apply` checks it against the labels."""
  if not os.path.isfile(path):
    raise MissingFile(f"decisions_file {path} does not exist or is not a file")
  try:
    table = pd.read_csv(path, dtype={"decision": str})
  except (OSError, ValueError) as e:
    raise InputError(f"decisions_file {path}: not a CSV ({e})") from None
  missing = [c for c in COLUMNS if c not in table]
  if missing:
    raise InputError(f"decisions_file {path}: lacks columns {missing}; expected "
                     f"{', '.join(COLUMNS)} (the report's export)")
  return table


def apply(labels: np.ndarray, table: pd.DataFrame, num_classes: int,
          where: str = "decisions") -> tuple[np.ndarray, np.ndarray]:
  """(labels with the relabels applied, the mask of examples kept): `table`'s rows are
  (index, decision, label); the last row of an index wins (a later decision replaces an
  earlier one); `review` and `keep` leave the label."""
  labels = np.array(labels, np.int32)
  index = pd.to_numeric(table["index"], errors="coerce").to_numpy()
  decision = table["decision"].astype(str).str.strip().str.lower().to_numpy()
  bad = ~np.isin(decision, DECISIONS)
  if bad.any():
    raise InputError(f"{where}: unknown decision {decision[bad][0]!r} in {bad.sum()} rows; "
                     f"valid: {', '.join(DECISIONS)}")
  if np.isnan(index).any() or (index != np.round(index)).any() or (
      (index < 0) | (index >= len(labels))).any():
    raise InputError(f"{where}: indices must be integers in [0, {len(labels)}), the "
                     "examples' positions in the training split")
  index = index.astype(np.int64)
  new = pd.to_numeric(table["label"], errors="coerce").to_numpy()
  relabel = decision == "relabel"
  if relabel.any() and (np.isnan(new[relabel]).any()
                        or ((new[relabel] < 0) | (new[relabel] >= num_classes)).any()):
    raise InputError(f"{where}: every relabel needs a label in [0, {num_classes})")
  last = ~pd.Series(index).duplicated(keep="last").to_numpy()
  index, decision, new = index[last], decision[last], new[last]
  keep = np.ones(len(labels), bool)
  keep[index[decision == "drop"]] = False
  relabel = decision == "relabel"
  labels[index[relabel]] = new[relabel].astype(np.int32)
  return labels, keep
