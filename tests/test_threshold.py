"""AUM threshold samples and removal choices against plain numpy."""

import numpy as np
import pandas as pd
import pytest

from jaxclean import clean, threshold


def test_samples_disjoint_and_relabelled():
  n, c = 1003, 10
  s0, s1 = threshold.samples(n, c, seed=3, run=0), threshold.samples(n, c, seed=3, run=1)
  assert len(s0) == len(s1) == n // c
  assert len(np.intersect1d(s0, s1)) == 0 and len(np.unique(s0)) == n // c
  labels = np.random.default_rng(0).integers(0, c, n)
  new = threshold.relabel(labels, s0, c)
  assert np.all(new[s0] == c)
  rest = np.setdiff1d(np.arange(n), s0)
  np.testing.assert_array_equal(new[rest], labels[rest])
  assert not np.array_equal(s0, threshold.samples(n, c, seed=4, run=0))


def test_flag_matches_reference():
  rng = np.random.default_rng(0)
  n, c = 500, 5
  idx = [threshold.samples(n, c, 0, r) for r in range(2)]
  aums = [rng.normal(size=n) for _ in range(2)]
  for a, i in zip(aums, idx):
    a[i] -= 2  # threshold samples have low AUM
  got = threshold.flag(aums, idx, 99.0)
  want = np.zeros(n, bool)
  for a, i in zip(aums, idx):
    others = np.sort(a[i])
    # 99th percentile by linear interpolation between order statistics.
    pos = 0.99 * (len(others) - 1)
    t = others[int(np.floor(pos))] + (pos - np.floor(pos)) * (
        others[int(np.ceil(pos))] - others[int(np.floor(pos))])
    for j in range(n):
      if j not in set(i) and a[j] < t:
        want[j] = True
  np.testing.assert_array_equal(got["flagged"], want)
  # A sample of run 0 is scored by run 1 alone.
  j = idx[0][0]
  assert got["aum"][j] == aums[1][j] and got["threshold"][j] == got["thresholds"][1]


def test_removal_methods():
  df = pd.DataFrame(dict(aum=[0.5, -1.0, 2.0, -0.2], forgetting=[0, 3, 1, 2]))
  noisy = np.array([False, True, False, True])
  assert clean.removal("score", df, None, noisy, fraction=0.5, score="aum").tolist() == \
      [False, True, False, True]
  assert clean.removal("score", df, None, noisy, count=1, score="forgetting").tolist() == \
      [False, True, False, False]
  assert clean.removal("oracle", df, None, noisy).tolist() == noisy.tolist()
  assert clean.removal("random", df, None, noisy, fraction=0.5, seed=1).sum() == 2
  assert not clean.removal("keep_all", df, None, noisy).any()
  pr = clean.precision_recall(np.array([True, True, False, False]), noisy)
  assert pr == dict(precision=0.5, recall=0.5)
  with pytest.raises(ValueError, match="threshold_samples"):
    clean.removal("aum_threshold", df, None, noisy)
  with pytest.raises(ValueError, match="unknown clean method"):
    clean.removal("magic", df, None, noisy)
  with pytest.raises(ValueError, match="score"):
    clean.removal("score", df, None, noisy, fraction=0.5, score="nope")


def test_equal_seeds_do_not_pick_the_noisy_examples():
  """Noise, threshold samples and random removal draw from separate streams."""
  from jaxclean import noise
  n, c = 2000, 10
  labels = np.arange(n) % c
  _, noisy = noise.inject(labels, c, "uniform", 0.3, seed=0)
  s0 = threshold.samples(n, c, seed=0, run=0)
  assert abs(noisy[s0].mean() - 0.3) < 0.1  # about the noise rate, not 1.0
  removed = clean.removal("random", pd.DataFrame(dict(aum=np.zeros(n))), None, noisy,
                          fraction=0.3, seed=0)
  assert abs(noisy[removed].mean() - 0.3) < 0.1
