"""AUM threshold samples (Pleiss et al. 2020), as the reference code does it.

Run r relabels N // C examples, slice r of one seeded permutation, to a fake
class C, and trains a model with C + 1 outputs. Those examples are wrong by
construction, so the 99th percentile of their AUMs is a threshold below which
an example's own AUM looks like a wrong label. With two runs on disjoint
slices every example is scored in a run where it is not a threshold sample;
it is flagged if any such run flags it.
"""

from __future__ import annotations

import numpy as np

from jaxclean import rng


def samples(num_examples: int, num_classes: int, seed: int, run: int) -> np.ndarray:
  """Indices of run `run`'s threshold samples: slice `run` of a seeded permutation."""
  size = num_examples // num_classes
  if (run + 1) * size > num_examples:
    raise ValueError(f"run {run} needs {(run + 1) * size} examples, only {num_examples}")
  perm = rng.numpy(seed, "threshold").permutation(num_examples)
  return np.sort(perm[run * size:(run + 1) * size])


def relabel(labels: np.ndarray, index: np.ndarray, num_classes: int) -> np.ndarray:
  """Copy of `labels` with the threshold samples moved to the fake class `num_classes`."""
  out = np.array(labels, np.int32)
  out[index] = num_classes
  return out


def threshold(aum: np.ndarray, index: np.ndarray, percentile: float = 99.0) -> float:
  """The `percentile`-th percentile of the threshold samples' AUMs."""
  return float(np.percentile(aum[index], percentile))


def flag(aums: list[np.ndarray], indices: list[np.ndarray], percentile: float = 99.0
         ) -> dict[str, np.ndarray]:
  """Combines runs: flagged if AUM < that run's threshold in any run where not a sample.

  Returns per-example `flagged`, `aum` and `threshold` (means over the runs in
  which the example was scored) and per-run `thresholds`.
  """
  n = len(aums[0])
  flagged = np.zeros(n, bool)
  aum_sum, thr_sum, count = np.zeros(n), np.zeros(n), np.zeros(n)
  thresholds = []
  for aum, index in zip(aums, indices):
    t = threshold(aum, index, percentile)
    thresholds.append(t)
    scored = np.ones(n, bool)
    scored[index] = False
    flagged |= scored & (aum < t)
    aum_sum += np.where(scored, aum, 0)
    thr_sum += np.where(scored, t, 0)
    count += scored
  if not count.all():
    raise ValueError(f"{np.sum(count == 0)} examples were threshold samples in every run")
  return dict(flagged=flagged, aum=aum_sum / count, threshold=thr_sum / count,
              thresholds=np.array(thresholds))


# One run: threshold copies ----------------------------------------------------------------


def copy_sources(num_examples: int, num_classes: int, seed: int) -> np.ndarray:
  """Which originals get a threshold copy: N // C of them, drawn from the threshold stream.

  Each copy is the same input labelled with the extra class C; the originals keep
  their labels and their own records, so one run scores every example.
  """
  chosen = rng.numpy(seed, "threshold").choice(num_examples, num_examples // num_classes,
                                               replace=False)
  return np.sort(chosen)


def wrong_fraction(aum: np.ndarray, copies_aum: np.ndarray, min_mass: float = 0.5) -> float:
  """Estimated fraction of wrong labels among the originals (mixture-proportion estimation).

  The originals' AUMs are a mixture (1 - pi) clean + pi wrong, and the copies
  show what wrong labels look like. Below any cut t, P_orig(AUM <= t) >=
  pi * P_copies(AUM <= t), so pi <= their ratio; the estimate is the smallest
  ratio over cuts that hold at least `min_mass` of the copies (fewer are noisy).
  """
  cuts = np.quantile(copies_aum, np.linspace(min_mass, 1.0, 51))
  below = lambda v: np.searchsorted(np.sort(v), cuts, side="right") / len(v)
  return float(min(1.0, np.min(below(aum) / np.maximum(below(copies_aum), 1e-12))))


def cut(aum: np.ndarray, copies_aum: np.ndarray, rule: str = "calibrated",
        percentile: float = 99.0) -> dict[str, np.ndarray]:
  """Flags from one run with copies: `flagged`, `aum`, `threshold`, and `estimate` (a count).

  rule 'percentile': AUM below the copies' `percentile`-th percentile (the AUM
  paper's rule, built for recall). rule 'calibrated': the round(pi * N) lowest
  AUMs, pi from `wrong_fraction`. Either way the estimate is the flagged count.
  """
  n = len(aum)
  if rule == "percentile":
    t = float(np.percentile(copies_aum, percentile))
    flagged = aum < t
  elif rule == "calibrated":
    k = int(round(wrong_fraction(aum, copies_aum) * n))
    t = float(np.sort(aum)[k - 1]) if k else -np.inf
    flagged = aum <= t
  else:
    raise ValueError(f"unknown threshold rule {rule!r}; use calibrated or percentile")
  return dict(flagged=flagged, aum=aum, threshold=np.full(n, t), thresholds=np.array([t]),
              estimate=int(flagged.sum()))
