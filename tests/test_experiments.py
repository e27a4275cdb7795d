"""Each experiment script end to end at a tiny size (digits subset, 1 epoch, one setting)."""

import importlib
import io as io_lib
import pathlib
import re
import subprocess
import sys
import tarfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from configs import default
from experiments import forgetting_curve, settings, tables
from jaxclean import data as data_lib
from third_party import cleanlab_adapter



def _tiny(module: str, **exp):
  """The experiment's CPU config shrunk to digits, 1 epoch, one device, no progress bar."""
  c = importlib.import_module(f"configs.exp_{module}").get_config()
  c.data.name = "digits"
  c.data.train_size = 400
  c.data.eval_size = 0
  c.noise.pairs = ""
  c.model = dict(name="mlp", hidden=(64,))
  c.num_epochs = 1
  c.aum.skip_epochs = 0  # AUM from the first epoch, or one epoch scores nothing
  c.num_devices = 1
  c.progress = False
  c.exp.results_dir = ""
  c.exp.update(exp)
  return c


def _outputs(workdir, name):
  df = pd.read_csv(workdir / f"{name}.csv")
  md = (workdir / f"{name}.md").read_text()
  assert "Runtime:" in md and "nproc=" in md and "| setting |" in md
  assert ", commit " in md and "load average" in md
  return df, md


def test_cleaning(tmp_path):
  from experiments import cleaning
  # keep_all is left out only to save one training: it is `clean.removal`'s, tested there.
  c = _tiny("cleaning", settings=(("uniform", 0.4),),
            methods=("oracle", "random", "aum_threshold", "forgetting"))
  out = cleaning.run(c, str(tmp_path), command="python -m experiments.cleaning ...")
  df, md = _outputs(tmp_path, "cleaning")
  assert list(df["setting"]) == ["uniform 40%"] and len(out) == 1
  row = df.iloc[0]
  assert row["noisy"] == 160
  for m in ("oracle", "random", "aum_threshold", "forgetting"):
    assert 0 <= row[f"{m}_error"] <= 100
  assert "keep_all_error" not in df
  assert row["oracle_precision"] == 1 and row["oracle_recall"] == 1
  assert row["oracle_removed"] == 160
  assert row["random_removed"] == row["aum_flagged"] == row["aum_threshold_removed"]
  assert row["forgetting_removed"] == row["aum_flagged"]
  # Random removal must not be tied to the noise (an equal seed would pick exactly the noisy).
  if row["random_removed"] >= 50:
    assert row["random_precision"] < 0.7
  assert "python -m experiments.cleaning" in md


def test_detection(tmp_path):
  from experiments import detection
  c = _tiny("detection", settings=(("asymmetric", 0.4),), cleanlab_folds=2)
  detection.run(c, str(tmp_path))
  df, md = _outputs(tmp_path, "detection")
  methods = set(df["method"])
  assert {"aum", "forgetting", "el2n", "margin", "loss"} <= methods
  assert ("cleanlab" in methods) == cleanlab_adapter.available()
  assert df["auroc"].between(0, 1).all() and df["ap"].between(0, 1).all()
  assert (df["seconds"] > 0).all()
  assert "## AUROC" in md
  if not cleanlab_adapter.available():
    assert "cleanlab is not installed" in md


@pytest.mark.skipif(not cleanlab_adapter.available(), reason="cleanlab not installed")
def test_cleanlab_pred_probs_are_out_of_sample_probabilities(tmp_path):
  from jaxclean import data as data_lib
  c = _tiny("detection")
  c.num_epochs = 6
  ds = data_lib.load(c.data)
  mean, std = ds.mean_std()
  probs = cleanlab_adapter.cross_val_pred_probs(c, ds.train.images, ds.train.labels, 10, mean,
                                                std, str(tmp_path), folds=2)
  assert probs.shape == (400, 10) and np.isfinite(probs).all()
  np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
  assert np.mean(probs.argmax(1) == ds.train.labels) > 0.5  # clean digits (chance 0.1)


def _fake_cifar10(root, n_train=120, n_test=30):
  """Tiny CIFAR-10 layout: class-coloured 8x8 JPEGs, 'worst' labels 30 % wrong."""
  root.mkdir()
  rng = np.random.default_rng(0)
  clean = np.arange(n_train) % 10
  test = np.arange(n_test) % 10

  def image(label):
    colour = (25 * label, 255 - 25 * label, 128 + 10 * (label % 3))
    pixels = np.clip(np.array(colour) + rng.normal(0, 8, (8, 8, 3)), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8))

  with tarfile.open(root / "cifar10_jpeg.tar.gz", "w:gz") as tar:
    for split, labels in (("train", clean), ("test", test)):
      for i, y in enumerate(labels):
        buf = io_lib.BytesIO()
        image(y).save(buf, "JPEG", quality=95)
        info = tarfile.TarInfo(f"{split}/{i:05d}.jpg")
        info.size = buf.tell()
        buf.seek(0)
        tar.addfile(info, buf)
  noisy = clean.copy()
  wrong = rng.permutation(n_train)[:int(0.3 * n_train)]
  noisy[wrong] = (noisy[wrong] + 1 + rng.integers(0, 9, len(wrong))) % 10
  sets = {k: noisy for k in ("aggre_label", "worst_label", "random_label1", "random_label2",
                             "random_label3")}
  np.savez(root / "labels.npz", train_label=clean, test_label=test,
           class_names=np.array([f"class{c}" for c in range(10)]), **sets)
  return root


def test_real_noise_on_a_fake_cifar10_dir(tmp_path):
  from experiments import real_noise
  c = _tiny("real_noise", label_sets=("worst",))
  c.data.name = "cifar10"
  c.data.data_dir = str(_fake_cifar10(tmp_path / "cifar10"))
  c.data.cache_dir = str(tmp_path / "cache")
  c.data.train_size = 0
  real_noise.run(c, str(tmp_path / "work"))
  df, md = _outputs(tmp_path / "work", "real_noise")
  assert set(df["setting"]) == {"worst"}
  aum = df[df["method"] == "aum_threshold"].iloc[0]
  assert aum["k"] == 36 and 0 <= aum["precision"] <= 1 and 0 <= aum["recall"] <= 1
  assert abs(aum["noise_rate"] - 0.3) < 1e-9
  assert df[df["method"] != "aum_threshold"]["auroc"].between(0, 1).all()


def test_forgetting_curve(tmp_path):
  c = _tiny("forgetting_curve", fractions=(0.0, 0.25))
  forgetting_curve.run(c, str(tmp_path))
  df, md = _outputs(tmp_path, "forgetting_curve")
  assert sorted(df["k"].unique()) == [0, 100]
  assert set(df["removal"]) == {"least_forgotten", "random"}
  assert df["test_accuracy"].between(0, 1).all()
  lf = df[(df["removal"] == "least_forgotten") & (df["k"] == 100)].iloc[0]
  rnd = df[(df["removal"] == "random") & (df["k"] == 100)].iloc[0]
  assert lf["kept"] == rnd["kept"] == 300
  # The least forgotten are removed first: their mean forgetting is the lowest possible.
  assert lf["removed_mean_forgetting"] <= rnd["removed_mean_forgetting"]
  assert lf["removed_unforgettable"] == min(100, lf["unforgettable"])
  # k = 0 is one keep-all run reported for both removals.
  zero = df[df["k"] == 0]
  assert zero["test_accuracy"].nunique() == 1


def test_pruning(tmp_path):
  from experiments import pruning
  c = _tiny("pruning", fractions=(0.5,))
  c.exp.score.update(num_epochs=1, ensemble=2)
  pruning.run(c, str(tmp_path))
  df = pd.read_csv(tmp_path / "pruning.csv")
  assert list(df["score"]) == ["full data", "el2n", "grand", "grand_trained", "random"]
  assert list(df["kept"]) == [400, 200, 200, 200, 200] and df["test_accuracy"].between(0, 1).all()
  assert df["least_kept_class"].between(0, 1).all()
  for key in ("el2n_grand", "el2n_grand_trained", "grand_grand_trained", "grand_input_norm",
              "grand_trained_input_norm"):
    assert -1 <= df[f"{key}_spearman"].iloc[0] <= 1, key
  md = (tmp_path / "pruning.md").read_text()
  assert "Runtime:" in md and "commit" in md
  assert "| fraction | kept | el2n | grand | grand_trained | random |" in md
  # GraNd at initialisation and after the scoring run's epoch, from the one scoring run.
  score = tmp_path / "no_noise" / "score"
  at_init, trained = (np.load(score / f"grand_epoch{e}.npy") for e in (0, 1))
  assert at_init.shape == trained.shape == (400,) and not np.allclose(at_init, trained)
  # The hardest are kept: the k highest values, ties by index.
  assert pruning.hardest(np.array([0.1, 0.5, 0.5, 0.2]), 2).tolist() == [False, True, True, False]


def test_least_forgotten_orders_by_count_then_breaks_ties():
  forgetting = np.array([3, 0, 1, 0, 2])
  assert forgetting_curve.least_forgotten(forgetting, 2, seed=0).tolist() == [
      False, True, False, True, False]
  assert forgetting_curve.least_forgotten(forgetting, 3, seed=0).tolist() == [
      False, True, True, True, False]
  picks = {tuple(np.flatnonzero(forgetting_curve.least_forgotten(forgetting, 1, seed=s)))
           for s in range(20)}
  assert picks == {(1,), (3,)}  # the tie between examples 1 and 3 goes either way


def test_markdown_table_and_settings():
  df = pd.DataFrame(dict(a=["x|y", "z"], b=[1.23456, np.nan], c=[1, 2]))
  assert tables.markdown_table(df).splitlines() == [
      "| a | b | c |", "|---|---|---|", "| x\\|y | 1.2346 | 1 |", "| z | – | 2 |"]
  assert settings.noise_settings((("uniform", 0.4), ("asymmetric", 0.2), ("none", 0))) == [
      ("uniform 40%", {"noise.kind": "uniform", "noise.rate": 0.4}),
      ("asymmetric 20%", {"noise.kind": "asymmetric", "noise.rate": 0.2}),
      ("no noise", {"noise.kind": "none", "noise.rate": 0.0})]
  with pytest.raises(ValueError, match="bad noise setting"):
    settings.noise_settings((("gaussian", 0.1),))


@pytest.mark.parametrize("name", ["cleaning", "detection", "real_noise", "forgetting_curve"])
def test_configs_have_cpu_and_full_scales(name):
  module = importlib.import_module(f"configs.exp_{name}")
  cpu, full = module.get_config(), module.get_config("full")
  assert f"python -m experiments.{name} --config=configs/exp_{name}.py" in module.__doc__
  assert f"configs/exp_{name}.py:full" in module.__doc__
  assert cpu.data.name in ("fashion_mnist", "cifar10") and full.data.name == "cifar10"
  assert full.model.name == "resnet32" and full.num_epochs == 150 and full.batch_size == 64
  assert full.optimizer.lr == 0.1 and full.optimizer.nesterov
  assert full.optimizer.schedule == "constant" and full.optimizer.momentum == 0.9
  assert full.optimizer.weight_decay == 1e-4 and full.augment.crop == 4 and full.augment.flip
  assert full.clean.retrain.num_epochs == 300 and full.clean.retrain.batch_size == 256
  assert full.clean.retrain.optimizer.schedule == "step"
  assert tuple(full.clean.retrain.optimizer.drops) == (0.5, 0.75)
  assert len({cpu.seed, cpu.noise.seed, cpu.clean.seed}) == 3
  with pytest.raises(ValueError, match="unknown scale"):
    module.get_config("huge")


_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _rerun_commands(*names):
  out = subprocess.run(["bash", str(_ROOT / "experiments" / "rerun_all.sh"), "--print", "runs",
                        *names], capture_output=True, text=True, check=True).stdout
  return out.splitlines()


def test_rerun_all_runs_the_documented_commands():
  """experiments/rerun_all.sh runs each table's CPU-scale command of experiments/README.md."""
  readme = (_ROOT / "experiments" / "README.md").read_text()
  documented = dict(re.findall(r"^\| `(\w+)\.py` \|.*?\| `(python -m experiments\.\1 [^`]*)` \|",
                               readme, flags=re.M))
  assert {"compare", "cleaning", "detection", "real_noise", "forgetting_curve",
          "pruning", "clean_in_run"} <= set(documented)
  default = _rerun_commands()
  names = [re.match(r"python -m experiments\.(\w+) ", c).group(1) for c in default]
  assert names == ["detection", "forgetting_curve", "real_noise", "cleaning", "pruning",
                   "clean_in_run"]
  assert default == [documented[n] for n in names]
  assert _rerun_commands("compare") == [documented["compare"]]
  # Every table the script reruns has an end-to-end test at a tiny size in this file.
  tests = [t for t in dir(sys.modules[__name__]) if t.startswith("test_")]
  for n in names:
    assert any(t == f"test_{n}" or t.startswith(f"test_{n}_") for t in tests), n
  bad = subprocess.run(["bash", str(_ROOT / "experiments" / "rerun_all.sh"), "--print", "runs",
                        "nonsense"], capture_output=True, text=True)
  assert bad.returncode == 2 and "unknown table" in bad.stderr


def test_clean_in_run(tmp_path):
  from experiments import clean_in_run
  c = _tiny("clean_in_run", noise=(("uniform", 0.4),), cifar10n=(), at_epochs=(1,))
  c.num_epochs = 3
  clean_in_run.run(c, str(tmp_path), command="python -m experiments.clean_in_run ...")
  df, md = _outputs(tmp_path, "clean_in_run")
  assert list(df["pipeline"]) == ["no cleaning", "retrain", "in_run @1 fresh", "in_run @1 same"]
  assert df["test_accuracy"].between(0, 1).all() and (df["seconds"] > 0).all()
  cleaned = df[df["pipeline"] != "no cleaning"]
  assert (cleaned["removed"] > 0).all() and cleaned["precision"].between(0, 1).all()
  assert (df[df["pipeline"].str.startswith("in_run")]["epoch"] < c.num_epochs).all()
  assert "| setting | no cleaning | retrain | in_run @1 fresh | in_run @1 same |" in md


def test_compare(tmp_path):
  from experiments import compare
  c = _tiny("compare", noise=(("uniform", 0.4),), cifar10n=(), peers=())
  df = compare.run(c, str(tmp_path), command="python -m experiments.compare ...")
  out, md = _outputs(tmp_path, "compare")
  assert set(out["pipeline"]) == {"jaxclean"} and set(out["setting"]) == {"uniform 40%"}
  assert out["auroc"].between(0, 1).all() and len(df) == len(out)
  assert "## AUROC against the known wrong labels" in md


def test_decisions(tmp_path):
  from experiments import decisions
  c = _tiny("decisions", noise=(("uniform", 0.4),), cifar10n=())
  df = decisions.run(c, str(tmp_path), command="python -m experiments.decisions ...")
  out, md = _outputs(tmp_path, "decisions")
  assert list(out["setting"]) == ["uniform 40%"] and out["wrong"].tolist() == [160]
  assert df["given_accuracy"].between(0, 1).all() and "Calibration per case" in md


def _module(*args, cwd=_ROOT) -> str:
  proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                        timeout=600, cwd=cwd)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  return proc.stdout


def test_probe_then_window(tmp_path):
  """experiments.probe dumps a tiny digits run; experiments.window reads it both ways."""
  dumps = tmp_path / "dumps"
  _module("experiments.probe", "--config=configs/default.py", f"--out={dumps / 'digits'}",
          "--config.data.name=digits", "--config.data.train_size=300",
          "--config.model.name=mlp", "--config.num_epochs=4", "--config.progress=False",
          "--config.noise.rate=0.3")
  logits = np.load(dumps / "digits" / "logits.npy")
  assert logits.shape == (4, 300 + 30, 11)
  out = _module("experiments.window", f"--dumps={dumps}", "--thresholds=0.1", "--epochs=4",
                f"--out={tmp_path / 'window.md'}")
  assert re.search(r"\| digits \| 4 \| 0\.1", out) and (tmp_path / "window.md").exists()
  curve = _module("experiments.window", f"--dumps={dumps}", "--curve", "--epochs=4",
                  "--thresholds=0.1")
  assert re.search(r"\| digits \| \d+ \| \d+ \|", curve), curve
  _module("experiments.count", f"--dumps={dumps}", "--budgets=4,8", f"--out={tmp_path / 'count'}")
  table = pd.read_csv(tmp_path / "count" / "count.csv")
  # The replay answers as the run does: the same config trained by the command line.
  workdir = tmp_path / "run"
  _module("jaxclean.main", "--config=configs/default.py", f"--workdir={workdir}",
          "--config.data.name=digits", "--config.data.train_size=300",
          "--config.model.name=mlp", "--config.num_epochs=4", "--config.progress=False",
          "--config.noise.rate=0.3")
  summary = pd.read_json(workdir / "summary.json", typ="series")
  row = table[table["epochs"] == 4].iloc[0]
  assert row["estimate"] == summary["estimated_wrong_labels"]
  assert row["interval"] == "-".join(map(str, summary["estimated_wrong_labels_interval"]))
  assert row["wrong"] == 90 and abs(row["error"] - (row["estimate"] / 90 - 1)) < 1e-9
  # Its AUM count at the close (the last epoch here) is the percentile rule's on the run's
  # own AUMs: scores.csv's originals against threshold_samples.csv's copies.
  assert row["closes_after"] == 4
  aum, copies = (pd.read_csv(workdir / f)["aum"] for f in ("scores.csv", "threshold_samples.csv"))
  assert row["aum99"] == (aum < np.percentile(copies, 99)).sum() / 90 - 1
  # A budget past the dump's epochs is answered only where the window closed within it.
  assert set(table["epochs"]) == ({4, 8} if row["closed"] else {4})
  # experiments.margin decides the run again: its default column is corrected_labels.npy's.
  out = _module("experiments.margin", f"--runs={workdir}:digits", "--margins=0.2,0.9",
                f"--out={tmp_path / 'margin.md'}")
  true = np.asarray(data_lib.load(default.get_config().data).train.labels)[:300]  # digits
  corrected = np.load(workdir / "corrected_labels.npy")
  run_scores = pd.read_csv(workdir / "scores.csv")
  assert (run_scores["given_label"] == true).mean() == 1 - run_scores["is_noisy"].mean() == 0.7
  assert "| 0.7000 |" in out
  assert f"| {(corrected == true).mean():.4f} |" in out and (tmp_path / "margin.md").exists()


def test_fashion_mnist_case(tmp_path):
  if not pathlib.Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists():
    pytest.skip("needs Debian's dataset-fashion-mnist")
  _module("experiments.fashion_mnist_case", f"--out={tmp_path}", "--n=200")
  data = np.load(tmp_path / "data.npz")
  assert data["x_train"].shape[0] == 200 and len(data["class_names"]) == 10
  for name in ("u20", "u40", "a20", "a30", "a40"):
    labels = np.load(tmp_path / f"{name}.npy")
    assert round((labels != data["y_train"]).mean() * 100) == int(name[1:])
