"""Detection quality of each score against a known mask of wrong labels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from jaxclean import scores as scores_lib


def quality(suspicion: np.ndarray, is_noisy: np.ndarray) -> dict[str, float]:
  """AUROC, average precision, and precision/recall among the top k = #noisy.

  `suspicion` is oriented so that higher means more suspicious. At k = #noisy
  precision and recall coincide; both are reported so tables read plainly.
  """
  suspicion = np.asarray(suspicion, np.float64)
  is_noisy = np.asarray(is_noisy, bool)
  if suspicion.shape != is_noisy.shape or suspicion.ndim != 1:
    raise ValueError(f"scores {suspicion.shape} and noise mask {is_noisy.shape} "
                     "must be 1-D of the same length")
  if not np.all(np.isfinite(suspicion)):
    raise ValueError(f"{np.sum(~np.isfinite(suspicion))} scores are NaN or inf; "
                     "were all examples presented at least once?")
  k = int(is_noisy.sum())
  if k in (0, len(is_noisy)):
    raise ValueError(f"detection quality needs both clean and noisy examples, got {k} "
                     f"noisy of {len(is_noisy)}")
  from sklearn import metrics  # here: its second of import, not every run's start-up
  top = np.argsort(-suspicion, kind="stable")[:k]
  hits = is_noisy[top].sum()
  return dict(auroc=metrics.roc_auc_score(is_noisy, suspicion),
              ap=metrics.average_precision_score(is_noisy, suspicion),
              precision_at_k=hits / k, recall_at_k=hits / k, k=k)


def table(scores: dict[str, np.ndarray], is_noisy: np.ndarray) -> pd.DataFrame:
  """One row per score (names from `jaxclean.scores.SCORES`)."""
  rows = {name: quality(scores_lib.suspicion(name, np.asarray(v)), is_noisy)
          for name, v in scores.items()}
  return pd.DataFrame.from_dict(rows, orient="index")


def suggestions(suggested: np.ndarray, final: np.ndarray, truth: np.ndarray,
                is_noisy: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
  """How often a proposed label is the true one, over the truly wrong labels (all, and the
  flagged ones): the suggestion against the final model's prediction."""
  right = lambda pred, where: float(np.mean(pred[where] == truth[where])) if where.any() else None
  return dict(suggested_right=right(suggested, is_noisy),
              suggested_right_flagged=right(suggested, is_noisy & flagged),
              final_prediction_right=right(final, is_noisy))
