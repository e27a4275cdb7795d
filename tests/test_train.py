"""End to end on real data (digits) and the same run on 1 and 4 devices."""

import os

import jax
import numpy as np
import orbax.checkpoint as ocp
import pandas as pd
import pytest
from scipy import stats

from jaxclean import data as data_lib
from jaxclean import parallel, protocol, train

COLUMNS = ["index", "given_label", "suggested_label", "suggested_support", "final_prediction",
           "forgetting", "aum", "margin", "el2n", "confidence", "variability", "is_noisy"]


def test_digits_detects_uniform_noise(digits_config, tmp_path):
  from configs import default
  d = default.get_config()  # the default run: its batch size and threshold copies
  digits_config.batch_size, digits_config.aum = d.batch_size, d.aum
  out = protocol.train_and_evaluate(digits_config, str(tmp_path))
  assert out["estimated_wrong_labels"] is not None
  assert abs(out["estimated_wrong_labels"] - 450) <= 0.15 * 450
  det = out["detection"]
  print(det)
  assert det.loc["aum", "auroc"] >= 0.90
  assert out["test_accuracy"] > 0.85  # trained on 30 % wrong labels, evaluated on clean ones
  df = pd.read_csv(tmp_path / "scores.csv")
  assert list(df.columns[:len(COLUMNS) - 1]) == COLUMNS[:-1] and "is_noisy" in df
  assert len(df) == len(data_lib.load(digits_config.data).train.labels)
  assert df["index"].tolist() == list(range(len(df)))
  assert abs(df["is_noisy"].mean() - 0.3) < 1e-3
  pd.testing.assert_frame_equal(df, pd.read_parquet(tmp_path / "scores.parquet"),
                                check_dtype=False)
  for name in ["detection.json", "config.json", "history.csv"]:
    assert (tmp_path / name).exists()
  # Every example was presented once per epoch.
  assert (df["forgetting"] <= digits_config.num_epochs).all()
  # The suggestion is the true label for most flagged wrong labels, and never the given one.
  truth = data_lib.load(digits_config.data).train.labels
  flagged = pd.read_csv(tmp_path / "flagged.csv")["flagged"].to_numpy() & df["is_noisy"].to_numpy()
  assert (df["suggested_label"] != df["given_label"]).all()
  assert (df["suggested_label"].to_numpy()[flagged] == truth[flagged]).mean() >= 0.9
  assert df["suggested_support"].between(0, 1).all()


def _fit(config, workdir, num_devices):
  ds = data_lib.load(config.data)
  labels, _ = protocol.noisy_labels(config, ds)
  mean, std = ds.mean_std()
  return train.fit(config, ds.train.images, labels, ds.num_classes, workdir, mean, std,
                   mesh=parallel.make_mesh(num_devices))


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_four_devices_match_one(digits_config, tmp_path, model):
  c = digits_config
  c.model.name = model
  c.augment.crop, c.augment.flip = 1, True  # augmentation must not depend on sharding
  c.num_epochs = 1
  one = _fit(c, str(tmp_path / "one"), 1).records
  four = _fit(c, str(tmp_path / "four"), 4).records
  for name, a, b in zip(one.__dataclass_fields__, jax.tree.leaves(one), jax.tree.leaves(four)):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-3,
                               atol=1e-3, err_msg=name)


def _saved_records(workdir, step):
  """The records of a checkpoint as saved (sharded records with their pad rows)."""
  path = os.path.join(workdir, "checkpoints", str(step), "default")
  ckpt = ocp.PyTreeCheckpointer()
  meta = ckpt.metadata(path).item_metadata.tree
  args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), meta)
  return ckpt.restore(path, args=ocp.args.PyTreeRestore(restore_args=args))["records"]


def test_sharded_records_match_replicated(digits_config, tmp_path):
  """Records split over 8 devices equal replicated ones after an epoch; either layout resumes
  the other's checkpoint (1500 examples: 188 rows a device, 4 pad rows never touched)."""
  c = digits_config
  c.num_epochs = 1
  mesh = parallel.make_mesh(8)
  shards = train.init_records(1500, 2, mesh, shard=True).seen.addressable_shards
  assert [s.data.shape for s in shards] == [(2, 188)] * 8
  fits = {}
  for shard in (False, True):
    c.shard_records = shard
    fits[shard] = _fit(c, str(tmp_path / f"shard{shard}"), 8)
  replicated, sharded = fits[False].records, fits[True].records
  assert sharded.seen.shape == (1, 1500) and (sharded.seen == 1).all()
  for name in replicated.__dataclass_fields__:
    np.testing.assert_array_equal(getattr(replicated, name), getattr(sharded, name), name)
  saved = _saved_records(str(tmp_path / "shardTrue"), 24)  # one epoch: ceil(1500 / 64) steps
  assert saved["seen"].shape == (1, 1504) and not saved["seen"][:, 1500:].any()
  # A finished run is restored, not retrained, into the other layout.
  c.shard_records = False
  restored = _fit(c, str(tmp_path / "shardTrue"), 4).records
  for name in replicated.__dataclass_fields__:
    np.testing.assert_array_equal(getattr(restored, name), getattr(sharded, name), name)


def test_four_devices_rank_like_one(digits_config, tmp_path):
  c = digits_config
  c.num_epochs = 15
  scores = []
  for n in (1, 4):
    c.num_devices = n
    scores.append(protocol.train_and_evaluate(c, str(tmp_path / str(n)))["scores"]["aum"])
  rho = stats.spearmanr(*scores).statistic
  assert rho >= 0.99, rho


def test_recording_off_still_trains(digits_config, tmp_path):
  digits_config.record_dynamics = False
  digits_config.num_epochs = 2
  out = protocol.train_and_evaluate(digits_config, str(tmp_path))
  assert out["detection"] is None and "aum" not in out["scores"]
  assert out["test_accuracy"] > 0.5


def test_trajectories_agree_with_streaming_scores(digits_config, tmp_path):
  """The per-epoch trajectories on disk reproduce the O(N) streaming scores."""
  from jaxclean import trajectories
  c = digits_config
  c.num_epochs, c.trajectories, c.aum.skip_epochs = 4, True, 1
  df = protocol.train_and_evaluate(c, str(tmp_path))["scores"]
  margin = trajectories.read(str(tmp_path), "margin")[:, 0]  # the only member
  correct = trajectories.read(str(tmp_path), "correct")[:, 0]
  assert margin.shape == correct.shape == (4, len(df))
  np.testing.assert_allclose(margin[-1], df["margin"], rtol=1e-6)
  np.testing.assert_allclose(margin[1:].mean(0), df["aum"], rtol=1e-5, atol=1e-5)
  events = np.sum(correct[:-1] & ~correct[1:], axis=0)
  np.testing.assert_array_equal(np.where(correct.any(0), events, 4), df["forgetting"])
  np.testing.assert_array_equal(trajectories.read(str(tmp_path), "margin", [3, 1])[:, 0],
                                margin[:, [3, 1]])
  with pytest.raises(FileNotFoundError, match="trajectories"):
    trajectories.read(str(tmp_path / "nope"), "margin")


def test_watch_takes_the_rows_as_arguments(monkeypatch):
  """The early window's watch against numpy, compiled with the rows and labels as arguments:
  its program is as small at 100,000 examples as at 1,000 (as constants, XLA folds them)."""
  from jaxclean import records as records_lib
  from jaxclean import scores as scores_lib
  real, programs = train._watch, []
  monkeypatch.setattr(train, "_watch",
                      lambda *a: programs.append(len(real.lower(*a).as_text())) or real(*a))
  mesh = parallel.make_mesh(1)
  for n in (1_000, 100_000):
    rng = np.random.default_rng(n)
    labels, wrong = rng.integers(0, 4, n), rng.choice(n, n // 10, replace=False)
    r = jax.vmap(lambda _: records_lib.init(n))(np.arange(2))
    r = r.replace(correct=rng.random((2, n)) < 0.3, loss=rng.random((2, n), np.float32),
                  early_seen=np.ones((2, n), np.int16),
                  early_prob=rng.random((2, n), np.float32),
                  early_other=rng.random((2, n), np.float32),
                  suggested=rng.integers(0, 4, (2, n)).astype(np.int16),
                  suggested_vote=np.ones((2, n), np.float32))
    got = train.make_watch(wrong, labels, 4, mesh)(r)
    others = np.setdiff1d(np.arange(n), wrong)
    assert got["copies_accuracy"] == pytest.approx(np.asarray(r.correct)[:, wrong].mean())
    assert got["copies_probability"] == pytest.approx(
        np.exp(-np.asarray(r.loss)[:, wrong]).mean(), rel=1e-5)
    assert got["estimated_wrong_labels"] == int(scores_lib.confident_count(
        jax.tree.map(lambda a: a[:, others], r), labels[others], 4)[0])
  assert programs[1] < 1.2 * programs[0], programs


def test_history_of_an_older_version_is_read_one_based(tmp_path):
  """history.csv numbers epochs from 1; a resumed run's file from before (from 0) is shifted,
  rows past the checkpoint dropped, and written back one-based."""
  from jaxclean import epoch as epoch_lib
  from jaxclean import history as history_lib
  path = tmp_path / "history.csv"
  pd.DataFrame(dict(epoch=[0, 1, 2], train_loss=[3.0, 2.0, 1.0])).to_csv(path, index=False)
  h = history_lib.History(str(tmp_path), 4, lead=True, show=False)
  h.restore({}, 2)  # a checkpoint after epoch 2: the file's third row is past it
  assert [r["epoch"] for r in h.rows] == [1, 2]
  h.end(epoch_lib.End(3, None, None, None, row=dict(epoch=3, train_loss=0.5)))
  assert pd.read_csv(path)["epoch"].tolist() == [1, 2, 3]
  assert history_lib.one_based(pd.read_csv(path))["epoch"].tolist() == [1, 2, 3]
