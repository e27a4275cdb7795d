"""Which training examples to remove before retraining, and how well that went.

Methods (`config.clean.method`):
  keep_all        remove nothing (the no-removal baseline, retrained the same way)
  aum_threshold   the examples flagged by AUM threshold samples
  score           the top `fraction` by `config.clean.score`, most suspicious first
  oracle          exactly the injected wrong labels
  random          a seeded random `fraction` (or as many as `count`) of the examples
  in_run          no retraining: the detection run drops what it has flagged at an epoch
                  and trains on (`train.fit`'s `drop`, `protocol.in_run_summary`)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from jaxclean import rng
from jaxclean import scores as scores_lib
METHODS = ("none", "keep_all", "aum_threshold", "score", "oracle", "random", "in_run")


def removal(method: str, scores: pd.DataFrame, flagged: dict | None,
            is_noisy: np.ndarray | None, fraction: float = 0.0, score: str = "aum",
            seed: int = 0, count: int = 0) -> np.ndarray:
  """Boolean mask of the examples to remove."""
  n = len(scores)
  k = count or int(round(fraction * n))
  if method == "keep_all":
    return np.zeros(n, bool)
  if method == "aum_threshold":
    if flagged is None:
      raise ValueError("clean.method=aum_threshold needs aum.threshold_samples=two_runs or copies")
    return np.asarray(flagged["flagged"], bool)
  if method == "oracle":
    if is_noisy is None:
      raise ValueError("clean.method=oracle needs known wrong labels (injected noise "
                       "or CIFAR-10N)")
    return np.asarray(is_noisy, bool)
  if not 0 <= k <= n:
    raise ValueError(f"cannot remove {k} of {n} examples")
  mask = np.zeros(n, bool)
  if method == "score":
    if score not in scores_lib.SUSPICIOUS_HIGH or score not in scores:
      raise ValueError(f"unknown or unrecorded score {score!r}; "
                       f"valid: {list(scores_lib.SUSPICIOUS_HIGH)}")
    mask[np.argsort(-scores_lib.suspicion(score, scores[score].to_numpy()), kind="stable")[:k]] = True
  elif method == "random":
    mask[rng.numpy(seed, "removal").permutation(n)[:k]] = True
  else:
    raise ValueError(f"unknown clean method {method!r}; valid: {', '.join(METHODS)}")
  return mask


def precision_recall(removed: np.ndarray, is_noisy: np.ndarray | None) -> dict[str, float]:
  """Of what was removed, the fraction that was wrong; of what was wrong, the fraction removed."""
  if is_noisy is None:
    return {}
  hits = float(np.sum(removed & is_noisy))
  return dict(precision=hits / max(int(removed.sum()), 1),
              recall=hits / max(int(is_noisy.sum()), 1))
