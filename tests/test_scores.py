"""Records and scores against an independent numpy reference on hand-made sequences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclean import records as records_lib
from jaxclean import scores


def reference(history: np.ndarray, labels: np.ndarray, skip: int, early: int | None = None
              ) -> dict:
  """Scores from the full (epochs, N, C) logit history, written from the papers' definitions;
  the early window is the first `early` epochs (default all)."""
  epochs, n, c = history.shape
  early = epochs if early is None else early
  out = {k: np.zeros(n) for k in scores.SCORES}
  out["suggested"], out["support"] = np.zeros(n, int), np.zeros(n)
  for i in range(n):
    margins, correct, probs, el2ns = [], [], [], []
    for e in range(epochs):
      z = history[e, i].astype(np.float64)
      y = labels[i]
      others = [z[j] for j in range(c) if j != y]
      margins.append(z[y] - max(others))
      correct.append(z[y] > max(others))
      p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
      probs.append(p[y])
      el2ns.append(np.sqrt(sum((p[j] - (j == y)) ** 2 for j in range(c))))
    events = sum(1 for a, b in zip(correct[:-1], correct[1:]) if a and not b)
    out["forgetting"][i] = events if any(correct) else epochs
    out["aum"][i] = np.mean(margins[skip:])
    out["margin"][i] = margins[-1]
    out["el2n"][i] = np.mean(el2ns)
    out["confidence"][i] = np.mean(probs)
    out["variability"][i] = np.std(probs)
    out["loss"][i] = -np.log(probs[-1])
    out["early_el2n"][i] = np.mean(el2ns[:early])
    out["early_confidence"][i] = np.mean(probs[:early])
    # The strongest other class of each early presentation votes with its probability.
    cand, vote, wins, rivals = None, 0.0, 0, []
    for e in range(early):
      z = history[e, i].astype(np.float64)
      p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
      r = max((j for j in range(c) if j != labels[i]), key=lambda j: (z[j], -j))
      rivals.append(p[r])
      if cand is None or r == cand:
        cand, vote, wins = r, vote + p[r], wins + 1
      else:
        vote -= p[r]
        if vote < 0:
          cand, vote, wins = r, -vote, 1
    out["early_rival"][i] = np.mean(rivals)
    out["suggested"][i], out["support"][i] = cand, wins / early
  return out


def handmade():
  """5 examples, 3 classes, 6 epochs; labels all 0. Row meaning:
  0: always right; 1: never learned; 2: learned then forgotten twice;
  3: ties (margin exactly 0, counted as not correct) then learned; 4: random."""
  right = [3.0, 0.0, -1.0]
  wrong = [0.0, 2.0, 1.0]
  tie = [1.0, 1.0, 0.0]
  rng = np.random.default_rng(0)
  seqs = [
      [right] * 6,
      [wrong] * 6,
      [right, wrong, right, right, wrong, wrong],
      [tie, tie, right, tie, right, right],
      list(rng.normal(size=(6, 3)) * 3),
  ]
  history = np.transpose(np.array(seqs, np.float32), (1, 0, 2))  # (E, N, C)
  return history, np.zeros(5, np.int32)


def run_records(history, labels, skip, batch_size=3, seed=0, early=None):
  """Feeds the history epoch by epoch in shuffled, padded batches; padding rows hold garbage.
  The first `early` epochs (default all) are the early window."""
  epochs, n, c = history.shape
  rng = np.random.default_rng(seed)
  update = jax.jit(records_lib.update)
  r = records_lib.init(n)
  for e in range(epochs):
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
      idx = order[start:start + batch_size]
      pad = batch_size - len(idx)
      index = np.concatenate([idx, rng.integers(0, n, pad)]).astype(np.int32)
      logits = history[e, index].copy()
      logits[len(idx):] = 1e3 * rng.normal(size=(pad, c))  # must not count
      mask = np.arange(batch_size) < len(idx)
      r = update(r, index, logits, labels[index], mask, e >= skip,
                 early is None or e < early)
  return r


@pytest.mark.parametrize("skip,early", [(0, None), (1, 3), (2, 1)])
def test_scores_match_reference(skip, early):
  history, labels = handmade()
  r = run_records(history, labels, skip, early=early)
  got = jax.tree.map(np.asarray, scores.all_scores(r))
  want = reference(history, labels, skip, early)
  for name in scores.SCORES:
    np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)
  suggested, support = map(np.asarray, scores.suggestion(r))
  np.testing.assert_array_equal(suggested, want["suggested"])
  np.testing.assert_allclose(support, want["support"], rtol=1e-6)
  # Spot checks of the hand-made rows, so the reference itself is pinned down.
  assert list(got["forgetting"]) [:4] == [0, 6, 2, 1]
  assert np.asarray(r.seen).tolist() == [6] * 5


def test_random_sequences_match_reference():
  rng = np.random.default_rng(1)
  history = rng.normal(size=(7, 40, 5)).astype(np.float32) * 2
  labels = rng.integers(0, 5, 40).astype(np.int32)
  r = run_records(history, labels, skip=1, batch_size=16, seed=3, early=5)
  got = scores.all_scores(r)
  want = reference(history, labels, 1, early=5)
  for name in scores.SCORES:
    np.testing.assert_allclose(np.asarray(got[name]), want[name], rtol=1e-4, atol=1e-5,
                               err_msg=name)
  np.testing.assert_array_equal(np.asarray(scores.suggestion(r)[0]), want["suggested"])
  assert (want["suggested"] != labels).all()  # never the given label


def test_suggestion_follows_the_favoured_class():
  """Label 0; class 2 leads the other classes early, class 1 only after the window."""
  z = lambda a, b, c: [a, b, c]
  history = np.array([[z(2, 0, 1)], [z(1, 0, 2)], [z(0, 1, 3)], [z(0, 3, -2)], [z(0, 3, -2)],
                      [z(0, 3, -2)]], np.float32)
  labels = np.zeros(1, np.int32)
  suggested, support = scores.suggestion(run_records(history, labels, 0, batch_size=1, early=3))
  assert int(suggested[0]) == 2 and float(support[0]) == 1.0
  suggested, _ = scores.suggestion(run_records(history, labels, 0, batch_size=1))
  assert int(suggested[0]) == 1  # over all six presentations class 1 outvotes class 2


def test_padding_rows_never_touch_records():
  r0 = records_lib.init(4)
  logits = jnp.ones((3, 2)) * jnp.array([5.0, -5.0])
  r = records_lib.update(r0, jnp.array([0, 1, 2]), logits, jnp.zeros(3, jnp.int32),
                         jnp.zeros(3, bool))
  for a, b in zip(jax.tree.leaves(r), jax.tree.leaves(r0)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_unseen_examples_score_nan():
  r = records_lib.init(3)
  s = scores.all_scores(r)
  assert np.all(np.isnan(np.asarray(s["aum"])))
  assert np.all(np.asarray(s["forgetting"]) == 0)


def test_bytes_per_example_within_budget():
  assert records_lib.BYTES_PER_EXAMPLE <= 56  # README's stated budget, whatever C
  r = records_lib.init(1000)
  assert sum(a.nbytes for a in jax.tree.leaves(r)) == 1000 * records_lib.BYTES_PER_EXAMPLE


def test_combined_matches_reference():
  """Mean percentile rank of EL2N and of EL2N minus its mean within the given class."""
  rng = np.random.default_rng(2)
  n = 50
  el2n = rng.random(n).astype(np.float32)
  labels = rng.integers(0, 4, n).astype(np.int32)

  def percentile_rank(v):
    ranks = np.empty(n)
    ranks[np.argsort(v, kind="stable")] = np.arange(n)
    return ranks / (n - 1)

  class_mean = np.array([el2n[labels == c].mean() for c in range(4)])
  want = 0.5 * (percentile_rank(el2n) + percentile_rank(el2n - class_mean[labels]))
  got = np.asarray(scores.combined(jnp.asarray(el2n), jnp.asarray(labels)))
  np.testing.assert_allclose(got, want, atol=1e-6)
  assert scores.SUSPICIOUS_HIGH["combined"]
