"""The protocol's defects, each fixed with a test: retraining overrides, reused workdirs,
the last epoch's evaluation, predictions among the real classes."""

import os

import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from conftest import ROOT
from jaxclean import checkpoint, protocol


def _parse(config_file, *overrides):
  """The config as the real command line builds it (config_flags on a fresh FlagValues)."""
  argv = ["prog", f"--config={os.path.join(ROOT, config_file)}", *overrides]
  fv = flags.FlagValues()
  holder = config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True,
                                           sys_argv=argv)
  fv(argv)
  return holder.value


def test_retrain_overrides_leave_the_detection_run_alone():
  c = _parse("configs/default.py", "--config.clean.retrain.num_epochs=5",
             "--config.clean.retrain.batch_size=32")
  assert (c.num_epochs, c.batch_size) == (20, 128)
  r = protocol.retrain_config(c)
  assert (r.num_epochs, r.batch_size) == (5, 32) and r.aum.threshold_samples == "none"
  unset = protocol.retrain_config(_parse("configs/default.py", "--config.num_epochs=7"))
  assert (unset.num_epochs, unset.batch_size) == (7, 128)  # unset: the detection run's
  e = _parse("configs/exp_detection.py", "--config.eval_every_epochs=3")
  assert e.num_epochs == 10  # eval_every_epochs no longer refers to num_epochs


def _tiny(digits_config):
  c = digits_config
  c.data.train_size, c.num_epochs, c.aum.skip_epochs = 300, 2, 0
  c.model.hidden = (32,)
  return c


def test_workdir_of_another_run_is_refused_and_kept(digits_config, tmp_path):
  c = _tiny(digits_config)
  protocol.train_and_evaluate(c, str(tmp_path))
  ckpts = sorted(os.listdir(tmp_path / "checkpoints"))
  for key, value in (("noise.rate", 0.4), ("seed", 3), ("model.hidden", (16,))):
    other = c.copy_and_resolve_references()
    node, leaf = (other.noise, "rate") if key == "noise.rate" else (
        (other, "seed") if key == "seed" else (other.model, "hidden"))
    node[leaf] = value
    with pytest.raises(checkpoint.ConfigMismatch, match=rf"{key}: .* -> .*another --workdir"):
      protocol.train_and_evaluate(other, str(tmp_path))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ckpts  # nothing deleted
  c.progress = True  # settings that change nothing may differ
  protocol.train_and_evaluate(c, str(tmp_path))


def test_last_epoch_is_always_evaluated(digits_config, tmp_path):
  c = _tiny(digits_config)
  c.num_epochs, c.eval_every_epochs = 3, 2
  out = protocol.train_and_evaluate(c, str(tmp_path))
  assert np.isfinite(out["test_accuracy"]) and np.isfinite(out["history"]["test_accuracy"][1])
  assert np.isnan(out["history"]["test_accuracy"][0])


def test_two_run_predictions_are_real_classes(digits_config, tmp_path):
  c = _tiny(digits_config)
  c.num_epochs, c.aum.threshold_samples = 1, "two_runs"
  out = protocol.train_and_evaluate(c, str(tmp_path))
  assert out["scores"]["final_prediction"].between(0, 9).all()
  assert out["scores"]["suggested_label"].between(0, 9).all()


@pytest.mark.parametrize("n, batch", [(2000, 128), (4095, 128), (4096, 256), (50000, 256)])
def test_vectors_get_twice_the_batch_and_rate_where_an_epoch_keeps_16_steps(n, batch):
  from jaxclean.data import sources
  c = _parse("configs/default.py")
  labels = np.arange(n) % 3
  vectors = sources.from_arrays(c.data, np.zeros((n, 5), np.float32), labels)
  r = protocol.resolve(c, vectors)
  assert (r.batch_size, r.optimizer.lr) == (batch, pytest.approx(0.05 * batch / 128))
  assert n // r.batch_size >= protocol.MIN_STEPS or r.batch_size == 128
  images = sources.from_arrays(c.data, np.zeros((n, 16, 16, 1), np.float32), labels)
  assert (protocol.resolve(c, images).batch_size, c.batch_size) == (128, 128)  # c unchanged
  with c.unlocked():
    c.vector_batch = False
  assert protocol.resolve(c, vectors).batch_size == 128
