"""Cleaning inside the run (`clean.method=in_run`): dropped rows leave the loss, the metrics
and the records from the drop on; the run resumes exactly across the drop; devices agree."""

import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxclean import checks, parallel, protocol, train
from jaxclean import data as data_lib

EPOCHS, AT = 4, 2  # drop after epoch 2 of 4
N, COPIES = 600, 60  # digits' first 600 and N // C threshold copies: 11 steps of 64


def _config(digits_config, **clean):
  c = digits_config
  c.data.train_size, c.num_epochs = N, EPOCHS
  c.model.hidden = (32,)
  c.aum.threshold_samples = "copies"
  c.clean.update({"method": "in_run", "at_epoch": AT, **clean})
  return c


def _record(c, workdir, spy=None, monkeypatch=None):
  """protocol.record on digits; `spy` gets (records, window_open, dropped rows) of the drop."""
  if spy is not None:
    real = protocol._drop_flagged

    def wrapped(*args):
      drop = real(*args)

      def recorded(records, window_open):
        rows = drop(records, window_open)
        spy.append((records, window_open, rows))
        return rows

      return recorded

    monkeypatch.setattr(protocol, "_drop_flagged", wrapped)
  ds = data_lib.load(c.data)
  labels, is_noisy = protocol.noisy_labels(c, ds)
  c = protocol.resolve(c, ds)
  return protocol.record(c, ds, labels, str(workdir), parallel.make_mesh(c.num_devices)), is_noisy


def _rows(found):
  """Records of every row of the run (originals, then copies)."""
  return jax.tree.map(lambda a, b: np.concatenate([a, b], -1), found.records, found.copies)


@pytest.mark.parametrize("at_epoch", [AT, 0])
def test_dropped_rows_stop_training_and_kept_ones_go_on(digits_config, tmp_path, monkeypatch,
                                                        at_epoch):
  c = _config(digits_config, at_epoch=at_epoch)
  if not at_epoch:  # at the window's close, made to come early: one copy learned closes it
    c.early.update(copies_accuracy=1e-6, min_epochs=1)
    c.aum.skip_epochs = 0  # and the window has records from the first epoch on
  spy = []
  found, is_noisy = _record(c, tmp_path, spy, monkeypatch)
  assert len(spy) == 1  # called once
  at_drop, window_open, rows = spy[0]
  assert window_open == bool(at_epoch)
  at = int(at_drop.seen.max())  # epochs trained before the drop
  assert (at_drop.seen == at).all()
  h = found.history
  assert at == (at_epoch or h["early"].sum()) and at < EPOCHS
  dropped = np.zeros(N + COPIES, bool)
  dropped[rows] = True
  assert 0 < dropped[:N].sum() < N
  # The copies go once the window has closed, not before (or it could never close).
  assert not dropped[N:].any() if window_open else dropped[N:].all()
  end = _rows(found)
  for name, value in vars(end).items():  # dropped rows: every field as at the drop
    np.testing.assert_array_equal(value[:, dropped], getattr(at_drop, name)[:, dropped],
                                  err_msg=name)
  assert (end.seen[:, ~dropped] == EPOCHS).all()  # kept rows: presented every epoch
  np.testing.assert_array_equal(found.kept, ~dropped[:N])
  # The loss and metrics count every row before the drop and the kept ones after it.
  assert h["trained"].tolist() == [N + COPIES] * at + [(~dropped).sum()] * (EPOCHS - at)
  assert h["kept"].tolist() == [N + COPIES] * (at - 1) + [(~dropped).sum()] * (EPOCHS - at + 1)
  s = protocol.in_run_summary(found, is_noisy)
  assert (s["epoch"], s["removed"], s["kept"]) == (at, dropped[:N].sum(), N - dropped[:N].sum())
  assert s["precision"] > (0.5 if at_epoch else 0) and 0 < s["recall"] <= 1  # 1 epoch: weak
  # The flags at the end are computed as without the drop, from the final records.
  assert found.flags["flagged"].shape == (N,)


def _final_params(workdir):
  """The parameters of the last checkpoint."""
  d = os.path.join(workdir, "checkpoints")
  path = os.path.join(d, str(max(int(s) for s in os.listdir(d) if s.isdigit())), "default")
  meta = ocp.PyTreeCheckpointer().metadata(path).item_metadata.tree
  args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), meta)
  tree = ocp.PyTreeCheckpointer().restore(path, args=ocp.args.PyTreeRestore(restore_args=args))
  return tree["state"]["params"], tree["state"]["opt_state"]


@pytest.mark.parametrize("fresh", [False, True])
def test_resume_before_and_after_the_drop_is_exact(digits_config, tmp_path, fresh):
  c = _config(digits_config, fresh_optimizer=fresh)
  c.checkpoint.update(every_steps=5, keep=100)
  spe = -(-(N + COPIES) // c.batch_size)
  ref, _ = _record(c, tmp_path / "ref")
  # Resume mid-epoch before the drop (epoch 1) and after it (epoch 3): a killed run's restart.
  for name, resume in (("before", spe + 5), ("after", AT * spe + 5)):
    d = tmp_path / name
    shutil.copytree(tmp_path / "ref", d)
    for s in os.listdir(d / "checkpoints"):
      if s.isdigit() and int(s) > resume:
        shutil.rmtree(d / "checkpoints" / s)
    got, _ = _record(c, d)
    for field, value in vars(_rows(ref)).items():
      np.testing.assert_array_equal(getattr(_rows(got), field), value, err_msg=f"{name} {field}")
    np.testing.assert_array_equal(got.kept, ref.kept)
    np.testing.assert_array_equal(got.predicted, ref.predicted)
    columns = ["epoch", "trained", "kept"]
    assert got.history[columns].equals(ref.history[columns])
    jax.tree.map(np.testing.assert_array_equal, _final_params(d), _final_params(tmp_path / "ref"))


def test_fresh_optimizer_zeroes_momentum_and_keeps_the_schedule_count(digits_config):
  c = digits_config
  c.ensemble, c.optimizer.schedule = 2, "cosine"
  model = train.model_for(c, 10, (8, 8, 1))
  state = train.create_train_state(c, model, (8, 8, 1), 10)
  grads = jax.tree.map(np.ones_like, state.params)
  state = state.apply_gradients(grads=grads).apply_gradients(grads=grads)
  fresh = train.fresh_optimizer(state)
  leaves = lambda s: jax.tree.leaves(s.opt_state)
  assert [l.shape for l in leaves(fresh)] == [l.shape for l in leaves(state)]  # stacked members
  for old, new in zip(leaves(state), leaves(fresh)):
    if np.issubdtype(old.dtype, np.integer):
      assert int(new) == int(old) == 2  # the schedule goes on
    else:
      assert np.abs(old).max() > 0 and not np.asarray(new).any()  # momentum zeroed


def test_eight_devices_match_one(digits_config, tmp_path):
  c = _config(digits_config)
  one, _ = _record(c, tmp_path / "one")
  c.num_devices = 8
  eight, _ = _record(c, tmp_path / "eight")
  np.testing.assert_array_equal(eight.kept, one.kept)
  for field, value in vars(_rows(one)).items():
    np.testing.assert_allclose(getattr(_rows(eight), field), value, rtol=1e-4, atol=1e-5,
                               err_msg=field)


@pytest.mark.parametrize("key, value, message", [
    ("clean.at_epoch", -1, r"clean.at_epoch must be in \[0, num_epochs=4\)"),
    ("clean.at_epoch", 4, r"clean.at_epoch must be in \[0, num_epochs=4\)"),
    ("aum.threshold_samples", "none", "clean.method=in_run needs aum.threshold_samples=copies"),
    ("aum.threshold_samples", "two_runs", "clean.method=in_run needs aum.threshold_samples=copies"),
    ("record_dynamics", False, "clean.method=in_run needs .*record_dynamics"),
])
def test_bad_settings_are_refused(digits_config, key, value, message):
  c = _config(digits_config)
  checks.check_config(c)  # these settings pass, each change below does not
  *parents, leaf = key.split(".")
  node = c
  for p in parents:
    node = node[p]
  node[leaf] = value
  with pytest.raises(checks.InputError, match=message):
    checks.check_config(c)
