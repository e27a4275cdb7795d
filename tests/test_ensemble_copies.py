"""Ensembles in one step and threshold copies in one run (issue 8)."""

import json

import jax
import numpy as np
import pandas as pd

from jaxclean import data as data_lib
from jaxclean import parallel, protocol, threshold, train
from jaxclean import records as records_lib
from jaxclean import scores as scores_lib


def _records(config, workdir, members):
  config.ensemble = members
  ds = data_lib.load(config.data)
  labels, _ = protocol.noisy_labels(config, ds)
  mean, std = ds.mean_std()
  return train.fit(config, ds.train.images, labels, ds.num_classes, workdir, mean, std,
                   mesh=parallel.make_mesh(1)).records


def test_ensemble_members_train_independently(digits_config, tmp_path):
  c = digits_config
  c.data.train_size, c.num_epochs, c.aum.skip_epochs = 400, 2, 0
  one = _records(c, str(tmp_path / "one"), 1)
  three = _records(c, str(tmp_path / "three"), 3)
  for name in one.__dataclass_fields__:
    a, b = np.asarray(getattr(one, name)), np.asarray(getattr(three, name))
    assert a.shape == (1, 400) and b.shape == (3, 400)
    # Member 0 of an ensemble is the single model: same init, same batches, same records.
    np.testing.assert_allclose(a[0].astype(float), b[0].astype(float), rtol=1e-4, atol=1e-4,
                               err_msg=name)
  # The other members start elsewhere, so their dynamics differ.
  assert not np.allclose(three.margin_sum[0], three.margin_sum[1], atol=1e-2)
  assert not np.allclose(three.margin_sum[1], three.margin_sum[2], atol=1e-2)


def test_copies_stay_out_of_the_tables(digits_config, tmp_path):
  c = digits_config
  c.data.train_size, c.num_epochs, c.aum.skip_epochs = 500, 2, 0
  c.aum.threshold_samples = "copies"
  out = protocol.train_and_evaluate(c, str(tmp_path))
  scores = pd.read_csv(tmp_path / "scores.csv")
  flagged = pd.read_csv(tmp_path / "flagged.csv")
  copies = pd.read_csv(tmp_path / "threshold_samples.csv")
  assert scores["index"].tolist() == flagged["index"].tolist() == list(range(500))
  assert len(copies) == 500 // 10
  assert scores["final_prediction"].between(0, 9).all()
  assert scores["suggested_label"].between(0, 9).all()  # never the copies' extra class
  assert out["estimated_wrong_labels"] == int(flagged["flagged"].sum())
  # history.csv's count at the window's last epoch is the run's (the same records, on
  # device), and the interval in summary.json is read off those counts.
  history = pd.read_csv(tmp_path / "history.csv")
  assert history.loc[history["early"], "estimated_wrong_labels"].iloc[-1] == (
      out["estimated_wrong_labels"])
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["estimated_wrong_labels_interval"] == protocol.count_interval(history, 0)
  # flagged.csv is the cut at the estimated count by the ranking score.
  top = np.argsort(-scores["combined"].to_numpy(), kind="stable")[:out["estimated_wrong_labels"]]
  assert set(np.flatnonzero(flagged["flagged"])) == set(top)
  combined = scores["combined"].to_numpy()
  assert np.isfinite(combined).all() and combined.min() >= 0 and combined.max() <= 1
  truth = scores["is_noisy"].to_numpy()
  assert combined[truth].mean() > combined[~truth].mean() + 0.15  # high = suspicious (2 epochs)
  issues = pd.read_csv(tmp_path / "label_issues.csv", index_col="index")
  assert list(issues.columns) == ["is_label_issue", "label_score", "given_label",
                                  "predicted_label",  # cleanlab's Datalab.get_issues("label")
                                  "decision"]
  assert issues.index.tolist() == list(range(500))
  np.testing.assert_array_equal(issues["is_label_issue"], flagged["flagged"])
  assert issues["label_score"].between(0, 1).all()
  # Low label_score = likely wrong: the most suspicious by `combined` score lowest.
  assert issues["label_score"].iloc[np.argmax(combined)] == issues["label_score"].min()
  # predicted_label (cleanlab's: what the label likely should be) follows the decisions:
  # the suggestion where relabelled, the given label elsewhere, i.e. corrected_labels.npy.
  relabel = (scores["decision"] == "relabel").to_numpy()
  assert relabel.any() and (~relabel).any()
  np.testing.assert_array_equal(issues["decision"], scores["decision"])
  np.testing.assert_array_equal(issues["predicted_label"][relabel],
                                scores["suggested_label"][relabel])
  np.testing.assert_array_equal(issues["predicted_label"][~relabel],
                                scores["given_label"][~relabel])
  np.testing.assert_array_equal(issues["predicted_label"],
                                np.load(tmp_path / "corrected_labels.npy"))
  sources = threshold.copy_sources(500, 10, c.seed)
  assert len(set(sources)) == 50 and sources.max() < 500


def test_wrong_fraction_recovers_a_known_mixture():
  """Originals: 30 % drawn like the copies (wrong), 70 % far above (clean)."""
  rng = np.random.default_rng(0)
  copies = rng.normal(-2, 1, 2000)
  for pi in (0.1, 0.3, 0.5):
    n = 20000
    wrong = rng.random(n) < pi
    aum = np.where(wrong, rng.normal(-2, 1, n), rng.normal(4, 1, n))
    est = threshold.wrong_fraction(aum, copies)
    assert abs(est - wrong.mean()) < 0.03, (pi, est)
  # Numpy reference of the estimator on a hand-made case: the smallest ratio of the
  # fractions below each cut, over cuts holding at least half of the copies.
  aum, copies = np.array([-3., -1., 0., 2., 5., 6.]), np.array([-2., -1., 1.])
  cuts = np.quantile(copies, np.linspace(0.5, 1, 51))
  want = min((aum[:, None] <= cuts).mean(0) / (copies[:, None] <= cuts).mean(0))
  assert threshold.wrong_fraction(aum, copies) == want


def _confident_reference(confidence, rival, suggested, labels, c):
  """cleanlab's calibrated confident joint, example by example, on two probabilities each."""
  t = [np.mean([confidence[i] for i in range(len(labels)) if labels[i] == j]) for j in range(c)]
  joint = np.zeros((c, c))
  for i, y in enumerate(labels):
    above = {y: confidence[i]} if confidence[i] >= t[y] else {}
    if rival[i] >= t[suggested[i]]:
      above[suggested[i]] = rival[i]
    if above:  # the likelier of the two; a tie stays on the diagonal
      joint[y, max(above, key=lambda j: (above[j], j == y))] += 1
  size = np.bincount(labels, minlength=c)[:, None]
  calibrated = joint / np.maximum(joint.sum(1, keepdims=True), 1) * size
  return calibrated.sum() - np.trace(calibrated)


def test_confident_count_matches_reference_and_recovers_a_known_mixture():
  rng = np.random.default_rng(0)
  c, n = 4, 4000
  for pi in (0.1, 0.3):
    truth = rng.integers(0, c, n)
    wrong = rng.random(n) < pi
    labels = np.where(wrong, (truth + rng.integers(1, c, n)) % c, truth)
    # The mixture the estimator assumes: a wrong label's true class is as likely as a
    # clean label's own class (both U(0.4, 1)); the given wrong label and a clean example's
    # rival are unlikely (U(0, 0.45)), so the ranges overlap a little.
    likely, unlikely = rng.uniform(0.4, 1, n), rng.uniform(0, 0.45, n)
    conf, rival = np.where(wrong, unlikely, likely), np.where(wrong, likely, unlikely)
    suggested = np.where(wrong, truth, (labels + 1) % c)
    # Records of one window presentation each, holding exactly those probabilities;
    # two identical members must count the same.
    rec = records_lib.init(n).replace(
        early_seen=np.ones(n, np.int16), early_prob=conf.astype(np.float32),
        early_other=rival.astype(np.float32), suggested=suggested.astype(np.int16),
        suggested_vote=np.ones(n, np.float32))
    est, off = map(np.asarray, scores_lib.confident_count(rec, labels, c))
    assert abs(est - _confident_reference(conf, rival, suggested, labels, c)) <= 1
    members = jax.tree.map(lambda a: np.stack([a, a]), rec)
    np.testing.assert_array_equal(scores_lib.confident_count(members, labels, c)[1], off)
    assert abs(est - wrong.sum()) <= 0.1 * wrong.sum(), (pi, est, wrong.sum())
    assert (off & wrong).sum() >= 0.9 * off.sum()  # what it counts off the diagonal is wrong


def test_count_interval_steps_one_epoch_either_way_and_widens_by_15_percent():
  h = pd.DataFrame(dict(epoch=range(1, 6), early=[True, True, True, True, False],
                        estimated_wrong_labels=[0, 900, 600, 500, 500]))
  # Epoch 1 is before the window (skip 1); the last two window counts are 600 and 500,
  # so one epoch later would be about 400: [0.85 * 400, 1.15 * 600].
  assert protocol.count_interval(h, 1) == [340, 690]
  h["estimated_wrong_labels"] = [0, 400, 500, 600, 600]  # a rising count: 500-700
  assert protocol.count_interval(h, 1) == [425, 805]
  assert protocol.count_interval(h.iloc[:2], 1) is None  # one window epoch: no step
  assert protocol.count_interval(h.drop(columns="estimated_wrong_labels"), 1) is None


def test_cut_rules():
  aum = np.array([-3., -2., -1., 1., 2., 3., 4., 5.])
  copies = np.array([-2.5, -2., -1.5, -1.2])
  cal = threshold.cut(aum, copies, "calibrated")
  assert cal["flagged"].sum() == cal["estimate"] == round(
      threshold.wrong_fraction(aum, copies) * len(aum))
  assert (aum[cal["flagged"]].max() < aum[~cal["flagged"]].min())  # the lowest AUMs
  pct = threshold.cut(aum, copies, "percentile", 99.0)
  np.testing.assert_array_equal(pct["flagged"], aum < np.percentile(copies, 99))
  assert pct["estimate"] == pct["flagged"].sum()
