"""Data-parallel training that records every example's dynamics as it trains.

`fit` trains one model and returns its per-example records; `train_and_evaluate`
is the whole job behind `python -m jaxclean.main`: load data, inject noise,
fit, score every label, write the tables. The train step is one jitted
function over a ("data",) mesh: the batch is sharded, parameters and records
are replicated, and the records are updated in place (donated) from the
logits the step already computed.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pandas as pd
import tqdm
from absl import logging
from flax.training import train_state

from jaxclean import checkpoint as checkpoint_lib
from jaxclean import data as data_lib
from jaxclean import clean, detection, io, noise, parallel, threshold
from jaxclean import trajectories
from jaxclean import records as records_lib
from jaxclean import scores as scores_lib
from jaxclean.augment import augment
from jaxclean.data import pipeline
from jaxclean.models import get_model


class TrainState(train_state.TrainState):
  batch_stats: Any = None


@dataclasses.dataclass
class FitResult:
  state: TrainState
  records: records_lib.Records | None  # host numpy copy; None when not recorded
  history: pd.DataFrame  # one row per epoch


def make_schedule(config, steps_per_epoch: int) -> optax.Schedule:
  o = config.optimizer
  total = config.num_epochs * steps_per_epoch
  warmup = int(o.warmup_epochs * steps_per_epoch)
  if o.schedule == "cosine":
    main = optax.cosine_decay_schedule(o.lr, max(total - warmup, 1))
  elif o.schedule == "step":
    main = optax.piecewise_constant_schedule(
        o.lr, {int(f * total) - warmup: o.drop_factor for f in o.drops})
  elif o.schedule == "constant":
    main = optax.constant_schedule(o.lr)
  else:
    raise ValueError(f"unknown schedule {o.schedule!r}; use cosine, step or constant")
  if not warmup:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, o.lr, warmup), main], [warmup])


def make_optimizer(config, steps_per_epoch: int) -> optax.GradientTransformation:
  """SGD with (Nesterov) momentum and coupled weight decay, as in the references."""
  o = config.optimizer
  return optax.chain(
      optax.add_decayed_weights(o.weight_decay),
      optax.sgd(make_schedule(config, steps_per_epoch), momentum=o.momentum or None,
                nesterov=o.nesterov))


def _variables(state: TrainState, params) -> dict:
  v = {"params": params}
  if state.batch_stats is not None:
    v["batch_stats"] = state.batch_stats
  return v


def make_train_step(config, mean: np.ndarray, std: np.ndarray, steps_per_epoch: int,
                    record: bool) -> Callable:
  """Jitted `(state, records, batch, key) -> (state, records, metrics)`.

  `batch` holds image, label, index and mask; padding rows (mask False) carry
  no loss and never touch a record. Metrics come back as (sum, count) pairs.
  """
  crop, flip = config.augment.crop, config.augment.flip
  skip = config.aum.skip_epochs

  def step(state, records, batch, key):
    key = jax.random.fold_in(key, state.step)
    x = augment(batch["image"].astype(jnp.float32), key, batch["index"], crop, flip)
    x = (x - mean) / std
    labels, mask = batch["label"], batch["mask"]
    weight = mask.astype(jnp.float32)

    def loss_fn(params):
      variables = _variables(state, params)
      if state.batch_stats is None:
        logits, new_stats = state.apply_fn(variables, x, train=True), None
      else:
        logits, updates = state.apply_fn(variables, x, train=True, mutable=["batch_stats"])
        new_stats = updates["batch_stats"]
      per_example = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
      loss = jnp.sum(per_example * weight) / jnp.maximum(jnp.sum(weight), 1.0)
      return loss, (logits, new_stats, per_example)

    (_, (logits, new_stats, per_example)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    if record:
      epoch = state.step // steps_per_epoch
      records = records_lib.update(records, batch["index"], logits, labels, mask,
                                   count_aum=epoch >= skip)
    metrics = dict(loss=jnp.sum(per_example * weight),
                   correct=jnp.sum((jnp.argmax(logits, -1) == labels) * weight),
                   count=jnp.sum(weight))
    state = state.apply_gradients(grads=grads, batch_stats=new_stats)
    return state, records, metrics

  return jax.jit(step, donate_argnums=(0, 1))


def make_eval_step(mean: np.ndarray, std: np.ndarray, mesh) -> Callable:
  """Jitted `(state, batch) -> (metrics, predictions)`, predictions replicated."""

  def step(state, batch):
    x = (batch["image"].astype(jnp.float32) - mean) / std
    logits = state.apply_fn(_variables(state, state.params), x, train=False)
    weight = batch["mask"].astype(jnp.float32)
    pred = jnp.argmax(logits, -1)
    per_example = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
    metrics = dict(loss=jnp.sum(per_example * weight),
                   correct=jnp.sum((pred == batch["label"]) * weight),
                   count=jnp.sum(weight))
    return metrics, pred

  return jax.jit(step, out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)))


def batches(images, labels, batch_size, seed, mesh, steps, shuffle=True):
  """Global device batches for the given steps, built on a background thread."""
  rows = parallel.local_rows(batch_size, mesh)

  def gen():
    for s in steps:
      index, mask = pipeline.batch_indices(len(labels), batch_size, seed, s, shuffle)
      local = pipeline.gather(images, labels, index[rows], mask[rows])
      yield s, parallel.to_global(local, mesh, batch_size)

  return pipeline.prefetch(gen())


def evaluate(eval_step, state, images, labels, batch_size, mesh):
  """(accuracy, mean loss, predictions in example order) over a whole split."""
  n = len(labels)
  preds = np.zeros(n, np.int32)
  totals = dict(loss=0.0, correct=0.0, count=0.0)
  for s, batch in batches(images, labels, batch_size, 0, mesh,
                          range(pipeline.steps_per_epoch(n, batch_size)), shuffle=False):
    metrics, pred = eval_step(state, batch)
    index, mask = pipeline.batch_indices(n, batch_size, 0, s, shuffle=False)
    preds[index[mask]] = parallel.fetch(pred)[mask]
    for k, v in parallel.fetch(metrics).items():
      totals[k] += float(v)
  return totals["correct"] / totals["count"], totals["loss"] / totals["count"], preds


def _check_finite(metrics: dict, step: int) -> dict:
  out = {k: float(v) for k, v in metrics.items()}
  if not np.isfinite(out["loss"]):
    raise FloatingPointError(f"training loss is {out['loss']} at step {step}")
  return out


def fit(config, images: np.ndarray, labels: np.ndarray, num_classes: int, workdir: str,
        mean: np.ndarray, std: np.ndarray, test: data_lib.Split | None = None,
        mesh=None) -> FitResult:
  """Trains one model on (images, labels), recording per-example dynamics.

  Resumes from the newest readable checkpoint in `workdir/checkpoints`; a run
  that already finished is restored, not retrained.
  """
  mesh = mesh or parallel.make_mesh(config.num_devices)
  n, bs = len(labels), config.batch_size
  spe = pipeline.steps_per_epoch(n, bs)
  total_steps = config.num_epochs * spe
  model = get_model(config.model.name, num_classes,
                    **{k: v for k, v in config.model.items() if k != "name"})
  key = jax.random.key(config.seed)
  init_key, step_key = jax.random.split(key)
  variables = jax.jit(model.init, static_argnames="train")(
      init_key, jnp.zeros((1,) + images.shape[1:], jnp.float32), train=False)
  state = TrainState.create(apply_fn=model.apply, params=variables["params"],
                            batch_stats=variables.get("batch_stats"),
                            tx=make_optimizer(config, spe))
  records = records_lib.init(n)
  state, records, step_key = parallel.replicate((state, records, step_key), mesh)

  ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                                     keep=config.checkpoint.keep,
                                     every_steps=config.checkpoint.every_steps)
  history_path = os.path.join(workdir, "history.csv")
  history = (pd.read_csv(history_path).to_dict("records")
             if os.path.exists(history_path) else [])
  # Running (sum, count) metrics of the current epoch, checkpointed with the state
  # so that an epoch resumed mid-way still logs the whole epoch.
  zero_sums = parallel.replicate({k: np.float32(0) for k in ("loss", "correct", "count")}, mesh)
  epoch_sums = zero_sums
  restored = ckpt.restore(dict(state=state, records=records, sums=epoch_sums))
  start = 0
  if restored:
    start, tree = restored
    state, records, epoch_sums = tree["state"], tree["records"], tree["sums"]
    history = [h for h in history if h["epoch"] < start // spe]
    logging.info("resumed from step %d of %d", start, total_steps)

  train_step = make_train_step(config, mean, std, spe, config.record_dynamics)
  eval_step = make_eval_step(mean, std, mesh)
  show = config.progress and jax.process_index() == 0
  bar = tqdm.tqdm(total=total_steps, initial=start, disable=not show, unit="step",
                  dynamic_ncols=True)
  prev, t0 = None, time.time()
  with jax.set_mesh(mesh):
    for step, batch in batches(images, labels, bs, config.seed, mesh,
                               range(start, total_steps)):
      state, records, metrics = train_step(state, records, batch, step_key)
      if prev is not None and jax.process_count() > 1:
        # Keep at most one step in flight: with many collective programs queued,
        # XLA's CPU client (gloo) can deadlock across processes.
        jax.block_until_ready(prev)
      # Read the previous step's metrics: they are ready, so the device never waits.
      if prev is not None and (step % config.log_every_steps == 0):
        bar.set_postfix(loss=_check_finite(prev, step - 1)["loss"] / max(float(prev["count"]), 1))
      prev = metrics
      epoch_sums = jax.tree.map(jnp.add, epoch_sums, metrics)
      bar.update(1)
      done = step + 1
      if done % spe == 0 or done == total_steps:
        epoch = (done - 1) // spe
        sums = _check_finite(epoch_sums, step)
        row = dict(epoch=epoch, train_loss=sums["loss"] / sums["count"],
                   train_accuracy=sums["correct"] / sums["count"],
                   seconds=time.time() - t0)
        if test is not None and (epoch + 1) % config.eval_every_epochs == 0:
          row["test_accuracy"], row["test_loss"], _ = evaluate(
              eval_step, state, test.images, test.labels, bs, mesh)
        history.append(row)
        logging.info("epoch %d: %s", epoch, row)
        epoch_sums, t0 = zero_sums, time.time()
      # Logs first: a restart drops log rows past its checkpoint, never misses one.
      if done % spe == 0 and jax.process_index() == 0:
        io.write_table(history_path, pd.DataFrame(history))
        if config.trajectories and config.record_dynamics:
          trajectories.write(workdir, done // spe - 1, parallel.fetch(records))
      ckpt.maybe_save(done, dict(state=state, records=records, sums=epoch_sums),
                      force=done % spe == 0 or done == total_steps)
  bar.close()
  ckpt.close()
  return FitResult(state=state,
                   records=parallel.fetch(records) if config.record_dynamics else None,
                   history=pd.DataFrame(history))


def noisy_labels(config, ds: data_lib.Dataset) -> tuple[np.ndarray, np.ndarray | None]:
  """Training labels after noise injection, and the ground-truth mask if known."""
  labels = ds.train.labels
  if config.noise.kind != "none":
    return noise.inject(labels, ds.num_classes, config.noise.kind, config.noise.rate,
                        config.noise.seed, config.noise.pairs)
  if ds.train_clean_labels is not None:
    return labels, labels != ds.train_clean_labels
  return labels, None


def score_table(records: records_lib.Records | None, labels: np.ndarray,
                predicted: np.ndarray, is_noisy: np.ndarray | None) -> pd.DataFrame:
  """One row per training example in source order."""
  df = pd.DataFrame(dict(index=np.arange(len(labels)), given_label=labels,
                         predicted_label=predicted))
  if records is not None:
    values = scores_lib.all_scores(records)
    for name in scores_lib.SCORES:
      df[name] = np.asarray(values[name])
  if is_noisy is not None:
    df["is_noisy"] = is_noisy
  return df


@dataclasses.dataclass
class Detection:
  records: records_lib.Records | None  # host copy, each example from a run that scored it
  predicted: np.ndarray  # eval-mode prediction on every training example
  history: pd.DataFrame
  flagged: dict[str, np.ndarray] | None  # threshold-sample flags, see `threshold.flag`


def detect(config, ds: data_lib.Dataset, labels: np.ndarray, workdir: str, mesh) -> Detection:
  """Trains and records: one run, or two threshold-sample runs (`config.aum.threshold_samples`)."""
  mean, std = ds.mean_std()
  eval_step = make_eval_step(mean, std, mesh)
  num_runs = 2 if config.aum.threshold_samples else 1
  runs = []
  for run in range(num_runs):
    run_labels, classes, samples = labels, ds.num_classes, np.zeros(0, np.int64)
    if config.aum.threshold_samples:
      samples = threshold.samples(len(labels), ds.num_classes, config.seed, run)
      run_labels, classes = threshold.relabel(labels, samples, ds.num_classes), classes + 1
    result = fit(config, ds.train.images, run_labels, classes,
                 os.path.join(workdir, f"threshold_run{run}") if num_runs > 1 else workdir,
                 mean, std, test=ds.test, mesh=mesh)
    with jax.set_mesh(mesh):
      _, _, predicted = evaluate(eval_step, result.state, ds.train.images, run_labels,
                                 config.batch_size, mesh)
    runs.append((result, predicted, samples))
  if num_runs == 1:
    result, predicted, _ = runs[0]
    return Detection(result.records, predicted, result.history, None)
  # Each example takes its records from the first run in which it is not a sample.
  (r0, p0, s0), (r1, p1, _) = runs
  in_s0 = np.zeros(len(labels), bool)
  in_s0[s0] = True
  records = (jax.tree.map(lambda a, b: np.where(in_s0, b, a), r0.records, r1.records)
             if config.record_dynamics else None)
  flagged = None
  if config.record_dynamics:
    aums = [np.asarray(scores_lib.aum(r.records)) for r, _, _ in runs]
    flagged = threshold.flag(aums, [s for _, _, s in runs], config.aum.percentile)
  return Detection(records, np.where(in_s0, p1, p0), r0.history, flagged)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The main job: train, record, score every training label, write tables.

  Writes to `workdir` (process 0 only): scores.csv/.parquet, history.csv,
  config.json; detection.json when the wrong labels are known; flagged.csv
  with threshold samples; retrain.json when `config.clean.method` is set.
  Returns a dict with the score table, the detection table (or None), the
  flags, the test accuracy and, after cleaning, the retraining summary.
  """
  ds = data_lib.load(config.data)
  labels, is_noisy = noisy_labels(config, ds)
  mesh = parallel.make_mesh(config.num_devices)
  lead = jax.process_index() == 0
  if lead:
    io.write_text(os.path.join(workdir, "config.json"), config.to_json_best_effort(indent=2))
  found = detect(config, ds, labels, workdir, mesh)
  df = score_table(found.records, labels, found.predicted, is_noisy)
  det = None
  if is_noisy is not None and found.records is not None and 0 < is_noisy.sum() < len(labels):
    det = detection.table({k: df[k].to_numpy() for k in scores_lib.SCORES}, is_noisy)
  test_acc = (found.history["test_accuracy"].iloc[-1]
              if "test_accuracy" in found.history else None)
  if lead:
    io.write_table(os.path.join(workdir, "scores.csv"), df)
    if found.flagged is not None:
      io.write_table(os.path.join(workdir, "flagged.csv"), pd.DataFrame(dict(
          index=df["index"], flagged=found.flagged["flagged"], aum=found.flagged["aum"],
          threshold=found.flagged["threshold"])))
      print(f"AUM threshold samples flag {found.flagged['flagged'].sum()} of {len(labels)} "
            f"(thresholds {np.round(found.flagged['thresholds'], 4).tolist()})")
    if det is not None:
      io.write_json(os.path.join(workdir, "detection.json"), det.to_dict(orient="index"))
      print(f"\nDetection of {int(is_noisy.sum())} wrong labels among {len(labels)}:")
      print(det.drop(columns="k").to_string(float_format="%.4f"))
    print(f"test accuracy {test_acc}")
  out = dict(scores=df, detection=det, flagged=found.flagged, test_accuracy=test_acc,
             history=found.history)
  if config.clean.method != "none":
    out["retrain"] = clean_and_retrain(config, ds, labels, is_noisy, df, found.flagged,
                                       workdir, mesh)
  return out


def clean_and_retrain(config, ds: data_lib.Dataset, labels: np.ndarray,
                      is_noisy: np.ndarray | None, scores: pd.DataFrame, flagged: dict | None,
                      workdir: str, mesh, method: str | None = None) -> dict:
  """Removes examples by `method` (default `config.clean.method`), retrains from
  scratch with `config.clean.retrain` overrides, reports clean-test accuracy."""
  c = config.clean
  method = method or c.method
  removed = clean.removal(method, scores, flagged, is_noisy, c.fraction, c.score, c.seed,
                          c.count)
  rc = config.copy_and_resolve_references()
  with rc.unlocked():
    rc.update(c.retrain)
    rc.aum.threshold_samples = False
  keep = ~removed
  mean, std = ds.mean_std()
  result = fit(rc, ds.train.images[keep], labels[keep], ds.num_classes,
               os.path.join(workdir, f"retrain_{method}"), mean, std, test=ds.test, mesh=mesh)
  summary = dict(method=method, removed=int(removed.sum()), kept=int(keep.sum()),
                 test_accuracy=float(result.history["test_accuracy"].iloc[-1]),
                 **clean.precision_recall(removed, is_noisy))
  if jax.process_index() == 0:
    io.write_json(os.path.join(workdir, f"retrain_{method}.json"), summary)
    print(f"retrained after {method}: {summary}")
  return summary
