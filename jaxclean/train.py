"""The trainer: train state, the jitted train and eval steps, `evaluate` and `fit`.

The train step is one jitted function over a ("data",) mesh: the batch is
sharded, parameters are replicated, records are replicated or (with
`config.shard_records`) split over the devices, and the records are updated
in place (donated) from the logits the step already computed. An ensemble of
`config.ensemble` members trains in the same step: every parameter, batch
statistic and record carries a leading member axis, and the members are
`jax.vmap`ped over it. What to train on and what to do with the records is
the protocol's business (`jaxclean.protocol`); nothing here writes results.

Cleaning inside the run (`Clean`, with `fit`'s `drop`): a `keep` mask of the rows, folded into the
padding mask, takes dropped rows out of the loss, the metrics and the records while
they stay in the batches, so the data order, the steps and the schedule are those of
the run without the drop, and a resumed run is exact.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import json
import os
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import tqdm.auto
from absl import logging
import flax
from flax.training import train_state

from jaxclean import checkpoint as checkpoint_lib
from jaxclean import epoch as epoch_lib
from jaxclean import history as history_lib
from jaxclean import parallel, rng, trajectories
from jaxclean import records as records_lib
from jaxclean import scores as scores_lib
from jaxclean.augment import augment
from jaxclean.data import arrays, pipeline
from jaxclean import models
from jaxclean.errors import InputError
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


def finetunes(config) -> bool:
  """Whether the run trains a backbone by name with a linear head (`backbone.mode=finetune`)."""
  return bool(config.backbone.name) and config.backbone.mode == "finetune"


def model_for(config, num_classes: int, input_shape: tuple[int, ...]):
  """The model of `config.model` with `num_classes` outputs, or with `backbone.mode=finetune`
  the backbone with a linear head."""
  if finetunes(config):
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


_EVAL_STEP: dict = {}  # the last eval step made, by its arguments (`make_eval_step`)


def make_eval_step(mean: np.ndarray, std: np.ndarray, mesh, classes: int | None = None
                   ) -> Callable:
  """Jitted `(state, batch) -> (metrics, predictions)`, predictions replicated.

  The ensemble predicts by its members' mean probabilities; `classes` limits
  the prediction to the first `classes` outputs (the real classes, when the
  model also has the threshold examples' extra class). The same arguments give the same
  jitted function, compiled once: a run's per-epoch evaluation and its final prediction
  on the training split (`protocol`) share it.
  """
  key = tuple((a.dtype.str, a.shape, a.tobytes()) for a in map(np.asarray, (mean, std)))
  key += (type(mean), type(std), mesh, classes)
  if key not in _EVAL_STEP:
    _EVAL_STEP.clear()
    _EVAL_STEP[key] = _make_eval_step(mean, std, mesh, classes)
  return _EVAL_STEP[key]


def _make_eval_step(mean: np.ndarray, std: np.ndarray, mesh, classes: int | None) -> Callable:

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


# Eval batches dispatched before the oldest one's results are read (one process): reading
# each batch's results before dispatching the next left the device idle while the host
# built the batch, and the host idle while the device ran it.
EVAL_IN_FLIGHT = 8


def evaluate(eval_step, state, images, labels, batch_size, mesh):
  """(accuracy, mean loss, predictions in example order) over a whole split.

  Up to `EVAL_IN_FLIGHT` batches are in flight (one with several processes: see `Meter`);
  their results are read in batch order, so the sums are the same."""
  n = len(labels)
  preds = np.zeros(n, np.int32)
  totals = dict(loss=0.0, correct=0.0, count=0.0)
  in_flight = collections.deque()
  most = EVAL_IN_FLIGHT if jax.process_count() == 1 else 1

  def read():
    index, mask, (metrics, pred) = in_flight.popleft()
    preds[index[mask]] = parallel.fetch(pred)[mask]
    for k, v in parallel.fetch(metrics).items():
      totals[k] += float(v)

  for _, index, mask, batch in pipeline.batches(
      images, labels, batch_size, 0, mesh, range(pipeline.steps_per_epoch(n, batch_size)),
      shuffle=False):
    in_flight.append((index, mask, eval_step(state, batch)))
    if len(in_flight) >= most:
      read()
  while in_flight:
    read()
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


_add = jax.jit(lambda a, b: jax.tree.map(jnp.add, a, b))  # one dispatch, not one per leaf


class Meter(epoch_lib.Piece):
  """The epoch's training metrics, (sum, count) pairs kept on the device and checkpointed
  (`sums`) so that an epoch resumed mid-way logs the whole epoch; the progress bar; the
  row's first columns. With several processes at most one step is in flight: with many
  collective programs queued, XLA's CPU client (gloo) can deadlock across processes."""

  def __init__(self, config, mesh, steps_per_epoch: int, show: bool):
    self.zero = parallel.replicate({k: np.float32(0) for k in ("loss", "correct", "count")}, mesh)
    self.epochs, self.every, self.show = config.num_epochs, config.log_every_steps, show
    self.total, self.sums = config.num_epochs * steps_per_epoch, self.zero
    self.prev = self.t0 = self.bar = None

  def saved(self) -> dict:
    return dict(sums=self.sums)

  def restore(self, tree: dict, epochs: int) -> None:
    self.sums = tree["sums"]

  def before_step(self) -> dict:
    self.t0 = self.t0 or time.time()  # the epoch's clock starts at its first step
    return {}

  def after_step(self, step: int, metrics: dict) -> None:
    if self.bar is None:  # tqdm.auto: a widget in a notebook; disable=None: off where stderr
      self.bar = tqdm.auto.tqdm(  # is no terminal
          total=self.total, initial=step, disable=None if self.show else True, unit="step",
          dynamic_ncols=True, leave=False)
    if self.prev is not None and jax.process_count() > 1:
      jax.block_until_ready(self.prev)
    # Read the previous step's metrics: they are ready, so the device never waits.
    if self.prev is not None and step % self.every == 0:
      self.bar.set_postfix(loss=_check_finite(self.prev, step - 1)["loss"]
                           / max(float(self.prev["count"]), 1))
    self.prev, self.step = metrics, step
    self.sums = _add(self.sums, metrics)
    self.bar.update(1)

  def end(self, e: epoch_lib.End) -> None:
    e.sums = _check_finite(self.sums, self.step)
    e.row.update(epoch=e.number, train_loss=e.sums["loss"] / e.sums["count"],
                 train_accuracy=e.sums["correct"] / e.sums["count"],
                 seconds=time.time() - self.t0)
    self.sums, self.t0 = self.zero, None
    if e.number == self.epochs:
      self.bar.close()


@functools.partial(jax.jit, static_argnames="num_classes")
def _watch(r: records_lib.Records, rows, others, other_labels, num_classes: int) -> dict:
  count = scores_lib.confident_count(jax.tree.map(lambda a: a[:, others], r), other_labels,
                                     num_classes)[0]
  return dict(copies_accuracy=jnp.mean(r.correct[:, rows]),
              copies_probability=jnp.mean(jnp.exp(-r.loss[:, rows])),
              estimated_wrong_labels=count)


def make_watch(wrong_rows: np.ndarray, labels: np.ndarray, num_classes: int, mesh) -> Callable:
  """What each epoch logs of the early window, from the records (jitted, on device): the
  wrong rows' training accuracy and mean probability of their label, which close the
  window, and `estimated_wrong_labels` among the other rows (`scores.confident_count`
  over the first `num_classes` classes) had the window closed after this epoch. The rows
  and labels are arguments of the jitted function, placed once: as constants, XLA would
  fold them into the program (seconds per epoch at a million examples)."""
  wrong = np.zeros(len(labels), bool)
  wrong[wrong_rows] = True
  args = parallel.replicate((np.flatnonzero(wrong).astype(np.int32),
                             np.flatnonzero(~wrong).astype(np.int32),
                             np.asarray(labels)[~wrong].astype(np.int32)), mesh)
  return lambda r: {k: v.item() for k, v in parallel.fetch(_watch(r, *args, num_classes)).items()}


class Window(epoch_lib.Piece):
  """The early window: `early` (a step input, checkpointed) is True until it closes. Rows
  `wrong_rows` are wrong by construction (threshold examples), so how well the model fits
  their labels shows when it starts to memorise wrong labels; the window closes after the
  first epoch (from the `early.min_epochs`-th on) in which their training accuracy reaches
  `early.copies_accuracy` or their mean probability of their label (at the last
  presentation) `early.copies_probability`, and the records' early fields stop there.
  Without such rows (or records) it spans the whole run. Each row logs `early` and the
  watched values (`make_watch`). After `end`: `open` (it stays open), `closed` (it closed
  at this epoch)."""

  def __init__(self, config, wrong_rows, labels: np.ndarray, num_classes: int, mesh):
    self.config, self.mesh = config.early, mesh
    self.early = parallel.replicate(np.bool_(True), mesh)
    self.watch = (make_watch(wrong_rows, labels, num_classes, mesh) if config.record_dynamics
                  and wrong_rows is not None and len(wrong_rows) else None)
    self.open = self.closed = False

  def saved(self) -> dict:
    return dict(early=self.early)

  def restore(self, tree: dict, epochs: int) -> None:
    self.early = tree["early"]

  def before_step(self) -> dict:
    return dict(early=self.early)

  def end(self, e: epoch_lib.End) -> None:
    was = e.row["early"] = bool(parallel.fetch(self.early))
    self.open = was
    if self.watch is not None:  # on every process: a reduction over records sharded across them
      e.row.update(self.watch(e.records))
      c = self.config
      self.open &= not (e.number >= c.min_epochs and (
          e.row["copies_accuracy"] >= c.copies_accuracy
          or e.row["copies_probability"] >= c.copies_probability))
    self.closed = was and not self.open
    if self.closed:
      self.early = parallel.replicate(np.bool_(False), self.mesh)


class Evaluation(epoch_lib.Piece):
  """The `test` split's accuracy and loss in the row, every `eval_every_epochs` epochs and
  always after the last, predicting among the first `classes` outputs."""

  def __init__(self, config, test, mean, std, mesh, classes: int | None):
    self.config, self.test, self.mesh = config, test, mesh
    self.step = make_eval_step(mean, std, mesh, classes)

  def end(self, e: epoch_lib.End) -> None:
    every = self.config.eval_every_epochs
    if (every and e.number % every == 0) or e.number == self.config.num_epochs:
      e.row["test_accuracy"], e.row["test_loss"], _ = evaluate(
          self.step, e.state, self.test.images, self.test.labels, self.config.batch_size,
          self.mesh)


class Clean(epoch_lib.Piece):
  """Cleaning inside the run: `drop(host records, window open)` is called once, on every
  process, at the end of epoch `clean.at_epoch` (0: the epoch in which `window` closes), and
  returns the rows to train on no longer. From the next step on they are masked out of the
  loss, the metrics and the records (`keep`, a step input, checkpointed; a run without
  `drop` has none, so it reads the checkpoints of older versions); with
  `clean.fresh_optimizer` the optimiser's state is made anew (`fresh_optimizer`). Each row
  has `trained` (the rows in the epoch's loss) and `kept` (those kept for the next)."""

  def __init__(self, config, drop: Callable, window: Window, num_examples: int, mesh):
    self.config, self.drop, self.window, self.mesh = config.clean, drop, window, mesh
    self.keep = parallel.replicate(np.ones(num_examples, bool), mesh)

  def saved(self) -> dict:
    return dict(keep=self.keep)

  def restore(self, tree: dict, epochs: int) -> None:
    self.keep = tree["keep"]

  def before_step(self) -> dict:
    return dict(keep=self.keep)

  def end(self, e: epoch_lib.End) -> None:
    keep = parallel.fetch(self.keep).copy()
    if e.number == self.config.at_epoch if self.config.at_epoch else self.window.closed:
      keep[self.drop(e.host(), self.window.open)] = False
      self.keep = parallel.replicate(keep, self.mesh)
      if self.config.fresh_optimizer:
        e.state = jax.jit(fresh_optimizer, out_shardings=parallel.replicated(self.mesh))(e.state)
    e.row.update(trained=e.sums["count"], kept=int(keep.sum()))


def fit(config, images: np.ndarray, labels: np.ndarray, num_classes: int, workdir: str,
        mean: np.ndarray, std: np.ndarray, test=None, mesh=None, eval_classes=None,
        margin_classes=None, wrong_rows: np.ndarray | None = None,
        drop: Callable[[records_lib.Records, bool], np.ndarray] | None = None,
        pieces: Sequence[epoch_lib.Piece] = ()) -> FitResult:
  """Trains `config.ensemble` models on (images, labels), recording per-example dynamics.

  Resumes from the newest readable checkpoint in `workdir/checkpoints` (a finished run is
  restored, not retrained; another run's are refused: `checkpoint.ConfigMismatch`). At each
  epoch's end the pieces (`epoch.Piece`) run in order: `Meter`, the early `Window` over
  `wrong_rows`, `Evaluation` of `test` (among the first `eval_classes` outputs), `Clean`
  with `drop`, `history.History`, `trajectories.Writer`, then `pieces` (e.g. `grand.After`).
  `margin_classes` is `make_train_step`'s.
  """
  mesh = mesh or parallel.make_mesh(config.num_devices)
  n, shape, lead = len(labels), images.shape[1:], jax.process_index() == 0
  spe = pipeline.steps_per_epoch(n, config.batch_size)
  ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                                     keep=config.checkpoint.keep,
                                     every_steps=config.checkpoint.every_steps,
                                     every_seconds=config.checkpoint.every_seconds,
                                     last_step=config.num_epochs * spe,
                                     identity=run_identity(config, images, labels, num_classes))
  state = create_train_state(config, model_for(config, num_classes, shape), shape, spe)
  state, key = parallel.replicate((state, rng.key(config.seed, "augment")), mesh)
  records = init_records(n, config.ensemble, mesh, config.shard_records)
  window = Window(config, wrong_rows, labels, eval_classes or num_classes, mesh)
  clean = None if drop is None else Clean(config, drop, window, n, mesh)
  history = history_lib.History(workdir, config.num_epochs, lead, config.progress and lead)
  pieces = [p for p in (
      Meter(config, mesh, spe, config.progress and lead), window,
      test is not None and Evaluation(config, test, mean, std, mesh, eval_classes), clean, history,
      config.trajectories and config.record_dynamics and trajectories.Writer(workdir, lead))
            if p] + list(pieces)
  saved = lambda: dict(state=state, records=records, **{k: v for p in pieces
                                                        for k, v in p.saved().items()})
  start, tree = ckpt.restore(saved()) or (0, saved())
  if start:
    logging.info("resumed from step %d of %d", start, config.num_epochs * spe)
  state, records = tree["state"], tree["records"]
  for p in pieces:
    p.restore(tree, start // spe)
  train_step = make_train_step(config, mean, std, spe, config.record_dynamics, margin_classes,
                               eval_classes)
  with jax.set_mesh(mesh):
    for step, _, _, batch in pipeline.batches(images, labels, config.batch_size, config.seed,
                                              mesh, range(start, config.num_epochs * spe)):
      inputs = {k: v for p in pieces for k, v in p.before_step().items()}
      state, records, metrics = train_step(state, records, batch, key, **inputs)
      for p in pieces:
        p.after_step(step, metrics)
      if (step + 1) % spe == 0:
        end = epoch_lib.End((step + 1) // spe, state, records, lambda: host_records(records, n))
        for p in pieces:
          p.end(end)
        state = end.state
      ckpt.maybe_save(step + 1, saved(), epoch_end=(step + 1) % spe == 0)
  ckpt.close()
  return FitResult(state=state,
                   records=host_records(records, n) if config.record_dynamics else None,
                   history=history.frame(),
                   keep=np.ones(n, bool) if clean is None else parallel.fetch(clean.keep))
