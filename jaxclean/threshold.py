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
