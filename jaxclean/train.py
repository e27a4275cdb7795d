"""The trainer: train state, the jitted train and eval steps, `evaluate` and `fit`.

The train step is one jitted function over a ("data",) mesh: the batch is
sharded, parameters are replicated, records are replicated or (with
`config.shard_records`) split over the devices, and the records are updated
in place (donated) from the logits the step already computed. An ensemble of
`config.ensemble` members trains in the same step: every parameter, batch
statistic and record carries a leading member axis, and the members are
`jax.vmap`ped over it. What to train on and what to do with the records is
the protocol's business (`jaxclean.protocol`); nothing here writes results.

Cleaning inside the run (`fit`'s `drop`): a `keep` mask of the rows, folded into the
padding mask, takes dropped rows out of the loss, the metrics and the records while
they stay in the batches, so the data order, the steps and the schedule are those of
the run without the drop, and a resumed run is exact.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import tqdm
import tqdm.auto
from absl import logging
import flax
from flax.training import train_state

from jaxclean import checkpoint as checkpoint_lib
from jaxclean import outputs, parallel, rng, trajectories
from jaxclean import records as records_lib
from jaxclean import scores as scores_lib
from jaxclean.augment import augment
from jaxclean.data import arrays, pipeline
from jaxclean import models
from jaxclean.checks import InputError
from jaxclean.optim import make_optimizer

# Settings that change neither the model nor its records: a run may resume with others.
RESUMABLE_KEYS = ("progress", "log_every_steps", "checkpoint", "num_devices", "trajectories",
                  "eval_every_epochs", "clean", "report", "data.cache_dir", "data.data_dir",
                  "exp", "shard_records", "grand")
# ... except these of `clean` when it cleans inside the run (they change the training).
IN_RUN_KEYS = ("clean.method", "clean.at_epoch", "clean.fresh_optimizer")


class TrainState(train_state.TrainState):
  batch_stats: Any = None


@dataclasses.dataclass
class FitResult:
  state: TrainState
  records: records_lib.Records | None  # host copy, (members, N) per field; None when not recorded
  history: pd.DataFrame  # one row per epoch
  keep: np.ndarray  # (N,) bool: the rows still trained on at the end (all, unless `drop`ped)


def create_train_state(config, model, input_shape: tuple[int, ...],
                       steps_per_epoch: int) -> TrainState:
  """`config.ensemble` members of `model`, each initialised from its own fold of the init stream.

  Parameters and batch statistics carry a leading member axis. A model given in Python with variables (`models.given`) starts every member from them
  where their shapes match the model's (a head of another size starts fresh).
  """
  keys = jax.vmap(lambda k: jax.random.fold_in(rng.key(config.seed, "init"), k))(
      jnp.arange(config.ensemble))
  init = lambda k: model.init(k, jnp.zeros((1, *input_shape), jnp.float32), train=False)
  variables = jax.jit(jax.vmap(init))(keys)
  start = models.start_variables(config.model.name)
  if start is not None:
    variables = _start_from(variables, start, config.ensemble)
  paths = model.backbone.paths() if isinstance(model, models.Finetuned) else None
  return TrainState.create(apply_fn=model.apply, params=variables["params"],
                           batch_stats=variables.get("batch_stats"),
                           tx=make_optimizer(config, steps_per_epoch, paths))


def _start_from(variables: dict, start: dict, members: int) -> dict:
  """`variables` (leading member axis) with each leaf of `start` of the same path and shape
  put in its place for every member; InputError if `start` has a path the model lacks."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables), sep="/")
  given = flax.traverse_util.flatten_dict(flax.core.unfreeze(start), sep="/")
  unknown = sorted(set(given) - set(flat))
  if unknown:
    raise InputError(f"variables= has {len(unknown)} entries the model does not, e.g. "
                     f"{unknown[0]!r}; the model's are e.g. {sorted(flat)[:3]}")
  for path, value in given.items():
    if flat[path].shape[1:] == np.shape(value):
      flat[path] = jnp.broadcast_to(jnp.asarray(value, flat[path].dtype), flat[path].shape)
    else:
      logging.warning("variables=: %s has shape %s, the model %s: it starts fresh", path,
                      np.shape(value), flat[path].shape[1:])
  return flax.traverse_util.unflatten_dict(flat, sep="/")


def model_for(config, num_classes: int, input_shape: tuple[int, ...]):
  """The model of `config.model` with `num_classes` outputs, or with `backbone.mode=finetune`
  the backbone with a linear head."""
  if config.backbone.name and config.backbone.mode == "finetune":
    from jaxclean import backbones
    return models.Finetuned(backbones.load(config.backbone.name, config.backbone.image_size,
                                           config.seed), num_classes)
  return models.get_model(config.model.name, num_classes, input_shape,
                          **{k: v for k, v in config.model.items() if k != "name"})


def init_records(num_examples: int, members: int, mesh, shard: bool = False
                 ) -> records_lib.Records:
  """Empty records with a leading member axis, made in place on `mesh`.

  Replicated, or (`shard`) split over the "data" axis with the example axis
  padded up to a multiple of the device count (`parallel.record_rows`).
  """
  rows = parallel.record_rows(num_examples, mesh, shard)
  make = lambda: jax.vmap(lambda _: records_lib.init(rows))(jnp.arange(members))
  return jax.jit(make, out_shardings=parallel.record_sharding(mesh, shard))()


def fresh_optimizer(state: TrainState) -> TrainState:
  """`state` with the optimiser's state made anew (momentum zeroed) for every member.

  Integer leaves (optax's step counts) are kept, so the learning-rate schedule goes on
  where it was instead of starting over.
  """
  fresh = state.tx.init(state.params)
  keep_counts = lambda new, old: old if jnp.issubdtype(old.dtype, jnp.integer) else new
  return state.replace(opt_state=jax.tree.map(keep_counts, fresh, state.opt_state))


def host_records(records: records_lib.Records, num_examples: int) -> records_lib.Records:
  """Host copy of the first `num_examples` rows (less the padding of sharded records)."""
  return jax.tree.map(lambda a: a[..., :num_examples], parallel.fetch(records))


def _logits(state: TrainState, params, batch_stats, x, train: bool):
  """One member's logits (and new batch statistics when training with batch norm)."""
  variables = {"params": params}
  if batch_stats is None:
    return state.apply_fn(variables, x, train=train), None
  variables["batch_stats"] = batch_stats
  if not train:
    return state.apply_fn(variables, x, train=False), None
  logits, updates = state.apply_fn(variables, x, train=True, mutable=["batch_stats"])
  return logits, updates["batch_stats"]


def map_members(fn: Callable, *trees):
  """`fn` on each ensemble member's slice of `trees` (leading member axis), results stacked.

  One vmap on accelerators; on CPU an unrolled loop, since XLA:CPU runs a vmapped
  convolution (a grouped convolution) many times slower than plain ones.
  """
  if jax.default_backend() != "cpu":
    return jax.vmap(fn)(*trees)
  members = jax.tree.leaves(trees)[0].shape[0]
  outs = [fn(*jax.tree.map(lambda a: a[k], trees)) for k in range(members)]
  return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)


def make_train_step(config, mean: np.ndarray, std: np.ndarray, steps_per_epoch: int,
                    record: bool, margin_classes: int | None = None,
                    real_classes: int | None = None) -> Callable:
  """Jitted `(state, records, batch, key, early, keep=None) -> (state, records, metrics)`.

  `batch` holds image, label, index and mask; padding rows (mask False) carry
  no loss and never touch a record. `keep` ((N,) bool, replicated) masks out the
  rows it marks False the same way (they still run through the forward pass,
  and batch norm's statistics, as padding rows do). Metrics come back as (sum, count) pairs,
  averaged over the ensemble's members. With `margin_classes`, the outputs past
  it (the threshold copies' extra class) are left out of the records of
  examples labelled with a real class: their margin is among the real classes.
  `real_classes` limits the suggestion to the first outputs (the real classes).
  `early` (a bool scalar) says whether the step is in the records' early window, which
  like AUM leaves out the first `aum.skip_epochs` epochs.
  With `config.shard_records` the records must be placed as `init_records(...,
  shard=True)` and the step called under `jax.set_mesh`.
  """
  crop, flip = config.augment.crop, config.augment.flip
  skip = config.aum.skip_epochs
  update = functools.partial(
      records_lib.update_sharded if config.shard_records else records_lib.update,
      rival_classes=real_classes)

  def step(state, records, batch, key, early, keep=None):
    key = jax.random.fold_in(key, state.step)
    x = augment(batch["image"].astype(jnp.float32), key, batch["index"], crop, flip)
    x = (x - mean) / std
    labels, mask = batch["label"], batch["mask"]
    if keep is not None:
      mask = mask & keep[batch["index"]]
    weight = mask.astype(jnp.float32)

    def member_loss(params, batch_stats):
      logits, new_stats = _logits(state, params, batch_stats, x, train=True)
      per_example = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
      loss = jnp.sum(per_example * weight) / jnp.maximum(jnp.sum(weight), 1.0)
      return loss, (logits, new_stats, per_example)

    def loss_fn(params):  # members are independent: the sum's gradient is each member's own
      losses, aux = map_members(member_loss, params, state.batch_stats)
      return jnp.sum(losses), aux

    (_, (logits, new_stats, per_example)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    if record:
      count_aum = state.step // steps_per_epoch >= skip
      seen = logits
      if margin_classes is not None:
        extra = jnp.arange(logits.shape[-1]) >= margin_classes
        seen = jnp.where(extra & (labels < margin_classes)[:, None], -1e9, logits)  # finite:
        # -inf would make NaN of the one-hot products in `records.dynamics`
      records = jax.vmap(update, in_axes=(0, None, 0, None, None, None, None))(
          records, batch["index"], seen, labels, mask, count_aum, early & count_aum)
    members = logits.shape[0]
    metrics = dict(loss=jnp.sum(per_example * weight) / members,
                   correct=jnp.sum((jnp.argmax(logits, -1) == labels) * weight) / members,
                   count=jnp.sum(weight))
    state = state.apply_gradients(grads=grads, batch_stats=new_stats)
    return state, records, metrics

  return jax.jit(step, donate_argnums=(0, 1))


def make_eval_step(mean: np.ndarray, std: np.ndarray, mesh, classes: int | None = None
                   ) -> Callable:
  """Jitted `(state, batch) -> (metrics, predictions)`, predictions replicated.

  The ensemble predicts by its members' mean probabilities; `classes` limits
  the prediction to the first `classes` outputs (the real classes, when the
  model also has the threshold examples' extra class).
  """

  def step(state, batch):
    x = (batch["image"].astype(jnp.float32) - mean) / std
    logits, _ = map_members(lambda p, s: _logits(state, p, s, x, train=False),
                            state.params, state.batch_stats)
    logp = jnp.log(jnp.mean(jax.nn.softmax(logits[..., :classes]), axis=0))
    weight = batch["mask"].astype(jnp.float32)
    pred = jnp.argmax(logp, -1)
    labels = batch["label"]
    per_example = -jnp.take_along_axis(logp, labels[:, None], -1)[:, 0]
    metrics = dict(loss=jnp.sum(per_example * weight),
                   correct=jnp.sum((pred == labels) * weight),
                   count=jnp.sum(weight))
    return metrics, pred

  return jax.jit(step, out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)))


def evaluate(eval_step, state, images, labels, batch_size, mesh):
  """(accuracy, mean loss, predictions in example order) over a whole split."""
  n = len(labels)
  preds = np.zeros(n, np.int32)
  totals = dict(loss=0.0, correct=0.0, count=0.0)
  for _, index, mask, batch in pipeline.batches(
      images, labels, batch_size, 0, mesh, range(pipeline.steps_per_epoch(n, batch_size)),
      shuffle=False):
    metrics, pred = eval_step(state, batch)
    preds[index[mask]] = parallel.fetch(pred)[mask]
    for k, v in parallel.fetch(metrics).items():
      totals[k] += float(v)
  return totals["correct"] / totals["count"], totals["loss"] / totals["count"], preds


def run_identity(config, images: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
  """What defines a run: its settings (less `RESUMABLE_KEYS`) and a digest of its data
  (images on disk: of their files, `arrays.digest_into`)."""
  flat = _flatten(json.loads(config.to_json_best_effort()))
  in_run = flat.get("clean.method") == "in_run"
  keep = {k: v for k, v in flat.items() if (in_run and k in IN_RUN_KEYS)
          or not any(k == r or k.startswith(r + ".") for r in RESUMABLE_KEYS)}
  digest = hashlib.blake2b(digest_size=16)
  for a in (images, np.ascontiguousarray(labels, np.int32)):
    arrays.digest_into(digest, a)
  return {**keep, "num_classes": num_classes, "examples": len(labels),
          "data_digest": digest.hexdigest()}


def _flatten(tree: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def _check_finite(metrics: dict, step: int) -> dict:
  out = {k: float(v) for k, v in metrics.items()}
  if not np.isfinite(out["loss"]):
    raise FloatingPointError(f"training loss is {out['loss']} at step {step}")
  return out


def _restore(ckpt, tree: dict, history: list[dict], steps_per_epoch: int, total_steps: int):
  """(start step, tree, history) from the newest readable checkpoint, or step 0 as given."""
  restored = ckpt.restore(tree)
  if not restored:
    return 0, tree, history
  start, tree = restored
  logging.info("resumed from step %d of %d", start, total_steps)
  return start, tree, [h for h in history if h["epoch"] < start // steps_per_epoch]


def make_watch(wrong_rows: np.ndarray, labels: np.ndarray, num_classes: int) -> Callable:
  """What each epoch logs of the early window, from the records (jitted, on device): the
  wrong rows' training accuracy and mean probability of their label, which close the
  window, and `estimated_wrong_labels` among the other rows (`scores.confident_count`
  over the first `num_classes` classes) had the window closed after this epoch."""
  wrong = np.zeros(len(labels), bool)
  wrong[wrong_rows] = True
  rows, others = jnp.asarray(np.flatnonzero(wrong)), jnp.asarray(np.flatnonzero(~wrong))
  other_labels = jnp.asarray(labels[~wrong])

  @jax.jit
  def watch(r: records_lib.Records) -> dict:
    count = scores_lib.confident_count(jax.tree.map(lambda a: a[:, others], r),
                                       other_labels, num_classes)[0]
    return dict(copies_accuracy=jnp.mean(r.correct[:, rows]),
                copies_probability=jnp.mean(jnp.exp(-r.loss[:, rows])),
                estimated_wrong_labels=count)

  return watch


def fit(config, images: np.ndarray, labels: np.ndarray, num_classes: int, workdir: str,
        mean: np.ndarray, std: np.ndarray, test=None, mesh=None, eval_classes=None,
        margin_classes=None, wrong_rows: np.ndarray | None = None,
        on_epoch_end: Callable | None = None,
        drop: Callable[[records_lib.Records, bool], np.ndarray] | None = None) -> FitResult:
  """Trains `config.ensemble` models on (images, labels), recording per-example dynamics.

  Resumes from the newest readable checkpoint in `workdir/checkpoints`; a run
  that already finished is restored, not retrained. Checkpoints of a run with
  other settings or data are refused (`checkpoint.ConfigMismatch`), never
  overwritten. `test` (a split with images and labels) is evaluated every
  `eval_every_epochs` epochs and always after the last, predicting among the
  first `eval_classes` outputs; `margin_classes` is `make_train_step`'s.

  The early window: rows `wrong_rows` are wrong by construction (threshold
  examples), so how well the model fits their labels shows when it starts to memorise
  wrong labels; the window closes after the first epoch (from the
  `config.early.min_epochs`-th on) in which their training accuracy reaches
  `config.early.copies_accuracy` or their mean probability of their label (at the last
  presentation) `config.early.copies_probability`, and the records' early fields stop
  there, whatever the number of epochs. Without such rows it spans the whole run.
  history.csv logs the watched values per epoch (`make_watch`), the count of wrong
  labels had the window closed there included.

  `on_epoch_end(epoch, state)` is called on every process after each epoch trained here
  (not after those a resumed run restored), before its checkpoint (e.g. `grand.After`).

  Cleaning inside the run: `drop(host records, window_open)` is called once, on every
  process, at the end of the epoch `config.clean.at_epoch` (1-based; 0: the epoch in
  which the early window closes), and returns the rows to train on no longer. From the
  next step on they are masked out of the loss, the metrics and the records (`keep`,
  checkpointed with the state; a run without `drop` has none, so it reads the checkpoints
  of older versions); with `config.clean.fresh_optimizer` the optimiser's state is made
  anew (`fresh_optimizer`). history.csv then has `trained` (the rows
  in the epoch's loss) and `kept` (the rows kept for the next epoch) per epoch.
  """
  mesh = mesh or parallel.make_mesh(config.num_devices)
  n, bs = len(labels), config.batch_size
  spe = pipeline.steps_per_epoch(n, bs)
  total_steps = config.num_epochs * spe
  ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                                     keep=config.checkpoint.keep,
                                     every_steps=config.checkpoint.every_steps,
                                     identity=run_identity(config, images, labels, num_classes))
  state = create_train_state(config, model_for(config, num_classes, images.shape[1:]),
                             images.shape[1:], spe)
  records = init_records(n, config.ensemble, mesh, config.shard_records)
  # Running (sum, count) metrics of the current epoch, checkpointed with the state
  # so that an epoch resumed mid-way still logs the whole epoch.
  zero_sums = parallel.replicate({k: np.float32(0) for k in ("loss", "correct", "count")}, mesh)
  state, step_key, early, keep = parallel.replicate(
      (state, rng.key(config.seed, "augment"), np.bool_(True),
       None if drop is None else np.ones(n, bool)), mesh)
  history_path = os.path.join(workdir, "history.csv")
  history = pd.read_csv(history_path).to_dict("records") if os.path.exists(history_path) else []
  epoch_sums = zero_sums
  # What a checkpoint holds, read when called (the loop rebinds these names).
  saved = lambda: dict(state=state, records=records, sums=epoch_sums, early=early,
                       **({} if keep is None else dict(keep=keep)))
  start, tree, history = _restore(ckpt, saved(), history, spe, total_steps)
  state, records, epoch_sums, early = tree["state"], tree["records"], tree["sums"], tree["early"]
  keep = tree.get("keep")
  watch = (None if wrong_rows is None or not len(wrong_rows) or not config.record_dynamics
           else make_watch(wrong_rows, labels, eval_classes or num_classes))

  train_step = make_train_step(config, mean, std, spe, config.record_dynamics, margin_classes,
                               eval_classes)
  eval_step = make_eval_step(mean, std, mesh, eval_classes)

  show = config.progress and jax.process_index() == 0

  def end_epoch(epoch: int, sums: dict, seconds: float) -> tuple[bool, np.ndarray | None]:
    """Logs the epoch (evaluating when due), writes its history and trajectories; says
    whether the early window stays open, and the new keep mask when rows are dropped."""
    row = dict(epoch=epoch, train_loss=sums["loss"] / sums["count"],
               train_accuracy=sums["correct"] / sums["count"], seconds=seconds,
               early=bool(parallel.fetch(early)))
    still_early = row["early"]
    if watch is not None:  # on every process: a reduction over records sharded across them
      row.update({k: v.item() for k, v in parallel.fetch(watch(records)).items()})
      still_early &= not (epoch + 1 >= config.early.min_epochs and (
          row["copies_accuracy"] >= config.early.copies_accuracy
          or row["copies_probability"] >= config.early.copies_probability))
    every = config.eval_every_epochs
    if test is not None and ((every and (epoch + 1) % every == 0)
                             or epoch + 1 == config.num_epochs):
      row["test_accuracy"], row["test_loss"], _ = evaluate(
          eval_step, state, test.images, test.labels, bs, mesh)
    due = drop is not None and (epoch + 1 == config.clean.at_epoch if config.clean.at_epoch
                                else row["early"] and not still_early)
    # On every process: fetching records sharded over processes is a collective.
    host = (host_records(records, n) if (config.trajectories and config.record_dynamics)
            or due else None)
    new_keep = None
    if drop is not None:
      new_keep = parallel.fetch(keep).copy()
      if due:
        new_keep[drop(host, still_early)] = False
      row.update(trained=sums["count"], kept=int(new_keep.sum()))
    history.append(row)
    logging.info("epoch %d: %s", epoch, row)
    if show and "test_accuracy" in row:  # one line per evaluated epoch, above the bar
      tqdm.tqdm.write(f"epoch {epoch + 1}/{config.num_epochs}: train loss "
                      f"{row['train_loss']:.4f}, accuracy {row['train_accuracy']:.4f}; test "
                      f"accuracy {row['test_accuracy']:.4f} ({row['seconds']:.1f} s)")
    if jax.process_index() == 0:  # logs first: a restart drops rows past its checkpoint
      outputs.write_table(history_path, pd.DataFrame(history))
      if host is not None and config.trajectories:
        trajectories.write(workdir, epoch, host)
    return still_early, new_keep if due else None

  # tqdm.auto: a widget in a notebook; disable=None turns the bar off where stderr is no terminal.
  bar = tqdm.auto.tqdm(total=total_steps, initial=start, disable=None if show else True,
                       unit="step", dynamic_ncols=True, leave=False)
  prev, t0 = None, time.time()
  with jax.set_mesh(mesh):
    for step, _, _, batch in pipeline.batches(images, labels, bs, config.seed, mesh,
                                              range(start, total_steps)):
      state, records, metrics = train_step(state, records, batch, step_key, early, keep)
      if prev is not None and jax.process_count() > 1:
        # Keep at most one step in flight: with many collective programs queued,
        # XLA's CPU client (gloo) can deadlock across processes.
        jax.block_until_ready(prev)
      # Read the previous step's metrics: they are ready, so the device never waits.
      if prev is not None and step % config.log_every_steps == 0:
        bar.set_postfix(loss=_check_finite(prev, step - 1)["loss"] / max(float(prev["count"]), 1))
      prev = metrics
      epoch_sums = jax.tree.map(jnp.add, epoch_sums, metrics)
      bar.update(1)
      done = step + 1
      if done % spe == 0:
        still_early, new_keep = end_epoch(step // spe, _check_finite(epoch_sums, step),
                                          time.time() - t0)
        if not still_early:
          early = parallel.replicate(np.bool_(False), mesh)
        if new_keep is not None:
          keep = parallel.replicate(new_keep, mesh)
          if config.clean.fresh_optimizer:
            state = jax.jit(fresh_optimizer,
                            out_shardings=parallel.replicated(mesh))(state)
        if on_epoch_end is not None:
          on_epoch_end(step // spe, state)
        epoch_sums, t0 = zero_sums, time.time()
      ckpt.maybe_save(done, saved(), force=done % spe == 0)
  bar.close()
  ckpt.close()
  return FitResult(state=state,
                   records=host_records(records, n) if config.record_dynamics else None,
                   history=pd.DataFrame(history),
                   keep=np.ones(n, bool) if keep is None else parallel.fetch(keep))
