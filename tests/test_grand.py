"""GraNd: the jitted per-example gradient norms against a numpy backprop, padding, members,
and the `grand` column of a run (at initialisation, after an epoch, restored)."""

import os

import jax
import numpy as np
import pandas as pd
import pytest

from configs import default
from jaxclean import grand, parallel, protocol, train


def _config(**over):
  c = default.get_config()
  c.model = dict(name="mlp", hidden=(16,))
  c.num_devices = 1
  c.batch_size = 8
  c.progress = False
  c.update(over)
  return c


def _state(config, input_shape, classes):
  return train.create_train_state(config, train.model_for(config, classes, input_shape),
                                  input_shape, 1)


def _numpy_norms(params, x, labels):
  """float64 backprop of CE(softmax(relu(x W0 + b0) W1 + b1), y), one example at a time."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  w0, b0 = p["Dense_0"]["kernel"], p["Dense_0"]["bias"]
  w1, b1 = p["Dense_1"]["kernel"], p["Dense_1"]["bias"]
  out = []
  for xi, yi in zip(x.reshape(len(x), -1).astype(np.float64), labels):
    pre = xi @ w0 + b0
    h = np.maximum(pre, 0)
    z = h @ w1 + b1
    prob = np.exp(z - z.max())
    prob /= prob.sum()
    dz = prob - np.eye(len(z))[yi]
    dpre = (w1 @ dz) * (pre > 0)
    grads = [np.outer(h, dz), dz, np.outer(xi, dpre), dpre]
    out.append(np.sqrt(sum(np.sum(g ** 2) for g in grads)))
  return np.array(out)


def _digits(n):
  from sklearn.datasets import load_digits
  d = load_digits()
  return d.images[:n, :, :, None].astype(np.float32), d.target[:n].astype(np.int32)


def test_norms_match_numpy_backprop_and_skip_padding():
  c = _config()
  images, labels = _digits(21)  # 21 = 2 full batches of 8 and one with 3 padding rows
  mean, std = images.mean(), images.std()
  state = _state(c, images.shape[1:], 10)
  mesh = parallel.make_mesh(1)
  params = jax.tree.map(lambda a: a[0], state.params)
  want = _numpy_norms(params, (images - mean) / std, labels)
  got = grand.grand(state, images, labels, mean, std, c.batch_size, mesh)
  assert got.shape == (21,)
  np.testing.assert_allclose(got, want, rtol=2e-5)
  # One batch by hand: padding rows (mask False) score 0 whatever their pixels.
  mask = np.arange(8) < 5
  batch = dict(image=images[:8], label=labels[:8], mask=mask, index=np.arange(8))
  with jax.set_mesh(mesh):
    norms = np.asarray(grand.make_step(mean, std, mesh)(state, batch))
  assert norms.shape == (1, 8) and (norms[0, ~mask] == 0).all()
  np.testing.assert_allclose(norms[0, mask], want[:5], rtol=2e-5)


def test_ensemble_average_is_the_mean_of_its_members():
  c = _config(ensemble=3)
  images, labels = _digits(20)
  mean, std = images.mean(), images.std()
  state = _state(c, images.shape[1:], 10)
  mesh = parallel.make_mesh(1)
  members = [grand.grand(state.replace(params=jax.tree.map(lambda a: a[k:k + 1], state.params)),
                         images, labels, mean, std, c.batch_size, mesh) for k in range(3)]
  assert not np.allclose(members[0], members[1])  # distinct initialisations
  np.testing.assert_allclose(grand.grand(state, images, labels, mean, std, c.batch_size, mesh),
                             np.mean(members, axis=0), rtol=1e-6)


@pytest.mark.parametrize("epochs", [0, 1])
def test_run_writes_a_grand_column(tmp_path, epochs):
  """Digits with threshold copies: one finite GraNd per original (not per copy); after
  epoch 1 saved as it is computed, and read back when the finished run is restored."""
  c = _config(num_epochs=2, batch_size=64)
  c.data.train_size = 300
  c.data.eval_size = 100
  c.grand.epochs = epochs
  out = protocol.train_and_evaluate(c, str(tmp_path))
  df = pd.read_csv(tmp_path / "scores.csv")
  assert len(df) == 300 and np.isfinite(df["grand"]).all() and (df["grand"] > 0).all()
  assert "grand" in out["detection"].index
  path = tmp_path / f"grand_epoch{epochs}.npy"
  np.testing.assert_allclose(np.load(path), df["grand"], rtol=1e-6)
  if epochs:  # restored, not retrained: the hook does not run, the file gives the values
    os.remove(tmp_path / "scores.csv")
    again = protocol.train_and_evaluate(c, str(tmp_path))
    np.testing.assert_array_equal(again["scores"]["grand"], df["grand"].to_numpy(np.float32))
