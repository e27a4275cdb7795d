"""Bring a backbone: pretrained (here tiny random keras-hub ones), the user's own model or
embedding function; frozen and fine-tune modes; the embedding cache."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from conftest import ROOT

pytest.importorskip("keras_hub")

import jaxclean  # noqa: E402
from jaxclean import api, backbones, embed, protocol, train  # noqa: E402
from jaxclean.checks import InputError  # noqa: E402
from jaxclean.data import sources  # noqa: E402

TESTS = os.path.dirname(os.path.abspath(__file__))
FAST = dict(progress=False, num_devices=1, num_epochs=2)


def _images(n=360, flips=36):
  """Digits as 16x16x3 uint8 images, the first `flips` labels moved to the next class."""
  d = load_digits()
  x = np.repeat(np.repeat((d.images * 16).clip(0, 255).astype(np.uint8), 2, 1), 2, 2)
  x = np.repeat(x[..., None], 3, -1)[:n]
  y = d.target[:n].copy()
  y[:flips] = (y[:flips] + 1) % 10
  return x, y


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
  x, y = _images()
  path = tmp_path_factory.mktemp("data") / "d.npz"
  np.savez(path, x_train=x[:300], y_train=y[:300], x_test=x[300:], y_test=y[300:])
  return path


def _main(workdir, *overrides):
  env = dict(os.environ, PYTHONPATH=TESTS)
  return subprocess.run(
      [sys.executable, "-m", "jaxclean.main", "--config=configs/default.py",
       f"--workdir={workdir}", "--config.progress=False", "--config.num_epochs=2",
       *overrides], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_backbone_frozen_command_line_and_cache_reused(npz, tmp_path, monkeypatch):
  cache = tmp_path / "cache"
  r = _main(tmp_path / "w1", f"--config.data.name=npz:{npz}", "--config.backbone.name=tiny_resnet",
            f"--config.data.cache_dir={cache}")
  assert r.returncode == 0, r.stderr[-2000:]
  folders = [f for f in os.listdir(cache / "embeddings") if not f.endswith(".lock")]
  assert len(folders) == 1 and folders[0].startswith("tiny_resnet")
  feats = np.load(cache / "embeddings" / folders[0] / "train.npy")
  assert feats.shape == (300, 1, 1, 64) and np.isfinite(feats).all() and feats.std() > 0
  summary = json.load(open(tmp_path / "w1" / "summary.json"))
  assert summary["image_shape"] == [1, 1, 64] and summary["model"] == "mlp"
  assert len(pd.read_csv(tmp_path / "w1" / "scores.csv")) == 300

  # A second run on the same data and backbone reads the cache: no forward pass at all.
  def no_forward(*args, **kwargs):
    raise AssertionError("the backbone ran although its embeddings were cached")

  monkeypatch.setattr(backbones.Backbone, "apply", no_forward)
  c = api.make_config(dict(FAST, backbone__name="tiny_resnet",
                                    data__cache_dir=str(cache), data__name=f"npz:{npz}"))
  out = protocol.train_and_evaluate(c, str(tmp_path / "w2"))
  assert len(out["scores"]) == 300
  assert sorted(f for f in os.listdir(cache / "embeddings") if not f.endswith(".lock")) == folders


def test_backbone_finetune_command_line(npz, tmp_path):
  r = _main(tmp_path / "w", f"--config.data.name=npz:{npz}", "--config.backbone.name=tiny_dinov2",
            "--config.backbone.mode=finetune", "--config.batch_size=32")
  assert r.returncode == 0, r.stderr[-2000:]
  summary = json.load(open(tmp_path / "w" / "summary.json"))
  assert summary["image_shape"] == [16, 16, 3]  # raw pixels: the backbone trains on them
  assert summary["model"] == "tiny_dinov2 + linear head"
  assert "model tiny_dinov2 + linear head x1" in r.stdout
  scores = pd.read_csv(tmp_path / "w" / "scores.csv")
  assert len(scores) == 300 and scores["combined"].notna().all()
  assert summary["estimated_wrong_labels"] is not None


def test_finetune_trains_the_backbone_at_its_rate_and_only_what_matches(digits_config):
  from jaxclean.data import sources
  c = digits_config
  c.backbone.name, c.backbone.mode = "tiny_resnet", "finetune"
  c.backbone.lr_scale, c.backbone.trainable = 0.1, "conv1"
  c.optimizer.momentum = 0.0
  lr = c.optimizer.lr
  # Backbone and head at lr_scale x lr (protocol.resolve), as a model given with variables.
  ds = sources.from_arrays(c.data, np.zeros((20, 16, 16, 3), np.float32), np.arange(20) % 5)
  c = protocol.resolve(c, ds)
  assert c.optimizer.lr == pytest.approx(lr * 0.1)
  model = train.model_for(c, 5, (16, 16, 3))
  state = train.create_train_state(c, model, (16, 16, 3), 10)
  grads = jax.tree.map(jnp.ones_like, state.params)
  new = state.apply_gradients(grads=grads)
  moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), state.params, new.params)
  paths = model.backbone.paths()
  for path, step in zip(paths, moved["backbone"]):
    assert step == pytest.approx(lr * 0.1 if "conv1" in path else 0.0, rel=1e-5), path
  assert any("conv1" in p for p in paths) and not all("conv1" in p for p in paths)
  assert jax.tree.leaves(moved["Dense_0"]) == pytest.approx([lr * 0.1] * 2, rel=1e-5)
  # Pretrained weights are the start: every member holds the backbone's own values.
  np.testing.assert_allclose(state.params["backbone"][0][0], model.backbone.weights()[0][0])


def test_model_and_embed_on_arrays(tmp_path):
  sys.path.insert(0, TESTS)
  import own_models
  x, y = _images()
  r = jaxclean.find_label_issues(x, y, model=own_models.Small(), workdir=str(tmp_path / "m"),
                                 **FAST)
  assert r.summary["model"].startswith("python:Small") and len(r.scores) == len(y)
  assert np.isin(r.flagged, np.arange(36)).mean() > 0.3  # chance: 0.1
  r = jaxclean.find_label_issues(x, y, embed=own_models.embed, workdir=str(tmp_path / "e"),
                                 data__cache_dir=str(tmp_path / "cache"), **FAST)
  assert r.summary["image_shape"] == [1, 1, 24] and len(r.scores) == len(y)


def test_model_starts_from_the_given_variables(digits_config):
  sys.path.insert(0, TESTS)
  import own_models
  from jaxclean import models
  module = own_models.Small(num_classes=10)
  start = module.init(jax.random.key(3), jnp.zeros((1, 8, 8, 1)), train=False)
  c = digits_config
  c.ensemble = 2
  c.model.name = models.given(module, start)
  state = train.create_train_state(c, train.model_for(c, 11, (8, 8, 1)), (8, 8, 1), 10)
  # (flax names the head Dense_0: it is constructed first, then called on the hidden layer)
  head, hidden = state.params["Dense_0"]["kernel"], state.params["Dense_1"]["kernel"]
  for member in range(2):  # the hidden layer from `start`; the head (11 outputs) fresh
    np.testing.assert_array_equal(hidden[member], start["params"]["Dense_1"]["kernel"])
  assert head.shape == (2, 32, 11) and not np.allclose(head[0], head[1])
  # With variables the whole model trains at backbone.lr_scale x optimizer.lr; without, at lr.
  from jaxclean.data import sources
  ds = sources.from_arrays(c.data, np.zeros((20, 8, 8, 1), np.float32), np.arange(20) % 10)
  assert protocol.resolve(c, ds).optimizer.lr == pytest.approx(
      c.optimizer.lr * c.backbone.lr_scale)
  c.model.name = models.given(module)
  assert protocol.resolve(c, ds).optimizer.lr == c.optimizer.lr
  with pytest.raises(InputError, match="entries the model does not"):
    c.model.name = models.given(module, {"params": {"Other": {"kernel": np.zeros(3)}}})
    train.create_train_state(c, train.model_for(c, 11, (8, 8, 1)), (8, 8, 1), 10)


def test_wrong_shaped_model_or_embedding_refused(npz, tmp_path):
  sys.path.insert(0, TESTS)
  import own_models
  x, y = _images()
  with pytest.raises(InputError, match=r"logits of shape \(batch, 11\).*got \(2, 7\)"):
    jaxclean.find_label_issues(x, y, model=own_models.Fixed(), **FAST)
  with pytest.raises(InputError, match=r"features \(B, D\)"):
    jaxclean.find_label_issues(x, y, embed=own_models.bad_embed,
                               data__cache_dir=str(tmp_path / "c"), **FAST)
  for bad, expected in (("--config.model.name=import:own_models:Fixed", "logits of shape"),
                        ("--config.backbone.name=import:own_models:bad_embed", "features"),
                        ("--config.backbone.name=vit_huge_from_nowhere", "unknown backbone"),
                        ("--config.backbone.mode=thaw", "backbone.mode='thaw'"),
                        ("--config.backbone.trainable=(", "not a regular expression"),
                        ("--config.backbone.lr_scale=-1", "lr_scale >= 0")):
    r = _main(tmp_path / bad[-5:], f"--config.data.name=npz:{npz}", bad)
    assert r.returncode == 2 and expected in r.stderr, r.stderr[-1000:]
    assert len(r.stderr.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / bad[-5:] / "checkpoints")


def test_embedding_matches_one_device_and_resumes(tmp_path, monkeypatch):
  """Split over 8 devices, interrupted and resumed: the features of the plain function."""
  x, y = _images(n=200)
  ds = sources.from_arrays(api.make_config({}).data, x, y, x[:40], y[:40])
  w = jax.random.normal(jax.random.key(0), (16 * 16 * 3, 8))
  fn = lambda w, b: jnp.tanh(b.reshape(len(b), -1) @ w / 1000.0)
  expected = np.asarray(fn(w, x.astype(np.float32)))
  monkeypatch.setattr(embed, "FLUSH_BATCHES", 2)
  calls = []
  real = embed._sharded

  def failing(fn, params, batch_size):
    step = real(fn, params, batch_size)

    def counted(batch):
      calls.append(len(batch))
      if len(calls) == 6:
        raise KeyboardInterrupt  # killed after 4 batches were marked done
      return step(batch)
    return counted

  monkeypatch.setattr(embed, "_sharded", failing)
  with pytest.raises(KeyboardInterrupt):
    embed.embedded(ds, lambda: (fn, w), "proj", str(tmp_path), batch_size=16, progress=False)
  folder = next((tmp_path / "embeddings").glob("*.partial"))
  assert json.load(open(folder / "progress.json")) == {"train": 64}
  monkeypatch.setattr(embed, "_sharded", real)
  assert len(jax.local_devices()) == 8
  out = embed.embedded(ds, lambda: (fn, w), "proj", str(tmp_path), batch_size=16,
                       progress=False)
  np.testing.assert_allclose(np.asarray(out.train.images)[:, 0, 0], expected, atol=1e-5)
  np.testing.assert_allclose(np.asarray(out.test.images)[:, 0, 0], expected[:40], atol=1e-5)
  assert not folder.exists()


def test_backbone_names_say_what_they_download():
  for name in backbones.PRESETS:
    assert "downloads keras-hub preset" in backbones.describe(name)
  with pytest.raises(InputError, match="unknown backbone"):
    backbones.load("resnet9000")
