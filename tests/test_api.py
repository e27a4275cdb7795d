"""`jaxclean.find_label_issues` and `load_result`: arrays in, the CLI's outputs out."""

import os

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

import jaxclean
from jaxclean import api, protocol, workdir as workdir_lib
from jaxclean.checks import InputError

FAST = dict(progress=False, num_devices=1, num_epochs=2, aum__skip_epochs=0,
            aum__threshold_samples="none")


def _digits(flips=100):
  d = load_digits()
  x, y = d.images.astype(np.uint8), d.target.copy()
  flipped = np.random.default_rng(0).choice(len(y), flips, replace=False)
  y[flipped] = (y[flipped] + 1) % 10
  return x, y, flipped


def test_find_label_issues_returns_the_run_and_its_estimate(tmp_path):
  x, y, flipped = _digits()
  r = jaxclean.find_label_issues(x, y, workdir=str(tmp_path), progress=False, num_devices=1,
                                 num_epochs=3, aum__skip_epochs=0)
  n = len(y)
  assert isinstance(r, jaxclean.LabelIssues) and r.workdir == str(tmp_path)
  assert list(r.label_issues.columns) == ["is_label_issue", "label_score", "given_label",
                                          "predicted_label", "decision"]
  assert len(r.label_issues) == len(r.scores) == n and r.label_issues.index.name == "index"
  np.testing.assert_array_equal(r.label_issues.given_label, y)  # the labels as given: no noise
  assert r.summary["data"] == "arrays" and r.summary["num_examples"] == n
  assert isinstance(r.estimated_wrong_labels, int) and 0 < r.estimated_wrong_labels < n // 2
  assert len(r.flagged) == r.summary["flagged"]
  assert np.isin(r.flagged, flipped).mean() > 0.25  # chance is 100 / 1797
  assert os.path.isfile(r.report) and r.report == str(tmp_path / "report.html")
  again = jaxclean.load_result(str(tmp_path))
  pd.testing.assert_frame_equal(again.scores, r.scores)
  np.testing.assert_array_equal(again.flagged, r.flagged)


def test_same_path_as_the_npz_source(tmp_path, digits_config):
  """The arrays through the API and the same arrays in an .npz through the protocol."""
  x, y, _ = _digits()
  xt, yt = x[:300], y[:300]
  np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
  c = digits_config
  c.data.name, c.noise.kind, c.num_epochs, c.aum.skip_epochs = f"npz:{tmp_path}/d.npz", "none", 2, 0
  via_npz = protocol.train_and_evaluate(c, str(tmp_path / "npz"))["scores"]
  r = jaxclean.find_label_issues(x, y, x_test=xt, y_test=yt, workdir=str(tmp_path / "api"),
                                 batch_size=64, **FAST)
  assert list(r.scores.columns) == list(via_npz.columns) and "aum" in via_npz
  for col in via_npz:
    np.testing.assert_allclose(r.scores[col], via_npz[col], rtol=1e-5, atol=1e-6, err_msg=col)
  assert r.summary["test_accuracy"] == pytest.approx(
      pd.read_csv(tmp_path / "npz" / "history.csv")["test_accuracy"].iloc[-1])


def test_feature_vectors_and_class_names(tmp_path):
  rng = np.random.default_rng(1)
  y = np.arange(300) % 3
  x = rng.normal(size=(300, 5)) + 3.0 * np.eye(3, 5)[y]  # float64 embeddings
  r = jaxclean.find_label_issues(x, y, class_names=["cat", "dog", "owl"],
                                 workdir=str(tmp_path), **FAST)
  assert r.summary["image_shape"] == [1, 1, 5] and r.summary["class_names"] == ["cat", "dog", "owl"]
  assert r.summary["model"] == "mlp" and (r.scores.final_prediction == y).mean() > 0.9


@pytest.mark.parametrize("args, kwargs, message", [
    ((np.zeros((10, 4, 4)), np.zeros(9, int)), {}, r"labels must have shape \(10,\)"),
    ((np.zeros((10, 4, 4)), np.zeros(10)), {}, "labels must be integers"),
    ((np.zeros((10, 4, 4)), np.arange(10) % 2), dict(class_names=["a"]),
     "class_names has 1 names"),
    ((np.zeros(10), np.arange(10) % 2), {}, "images must be 4-D"),
    ((np.full((10, 4, 4), np.nan), np.arange(10) % 2), {}, "NaN or inf"),
    ((np.zeros((10, 4, 4), np.int64) - 1, np.arange(10) % 2), {}, "integers in 0..255"),
    ((np.zeros((10, 4, 4)), np.arange(10) % 2), dict(x_test=np.zeros((3, 4, 4))),
     "both x_test and y_test"),
    ((np.zeros((10, 4, 4)), np.arange(10) % 2), dict(num_epoch=3), "unknown setting num_epoch"),
    ((np.zeros((10, 4, 4)), np.arange(10) % 2), dict(noise__kinds="x"), "unknown setting"),
    ((np.zeros((10, 4, 4)), np.arange(10) % 2), dict(num_epochs="many"),
     "cannot set num_epochs='many'"),
    ((np.zeros((10, 4, 4)), np.arange(10) % 2), dict(noise={"kind": "none"}),
     "noise is a section: set its fields, e.g. noise__kind="),
    ((np.zeros((10, 4, 4)), np.arange(10) % 2), dict(num_epochs=0), "num_epochs must be at least 1"),
    ((np.zeros((10, 4, 4)), np.full(10, 3)), {}, r"use 1 of 4 classes \(only '3'\)"),
])
def test_bad_input_raises_input_error(tmp_path, args, kwargs, message):
  with pytest.raises(InputError, match=message):
    jaxclean.find_label_issues(*args, workdir=str(tmp_path / "w"), progress=False,
                               num_devices=1, **kwargs)
  assert not os.path.exists(tmp_path / "w" / "checkpoints")


def test_a_held_workdir_is_refused(tmp_path):
  x, y, _ = _digits()
  with workdir_lib.hold(str(tmp_path)):
    with pytest.raises(InputError, match=f"workdir {tmp_path} is in use by another run "
                                         rf"\(pid {os.getpid()}\)"):
      jaxclean.find_label_issues(x, y, workdir=str(tmp_path), **FAST)
  with workdir_lib.hold(str(tmp_path)):  # released when the block ends
    pass


def test_load_result_needs_a_finished_workdir(tmp_path):
  with pytest.raises(InputError, match="summary.json is missing"):
    api.load_result(str(tmp_path))
  (tmp_path / "summary.json").write_text("{")
  (tmp_path / "scores.csv").write_text("index\n0\n")
  (tmp_path / "label_issues.csv").write_text("index\n0\n")
  with pytest.raises(InputError, match="unreadable outputs"):
    api.load_result(str(tmp_path))


def test_import_is_light():
  import subprocess
  import sys
  out = subprocess.run([sys.executable, "-c", "import sys, jaxclean; "
                        "print('jax' in sys.modules, 'jaxclean.api' in sys.modules)"],
                       capture_output=True, text=True, check=True).stdout.split()
  assert out == ["False", "False"]
