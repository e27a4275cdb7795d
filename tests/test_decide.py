"""Decisions: the label posterior against a numpy reference, the rule, decisions files, and a
run's corrected labels against the truth."""

import os

import numpy as np
import pandas as pd
import pytest

import jaxclean
from jaxclean import data, decide, protocol, scores
from jaxclean.checks import InputError


def _posterior_reference(conf, rival, suggested, labels, c):
  """Full (N, C) Bayes: the calibrated confident joint as P(given | true), the early
  probabilities with the rest spread evenly, each k's likelihood of the given labels."""
  n = len(labels)
  size = np.bincount(labels, minlength=c).astype(float)
  t = np.bincount(labels, conf, minlength=c) / size
  in_given = conf >= t[labels]
  off = (rival >= t[suggested]) & (~in_given | (rival > conf))
  joint = np.zeros((c, c))
  np.add.at(joint, (labels[off], suggested[off]), 1)
  np.add.at(joint, (labels[in_given & ~off], labels[in_given & ~off]), 1)
  joint = joint / np.maximum(joint.sum(1, keepdims=True), 1) * size[:, None]
  noise = joint / joint.sum(0, keepdims=True)
  p = np.repeat(((1 - conf - rival) / (c - 2))[:, None], c, 1)
  p[np.arange(n), labels], p[np.arange(n), suggested] = conf, rival
  best = None
  for k in scores.SHARPNESS:
    q = p ** k / (p ** k).sum(1, keepdims=True)
    weighted = noise[labels] * q  # P(given y_i | true j) q_j(x_i)
    likelihood = np.log(weighted.sum(1)).sum()
    if best is None or likelihood > best[0]:
      post = weighted / weighted.sum(1, keepdims=True)
      best = likelihood, post[np.arange(n), labels], post[np.arange(n), suggested], k
  return best[1:]


def test_label_posterior_matches_numpy():
  rng = np.random.default_rng(0)
  n, c = 3000, 5
  truth = rng.integers(0, c, n)
  labels = np.where(rng.random(n) < 0.2, (truth + 1) % c, truth)
  logits = rng.normal(size=(n, c)) + 3.0 * np.eye(c)[truth]
  p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  others = p.copy()
  others[np.arange(n), labels] = -1
  suggested = others.argmax(1)
  conf, rival = p[np.arange(n), labels], p[np.arange(n), suggested]
  given, sugg, k = scores.label_posterior(conf.astype(np.float32), rival.astype(np.float32),
                                          suggested.astype(np.int32), labels.astype(np.int32), c)
  ref_given, ref_sugg, ref_k = _posterior_reference(conf, rival, suggested, labels, c)
  assert float(k) == pytest.approx(ref_k)
  np.testing.assert_allclose(given, ref_given, atol=2e-4)
  np.testing.assert_allclose(sugg, ref_sugg, atol=2e-4)
  # Calibrated on its own construction: the predicted and the observed wrong rates agree.
  wrong = labels != truth
  for lo, hi in ((0, 0.2), (0.2, 0.8), (0.8, 1.01)):
    band = (1 - np.asarray(given) >= lo) & (1 - np.asarray(given) < hi)
    assert band.sum() > 50 and abs((1 - np.asarray(given))[band].mean() - wrong[band].mean()) < 0.1


def test_rule():
  p_given = np.array([0.1, 0.35, 0.4, 0.9, 0.3, np.nan])
  p_sugg = np.array([0.85, 0.5, 0.4, 0.05, 0.9, np.nan])
  differs = np.array([True, True, True, True, False, True])
  assert list(decide.rule(p_given, p_sugg, differs, margin=0.1, review=0.5)) == [
      "relabel", "relabel", "review", "keep", "review", "keep"]


def test_apply_and_read(tmp_path):
  labels = np.array([0, 1, 2, 0, 1])
  table = pd.DataFrame(dict(index=[1, 3, 4, 4, 0], decision=["relabel", "drop", "drop", "keep",
                                                             "review"],
                            label=[2, None, None, 1, None]))
  path = tmp_path / "decisions.csv"
  table.to_csv(path, index=False)
  new, keep = decide.apply(labels, decide.read(str(path)), 3)
  np.testing.assert_array_equal(new, [0, 2, 2, 0, 1])  # the later keep of 4 wins
  np.testing.assert_array_equal(keep, [True, True, True, False, True])
  for bad, message in ((dict(index=[7], decision=["keep"], label=[0]), "indices"),
                       (dict(index=[0], decision=["fix"], label=[0]), "unknown decision"),
                       (dict(index=[0], decision=["relabel"], label=[None]), "relabel needs")):
    with pytest.raises(InputError, match=message):
      decide.apply(labels, pd.DataFrame(bad), 3)
  (tmp_path / "other.csv").write_text("index,label\n0,1\n")
  with pytest.raises(InputError, match="lacks columns"):
    decide.read(str(tmp_path / "other.csv"))


def test_run_corrects_labels(digits_config, tmp_path):
  """A run with threshold copies decides, and its corrected labels beat the given ones."""
  c = digits_config
  c.aum.threshold_samples = "copies"
  c.num_epochs = 8
  out = protocol.train_and_evaluate(c, str(tmp_path))
  df = out["scores"]
  assert set(df["decision"]) <= set(decide.DECISIONS) and (df["decision"] == "relabel").any()
  corrected = np.load(tmp_path / "corrected_labels.npy")
  given = df["given_label"].to_numpy()
  truth = data.load(c.data).train.labels  # the noise was injected into these
  assert (corrected == truth).mean() >= (given == truth).mean() + 0.15
  x, y = jaxclean.load_result(str(tmp_path)).apply(np.arange(len(given)), given)
  np.testing.assert_array_equal(x, np.arange(len(given)))
  np.testing.assert_array_equal(y, corrected)
  review = pd.read_csv(tmp_path / "review.csv")
  assert (np.diff(review["p_given"]) >= 0).all()
  assert set(review["index"]) == set(df["index"][df["decision"] == "review"])
  # Decided again from the finished run's files: the run's own decisions, at the margin its
  # early window calls for; a window left open relabels only at OPEN_MARGIN.
  again = decide.again(str(tmp_path))
  np.testing.assert_array_equal(again["decision"], df["decision"])
  closed = decide.early_window_closed(str(tmp_path))
  assert closed == (not pd.read_csv(tmp_path / "history.csv")["early"].all())
  args = (again["p_given"].to_numpy(), again["p_suggested"].to_numpy(),
          given != again["suggested_label"].to_numpy())
  np.testing.assert_array_equal(
      again["decision"], decide.rule(*args, decide.MARGIN if closed else decide.OPEN_MARGIN))
  num_classes = jaxclean.load_result(str(tmp_path)).summary["num_classes"]
  kept_open = decide.add(again, num_classes, window_closed=False)
  np.testing.assert_array_equal(kept_open["decision"], decide.rule(*args, decide.OPEN_MARGIN))
  assert (kept_open["decision"] == "relabel").sum() < (decide.rule(*args, decide.MARGIN)
                                                       == "relabel").sum()


def test_decisions_file_needs_given_labels(digits_config, tmp_path):
  from jaxclean import checks
  digits_config.data.decisions_file = str(tmp_path / "decisions.csv")
  with pytest.raises(InputError, match="noise.kind=none"):
    checks.check_config(digits_config)
  digits_config.noise.kind = "none"
  with pytest.raises(InputError, match="does not exist"):
    data.load(digits_config.data)
