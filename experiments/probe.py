"""Dumps every presentation's logits of a default run (with threshold copies), for choosing
the suggestion, the count and the ranking offline from the whole trajectory.

Trains as `jaxclean.train.fit` does (same state, optimiser, data order, augmentation,
copies and margin masking), one member, and writes `logits.npy` (epochs, N + copies, C + 1)
float16 in the order of the run's rows, plus `meta.npz` (labels, truth, copy sources):
  python -m experiments.probe --config=configs/default.py --out=runs/probe/c10n_worst \
      --config.data.name=cifar10 --config.data.cifar10_labels=worst \
      --config.data.train_size=10000 --config.noise.kind=none --config.num_epochs=30
"""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags
from ml_collections import config_flags

from jaxclean import data as data_lib
from jaxclean import parallel, protocol, rng, threshold, train, xla_defaults
from jaxclean.augment import augment
from jaxclean.data import pipeline
from jaxclean.models import get_model

_CONFIG = config_flags.DEFINE_config_file("config")
_OUT = flags.DEFINE_string("out", None, "Output directory.")


def main(argv):
  del argv
  xla_defaults.apply()  # as jaxclean.main, before JAX starts a backend
  xla_defaults.reuse_heap()
  config = _CONFIG.value
  ds = data_lib.load(config.data)
  labels, is_noisy = protocol.noisy_labels(config, ds)
  config = protocol.resolve(config, ds)
  mesh = parallel.make_mesh(1)
  n, c = len(labels), ds.num_classes
  sources = threshold.copy_sources(n, c, config.seed)
  images = data_lib.take(ds.train.images, np.concatenate([np.arange(n), sources]))
  run_labels = np.concatenate([labels, np.full(len(sources), c, labels.dtype)])
  mean, std = ds.mean_std()
  bs, total = config.batch_size, len(run_labels)
  spe = pipeline.steps_per_epoch(total, bs)
  model = get_model(config.model.name, c + 1, images.shape[1:],
                    **{k: v for k, v in config.model.items() if k != "name"})
  state = train.create_train_state(config, model, images.shape[1:], spe)
  state, key = parallel.replicate((state, rng.key(config.seed, "augment")), mesh)
  crop, flip = config.augment.crop, config.augment.flip

  @jax.jit
  def step(state, batch, key):
    key = jax.random.fold_in(key, state.step)
    x = augment(batch["image"].astype(jnp.float32), key, batch["index"], crop, flip)
    x = (x - mean) / std
    w = batch["mask"].astype(jnp.float32)

    def loss_fn(params):
      variables = {"params": jax.tree.map(lambda a: a[0], params)}
      if state.batch_stats is not None:
        variables["batch_stats"] = jax.tree.map(lambda a: a[0], state.batch_stats)
        logits, upd = state.apply_fn(variables, x, train=True, mutable=["batch_stats"])
        stats = jax.tree.map(lambda a: a[None], upd["batch_stats"])
      else:
        logits, stats = state.apply_fn(variables, x, train=True), None
      pe = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
      return jnp.sum(pe * w) / jnp.maximum(jnp.sum(w), 1.0), (logits, stats)

    (_, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads, batch_stats=stats), logits

  eval_step = train.make_eval_step(mean, std, mesh, c)
  out = np.zeros((config.num_epochs, total, c + 1), np.float16)
  acc = []
  t0 = time.time()
  with jax.set_mesh(mesh):
    for s, index, mask, batch in pipeline.batches(images, run_labels, bs, config.seed, mesh,
                                                  range(config.num_epochs * spe)):
      state, logits = step(state, batch, key)
      out[s // spe, index[mask]] = np.asarray(logits)[mask]
      if (s + 1) % spe == 0:
        a = train.evaluate(eval_step, state, ds.test.images, ds.test.labels, bs, mesh)[0]
        acc.append(a)
        print(f"epoch {s // spe + 1}: test {a:.4f} ({time.time() - t0:.0f} s)", flush=True)
  os.makedirs(_OUT.value, exist_ok=True)
  np.save(os.path.join(_OUT.value, "logits.npy"), out)
  np.savez(os.path.join(_OUT.value, "meta.npz"), labels=labels, sources=sources,
           is_noisy=np.zeros(n, bool) if is_noisy is None else is_noisy,
           clean=ds.train_clean_labels if ds.train_clean_labels is not None else ds.train.labels,
           test_accuracy=np.array(acc))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "out"])
  app.run(main)
