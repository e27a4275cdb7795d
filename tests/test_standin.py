"""experiments/standin.py end to end at a tiny size: a digits stand-in, one case, two recipes."""

import json

import flax.serialization
import numpy as np
import pandas as pd

from configs import exp_standin
from experiments import standin


def _tiny(tmp_path):
  c = exp_standin.get_config()
  s = dict(c.exp.standins[0], name="digits", data="digits", fit=("train", 400, 1500), epochs=1,
           width=4, embed=(("train", 0, 400), ("test", 0, 297)))
  c.exp.standins = (s,)
  c.exp.cases = (("digits uniform 40%", "digits", 400, "uniform 0.4"),)
  c.exp.seeds = (0,)
  c.exp.recipes = dict(default=("none", {"num_epochs": 2}),
                       linear=("l2", {"num_epochs": 2, "model.name": "mlp", "model.hidden": ()}))
  c.exp.features_dir = str(tmp_path / "features")
  c.exp.results_dir = ""
  c.exp.knn = 5
  c.exp.cleanlab_folds = 2
  c.exp.finetune, c.exp.finetune_overrides = "digits", {"num_epochs": 2}
  c.exp.finetune_seeds, c.exp.finetune_scales = (0,), (0.05, 0.1)
  return c


def test_standin(tmp_path):
  c = _tiny(tmp_path)
  df = standin.run(c, str(tmp_path / "work"))
  features = np.load(tmp_path / "features" / "digits_train.npy")
  assert features.shape == (400, 128) and (features >= 0).all()
  assert np.load(tmp_path / "features" / "digits_test.npy").shape == (297, 128)
  net = standin.model(c.exp.standins[0], 10)
  blob = (tmp_path / "features" / "digits_variables.msgpack").read_bytes()
  variables = flax.serialization.msgpack_restore(blob)
  assert net.apply(variables, np.zeros((2, 8, 8, 1), np.float32), train=False).shape == (2, 10)
  assert set(df["method"]) == {"kNN vote", "cleanlab", "jaxclean", "jaxclean + kNN ranks",
                               "jaxclean + kNN ranks, kNN suggestion", "fine-tuned"}
  assert len(df) == 2 + 2 * 3 + 2 and (df["wrong"] == 160).all()
  # The default's rate fine-tuned is standin.md's; both rates are finetune.md's.
  tuned = df[df["method"] == "fine-tuned"].set_index("lr_scale")
  assert tuned["recipe"].isna()[0.05] and tuned["recipe"][0.1] == "finetuned_lr_scale_0.1"
  for scale in (0.05, 0.1):
    first = (tmp_path / "work" / "runs" / "digits_uniform_40pct" / "seed0"
             / ("finetuned" if scale == 0.05 else "finetuned_lr_scale_0.1") / "config.json")
    assert json.loads(first.read_text())["backbone"]["lr_scale"] == scale
  finetune = (tmp_path / "work" / "finetune.md").read_text()
  assert "| setting | 0.05 | 0.1 |" in finetune
  jax_rows = df[df["method"].isin(["jaxclean", "fine-tuned"])]
  assert jax_rows["corrected"].between(0, 1).all()  # corrected_labels.npy's label accuracy
  assert df["auroc"].between(0, 1).all() and df["after"].between(0, 1).all()
  for name in ("recipe", "standin"):
    md = (tmp_path / "work" / f"{name}.md").read_text()
    assert "Runtime:" in md and "load average" in md and "| setting |" in md
  again = standin.run(c, str(tmp_path / "work"))  # every run read back, nothing trained
  pd.testing.assert_frame_equal(df.drop(columns="seconds"), again.drop(columns="seconds"),
                                check_exact=False)


def test_knn_vote():
  x = np.array([[1, 0], [1, .1], [1, -.1], [0, 1], [.1, 1], [-.1, 1]], np.float32)
  labels = np.array([0, 0, 1, 1, 1, 1])
  share, majority = standin.knn_vote(x, labels, 2, 2, block=4)
  np.testing.assert_allclose(share, [.5, .5, 0, 1, 1, 1])
  assert majority[2] == 0 and (majority[3:] == 1).all()
