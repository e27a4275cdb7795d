"""The detection protocol behind `python -m jaxclean.main`, on top of the trainer.

Data flow one way: source (`data.load`) -> labels (`noisy_labels`) ->
training with recording (`record`: one run, with or without threshold copies, or the
AUM paper's two threshold runs) ->
scores (`score_table`) -> outputs (`write_outputs`) -> optional removal and
retraining (`retrain`, given the mask of examples to keep), or removal inside the
one run (`clean.method=in_run`: `train.fit`'s `drop`, `in_run_summary`). The trainer
(`jaxclean.train`) builds the steps; this module decides what they train on
and writes what comes out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time

import jax
import ml_collections
import numpy as np
import pandas as pd

from jaxclean import checks, clean, decide, noise, outputs, parallel, quality, report, threshold, train
from jaxclean import compile_cache
from jaxclean import embed as embed_lib
from jaxclean import grand as grand_lib
from jaxclean import workdir as workdir_lib
from jaxclean import data as data_lib
from jaxclean import models
from jaxclean import records as records_lib
from jaxclean import scores as scores_lib


# The score a run ranks by and reports: the first of these that the run has.
RECOMMENDED = ("combined", "aum")


@dataclasses.dataclass
class Recorded:
  """What training left: records of every example and the model's predictions."""
  records: records_lib.Records | None  # host copy, (members, N); each example from a run that scored it
  predicted: np.ndarray  # eval-mode prediction of the final model(s) on every training example
                         # (it has memorised most wrong labels: the suggestion is in the records)
  history: pd.DataFrame
  flags: dict[str, np.ndarray] | None  # threshold flags, see `threshold.flag` and `threshold.cut`
  copies: records_lib.Records | None = None  # records of the threshold copies (copies mode)
  grand: np.ndarray | None = None  # GraNd of every original (`grand.After`), when asked for
  kept: np.ndarray | None = None  # originals still trained on at the end (clean.method=in_run)


def noisy_labels(config, ds: data_lib.Dataset) -> tuple[np.ndarray, np.ndarray | None]:
  """Training labels after noise injection, and the ground-truth mask if known."""
  labels = ds.train.labels
  if config.noise.kind != "none":
    return noise.inject(labels, ds.num_classes, config.noise.kind, config.noise.rate,
                        config.noise.seed, config.noise.pairs)
  if ds.train_clean_labels is not None:
    return labels, labels != ds.train_clean_labels
  return labels, None


def with_backbone(config, ds: data_lib.Dataset, embed=None) -> data_lib.Dataset:
  """The data as the model sees it. Frozen mode (`backbone.name`, or `embed` given in
  Python): every image replaced by its embedding, from the cache or computed once
  (`jaxclean.embed`); fine-tune mode: the raw pixels, which the backbone scales itself."""
  b = config.backbone
  if embed is None and not b.name:
    return ds
  if b.mode == "finetune":
    return dataclasses.replace(ds, raw_pixels=True)
  if embed is not None or b.name.startswith(models.IMPORT):
    user = embed if embed is not None else models.imported(b.name)
    make, name, own = (lambda: ((lambda _, x: user(x)), None)), b.name, True
  else:
    def make():
      from jaxclean import backbones
      backbone = backbones.load(b.name, b.image_size, config.seed)
      return (lambda w, x: backbone.apply(w, x)[0]), backbone.weights()
    name = (b.name + (f"@{b.image_size}" if b.image_size else "")
            + (f"-seed{config.seed}" if b.name.startswith("tiny_") else ""))  # random weights
    own = False
  return embed_lib.embedded(ds, make, name, config.data.cache_dir, b.batch_size,
                            config.progress and jax.process_index() == 0, fingerprint=own)


def check_model(config, num_classes: int, input_shape) -> None:
  """Refuses the user's own model (import: or given in Python) unless it maps a batch of
  examples to (batch, `num_classes`) logits; shapes only, nothing is computed."""
  name = config.model.name
  if not name.startswith(models.OWN):
    return
  model = train.model_for(config, num_classes, input_shape)
  x = jax.ShapeDtypeStruct((2, *input_shape), np.float32)
  try:
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
  except Exception as e:  # the user's module: say what it was given
    raise checks.InputError(f"model {name} fails on a batch of shape {x.shape} "
                            f"(called as model.apply(variables, x, train=...)): "
                            f"{type(e).__name__}: {e}") from None
  if getattr(out, "shape", None) != (2, num_classes):
    copies = config.aum.threshold_samples != "none"
    raise checks.InputError(
        f"model {name} must return logits of shape (batch, {num_classes})"
        + (f" ({num_classes - 1} classes and the threshold copies' extra class; give the "
           "module a num_classes field and jaxclean sets it)" if copies else "")
        + f", got {getattr(out, 'shape', type(out).__name__)} for a batch of 2")


MIN_STEPS = 16  # an epoch of vectors keeps at least this many steps (vector_batch)


def vector_batch(num_examples: int, batch_size: int) -> int:
  """The batch for `num_examples` vectors: twice `batch_size` where an epoch keeps
  `MIN_STEPS` steps, else `batch_size` (experiments/results/standin/recipe.md: x2 answers
  as x1 does on every case; x4 relabels half as many of uniform Fashion-MNIST's wrong
  labels; at 2,000 examples, 4 to 8 steps an epoch overcount by up to 50 %)."""
  double = 2 * batch_size
  return double if num_examples // double >= MIN_STEPS else batch_size


def resolve(config, ds: data_lib.Dataset) -> ml_collections.ConfigDict:
  """A copy of `config` with `model.name='auto'` replaced by the model chosen for the data;
  a pretrained network (a model given with trained variables, or a backbone in fine-tune
  mode), its new head included, at `backbone.lr_scale` times `optimizer.lr` (from
  scratch's rate, it memorises the threshold copies within a few epochs: count 38-62 % low
  on the stand-in table, 10-21 % at a tenth, -4 to +17 % at a twentieth; a head at the
  full rate beside it, 16-35 % low); and, with `vector_batch`, the batch and rate of
  vectors (N, D) doubled together (`vector_batch`): the same answers in half the steps."""
  c = config.copy_and_resolve_references()
  shape = ds.train.images.shape[1:]
  with c.unlocked():
    if c.model.name == "auto":
      c.model.name = models.auto(shape)
    if models.start_variables(c.model.name) is not None or train.finetunes(c):
      c.optimizer.lr *= c.backbone.lr_scale
    if c.vector_batch and shape[:2] == (1, 1):
      batch = vector_batch(len(ds.train), c.batch_size)
      c.optimizer.lr *= batch / c.batch_size
      c.batch_size = batch
  return c


def model_name(config) -> str:
  """The model a run trains, as its first line and summary.json name it: in fine-tune mode
  the backbone with a linear head (`train.model_for`), else `model.name`."""
  if train.finetunes(config):
    return f"{config.backbone.name} + linear head"
  return config.model.name


def record(config, ds: data_lib.Dataset, labels: np.ndarray, workdir: str, mesh) -> Recorded:
  """Trains and records: one run (with threshold copies if asked), or two threshold-sample runs;
  and GraNd of the originals with `config.grand.epochs` >= 0 (the first run's model)."""
  classes = ds.num_classes + (config.aum.threshold_samples != "none")
  after = grand_lib.After(config, ds, labels, classes, mesh, workdir)
  found = _record(config, ds, labels, workdir, mesh, after)
  found.grand = after.value()
  return found


def _record(config, ds, labels, workdir, mesh, after: grand_lib.After) -> Recorded:
  """`record` less GraNd; `after` is a piece of `train.fit` of the first run."""
  mean, std = ds.mean_std()
  eval_step = train.make_eval_step(mean, std, mesh, ds.num_classes)
  if config.aum.threshold_samples == "copies":
    return _record_with_copies(config, ds, labels, workdir, mesh, mean, std, eval_step, after)
  two_runs = config.aum.threshold_samples == "two_runs"
  runs = []
  for run in range(2 if two_runs else 1):
    run_labels, classes, samples = labels, ds.num_classes, np.zeros(0, np.int64)
    if two_runs:
      samples = threshold.samples(len(labels), ds.num_classes, config.seed, run)
      run_labels, classes = threshold.relabel(labels, samples, ds.num_classes), classes + 1
    result = train.fit(config, ds.train.images, run_labels, classes,
                       os.path.join(workdir, f"threshold_run{run}") if two_runs else workdir,
                       mean, std, test=ds.test, mesh=mesh, eval_classes=ds.num_classes,
                       wrong_rows=samples, pieces=() if run else (after,))
    runs.append((result, _predict(eval_step, result.state, ds, labels, config, mesh), samples))
  if not two_runs:
    result, predicted, _ = runs[0]
    return Recorded(result.records, predicted, result.history, None)
  # Each example takes its records from the first run in which it is not a sample.
  (r0, p0, s0), (r1, p1, _) = runs
  in_s0 = np.zeros(len(labels), bool)
  in_s0[s0] = True
  records = (jax.tree.map(lambda a, b: np.where(in_s0, b, a), r0.records, r1.records)
             if config.record_dynamics else None)
  flags = None
  if config.record_dynamics:
    aums = [np.asarray(scores_lib.ensemble_scores(r.records)["aum"]) for r, _, _ in runs]
    flags = threshold.flag(aums, [s for _, _, s in runs], config.aum.percentile)
  return Recorded(records, np.where(in_s0, p1, p0), r0.history, flags)


def _predict(eval_step, state, ds, labels, config, mesh) -> np.ndarray:
  """The trained model's eval-mode prediction on every training example (real classes)."""
  with jax.set_mesh(mesh):
    return train.evaluate(eval_step, state, ds.train.images, labels, config.batch_size, mesh)[2]


def _record_with_copies(config, ds, labels, workdir, mesh, mean, std, eval_step,
                        after: grand_lib.After) -> Recorded:
  """One run on the originals plus N // C copies labelled with the extra class C."""
  n, c = len(labels), ds.num_classes
  sources = threshold.copy_sources(n, c, config.seed)
  images = data_lib.take(ds.train.images, np.concatenate([np.arange(n), sources]))
  run_labels = np.concatenate([labels, np.full(len(sources), c, labels.dtype)])
  in_run = config.clean.method == "in_run"
  result = train.fit(config, images, run_labels, c + 1, workdir, mean, std, test=ds.test,
                     mesh=mesh, eval_classes=c,
                     margin_classes=c if config.aum.copies_margin == "real" else None,
                     wrong_rows=np.arange(n, len(run_labels)), pieces=(after,),
                     drop=_drop_flagged(config, labels, c) if in_run else None)
  predicted = _predict(eval_step, result.state, ds, labels, config, mesh)
  if not config.record_dynamics:
    return Recorded(None, predicted, result.history, None)
  originals = jax.tree.map(lambda a: a[..., :n], result.records)
  copies = jax.tree.map(lambda a: a[..., n:], result.records)
  return Recorded(originals, predicted, result.history,
                  _copies_flags(config, originals, copies, labels, c), copies,
                  kept=result.keep[:n] if in_run else None)


def _copies_flags(config, originals, copies, labels: np.ndarray, num_classes: int) -> dict:
  """The flags of a run with threshold copies, by `config.aum.rule`, from host records."""
  if config.aum.rule == "confident":
    return confident_flags(originals, labels, num_classes)
  return threshold.cut(np.asarray(scores_lib.ensemble_scores(originals)["aum"]),
                       np.asarray(scores_lib.ensemble_scores(copies)["aum"]),
                       config.aum.rule, config.aum.percentile)


def _drop_flagged(config, labels: np.ndarray, num_classes: int):
  """`train.fit`'s `drop` for `clean.method=in_run`: the originals flagged so far (as the
  end of the run flags them) and, once the early window has closed, every threshold copy
  (their job, closing the window, is done; before that they must stay)."""
  n = len(labels)

  def drop(records, window_open: bool) -> np.ndarray:
    originals = jax.tree.map(lambda a: a[..., :n], records)
    copies = jax.tree.map(lambda a: a[..., n:], records)
    flagged = np.flatnonzero(_copies_flags(config, originals, copies, labels,
                                           num_classes)["flagged"])
    return flagged if window_open else np.concatenate(
        [flagged, n + np.arange(copies.seen.shape[-1])])

  return drop


def in_run_summary(found: Recorded, is_noisy: np.ndarray | None) -> dict:
  """clean_in_run.json: after how many epochs the rows were dropped (1-based, as
  `clean.at_epoch`; None when nothing was), the originals removed and kept, the final
  test accuracy, and the removal's precision and recall against the known wrong labels."""
  h = found.history
  dropped = h["epoch"][h["kept"] < len(found.kept) + found.copies.seen.shape[-1]]
  removed = ~found.kept
  return dict(method="in_run", epoch=int(dropped.iloc[0]) if len(dropped) else None,
              removed=int(removed.sum()), kept=int(found.kept.sum()),
              test_accuracy=float(found.history["test_accuracy"].iloc[-1]),
              **clean.precision_recall(removed, is_noisy))


def confident_flags(records, labels: np.ndarray, num_classes: int) -> dict:
  """The count from the early window's confident joint (`scores.confident_count`), and
  that many top suspects by `combined` flagged: the cut at the estimated count."""
  estimate = int(scores_lib.confident_count(records, labels, num_classes)[0])
  score = np.asarray(scores_lib.combined(scores_lib.ensemble_scores(records)["early_el2n"],
                                         labels))
  flagged = np.zeros(len(labels), bool)
  flagged[np.argsort(-score, kind="stable")[:estimate]] = True
  cut = float(score[flagged].min()) if estimate else np.inf
  return dict(flagged=flagged, score=score, threshold=np.full(len(labels), cut),
              estimate=estimate)


def score_table(recorded: Recorded, labels: np.ndarray, is_noisy: np.ndarray | None
                ) -> pd.DataFrame:
  """One row per training example in source order."""
  df = pd.DataFrame(dict(index=np.arange(len(labels)), given_label=labels))
  if recorded.records is not None:
    suggested, support = scores_lib.suggestion(recorded.records)
    df["suggested_label"] = np.asarray(suggested)
    df["suggested_support"] = np.asarray(support)
  df["final_prediction"] = recorded.predicted
  if recorded.records is not None:
    values = scores_lib.ensemble_scores(recorded.records)
    for name in scores_lib.SCORES:
      df[name] = np.asarray(values[name])
    df["combined"] = np.asarray(scores_lib.combined(values["early_el2n"], labels))
  if recorded.grand is not None:
    df["grand"] = recorded.grand
  if is_noisy is not None:
    df["is_noisy"] = is_noisy
  return df


def retrain_config(config) -> ml_collections.ConfigDict:
  """`config` with the `clean.retrain` settings that are set, and no threshold samples."""
  c = config.copy_and_resolve_references()
  with c.unlocked():
    for path, value in _set_leaves(c.clean.retrain.to_dict()):
      *parents, leaf = path
      node = c
      for p in parents:
        node = node[p]
      node[leaf] = value
    c.aum.threshold_samples = "none"
  return c


def _set_leaves(tree: dict, prefix=()):
  for k, v in tree.items():
    if isinstance(v, dict):
      yield from _set_leaves(v, prefix + (k,))
    elif v is not None:
      yield prefix + (k,), v


def retrain(config, ds: data_lib.Dataset, labels: np.ndarray, keep: np.ndarray, workdir: str,
            mesh) -> dict:
  """Trains from scratch on the kept examples with the retraining recipe
  (`retrain_config`); returns the clean-test accuracy and how many were kept."""
  rc = retrain_config(config)
  mean, std = ds.mean_std()
  result = train.fit(rc, data_lib.take(ds.train.images, keep), labels[keep], ds.num_classes,
                     workdir, mean, std, test=ds.test, mesh=mesh)
  return dict(removed=int((~keep).sum()), kept=int(keep.sum()),
              test_accuracy=float(result.history["test_accuracy"].iloc[-1]))


def detection_table(df: pd.DataFrame, is_noisy: np.ndarray | None) -> pd.DataFrame | None:
  """Quality of every recorded score against the known wrong labels (None if unknown)."""
  names = [s for s in scores_lib.SUSPICIOUS_HIGH if s in df]
  if is_noisy is None or not names or not 0 < is_noisy.sum() < len(is_noisy):
    return None
  return quality.table({k: df[k].to_numpy() for k in names}, is_noisy)


def estimated_wrong_labels(flags: dict | None) -> int | None:
  """The one-run estimate with copies; with two runs, the paper's flagged count; else None."""
  if flags is None:
    return None
  return int(flags["estimate"]) if "estimate" in flags else int(flags["flagged"].sum())


def count_interval(history: pd.DataFrame, skip_epochs: int) -> list[int] | None:
  """Where the count would lie had the early window closed one epoch earlier or later
  (its value after the window's second-last epoch, in history.csv, and that step
  taken once more the other way), widened by 15 % for the estimator's own error.

  The read epoch is the count's largest error: on CIFAR-10N it moves 15-50 % per epoch
  while the model memorises, on Fashion-MNIST 1-6 %
  (experiments/results/defaults/count_curve.md). None when the window has fewer
  than two recorded epochs."""
  if "estimated_wrong_labels" not in history:
    return None
  window = history[history["early"].astype(bool) & (history["epoch"] > skip_epochs)]
  counts = window["estimated_wrong_labels"].dropna().to_numpy(float)
  if len(counts) < 2:
    return None
  before, at = counts[-2], counts[-1]
  low, high = sorted((max(0.0, 2 * at - before), before))
  return [int(np.floor(0.85 * low)), int(np.ceil(1.15 * high))]


def label_issues(df: pd.DataFrame, flagged: np.ndarray, recommended: str | None) -> pd.DataFrame:
  """The columns of cleanlab's `Datalab.get_issues("label")`, indexed like the training split.

  `label_score` is in [0, 1], low = likely a label issue (as cleanlab's): one
  minus the percentile rank of the recommended score's suspicion. `predicted_label`
  is what the label likely should be: with decisions (`jaxclean.decide`), the label
  `corrected_labels.npy` holds (the suggestion where the decision is `relabel`, the
  given label elsewhere, so taking every flagged row's `predicted_label` is the
  automatic correction, not every suggestion), and a `decision` column; without them
  the suggestion for a flagged example, the given label otherwise (the final model's
  prediction when nothing was recorded).
  """
  if recommended is None:
    score = np.full(len(df), np.nan)
  else:
    suspicion = pd.Series(scores_lib.suspicion(recommended, df[recommended].to_numpy()))
    score = 1.0 - suspicion.rank(pct=True, method="average").to_numpy()
  given = df["given_label"].to_numpy()
  extra = {}
  if "decision" in df:
    extra["decision"] = df["decision"].to_numpy()
    predicted = np.where(extra["decision"] == "relabel", df["suggested_label"], given)
  elif "suggested_label" in df:
    predicted = np.where(flagged, df["suggested_label"], given)
  else:
    predicted = df["final_prediction"].to_numpy()
  return pd.DataFrame(dict(is_label_issue=flagged, label_score=score,
                           given_label=given, predicted_label=predicted, **extra),
                      index=pd.Index(df["index"], name="index"))


def write_outputs(workdir: str, df: pd.DataFrame, det: pd.DataFrame | None,
                  found: Recorded, summary: dict, suggested: dict | None = None) -> None:
  """Every table and file of a run, each atomically: scores.csv/.parquet, flagged.csv and
  threshold_samples.csv (threshold examples), detection.json, summary.json, label_issues.csv;
  corrected_labels.npy and review.csv with the decisions (`jaxclean.decide`)."""
  flags = found.flags
  outputs.write_table(os.path.join(workdir, "scores.csv"), df)
  outputs.write_json(os.path.join(workdir, "summary.json"), summary)
  flagged = np.zeros(len(df), bool) if flags is None else np.asarray(flags["flagged"], bool)
  with outputs.atomic_path(os.path.join(workdir, "label_issues.csv")) as tmp:
    label_issues(df, flagged, summary["recommended_score"]).to_csv(tmp)
  if found.copies is not None:
    values = scores_lib.ensemble_scores(found.copies)
    outputs.write_table(os.path.join(workdir, "threshold_samples.csv"),
                        pd.DataFrame({k: np.asarray(values[k]) for k in scores_lib.SCORES}))
  if flags is not None:
    name = "combined" if "score" in flags else "aum"  # the value the cut compares
    outputs.write_table(os.path.join(workdir, "flagged.csv"), pd.DataFrame({
        "index": df["index"], "flagged": flags["flagged"], name: flags.get("score", flags.get("aum")),
        "threshold": flags["threshold"]}))
  report = dict(estimated_wrong_labels=summary["estimated_wrong_labels"],
                flagged=summary["flagged"])
  if det is not None:
    report["quality"] = det.to_dict(orient="index")
  if suggested is not None:
    report["suggestion"] = suggested
  outputs.write_json(os.path.join(workdir, "detection.json"), report)
  if "decision" in df:
    decide.write(workdir, df)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       dataset: data_lib.Dataset | None = None, embed=None) -> dict:
  """The main job: check, load, train and record, score every training label, write it all.

  `dataset` (e.g. `data.sources.from_arrays`) replaces loading `config.data`; `embed`
  (a jittable function from images to features) runs frozen mode on it (`with_backbone`).
  The workdir is held for the run (`jaxclean.workdir.hold`): a second run on
  it is refused. Every bad input raises `checks.InputError` before training.

  Writes to `workdir` (process 0 only): scores.csv/.parquet, detection.json,
  summary.json, label_issues.csv, report.html, history.csv, config.json;
  flagged.csv and threshold_samples.csv with threshold examples;
  retrain_<method>.json when `config.clean.method` is set (clean_in_run.json for
  `in_run`). Returns a dict with the score table, the detection table (or None), the
  flags, the estimated number of wrong labels, the test accuracy, the history and,
  after cleaning, the retraining summary (for `in_run`: `in_run_summary`'s) as "retrain".
  """
  checks.check_config(config)
  compile_cache.enable()  # a program compiled by an earlier run is read back, not compiled
  lead = jax.process_index() == 0
  with workdir_lib.hold(workdir) if lead else contextlib.nullcontext():
    ds = data_lib.load(config.data) if dataset is None else dataset
    return _detect(config, workdir, ds, embed)


def _detect(config, workdir: str, ds: data_lib.Dataset, embed=None) -> dict:
  """`train_and_evaluate` on a loaded data set, in a held workdir."""
  labels, is_noisy = noisy_labels(config, ds)
  checks.check_classes(labels, ds.class_names)
  ds = with_backbone(config, ds, embed)
  config = resolve(config, ds)
  check_model(config, ds.num_classes + (config.aum.threshold_samples != "none"),
              ds.train.images.shape[1:])
  mesh = parallel.make_mesh(config.num_devices)
  lead = jax.process_index() == 0
  say = print if lead else (lambda *a, **k: None)  # the summary; progress is train.fit's
  say(f"jaxclean: {ds.name}, {len(labels):,} training examples in {ds.num_classes} classes "
      f"(test {len(ds.test):,}); "
      + (f"backbone {config.backbone.name} ({config.backbone.mode}), " if config.backbone.name
         else "")
      + f"model {model_name(config)} x{config.ensemble}, "
      f"{config.num_epochs} epochs of batch {config.batch_size} at lr {config.optimizer.lr:g}, "
      f"{mesh.size} {jax.default_backend()} device(s); "
      f"threshold examples: {config.aum.threshold_samples}")
  done = os.path.join(workdir, "summary.json")  # written by a run that finished training
  finished = lead and os.path.isfile(done) and time.localtime(os.path.getmtime(done))
  if lead:
    outputs.write_text(os.path.join(workdir, "config.json"), config.to_json_best_effort(indent=2))
  found = record(config, ds, labels, workdir, mesh)  # a finished run's checkpoint: restored
  if finished:
    say(f"already finished: results from {time.strftime('%Y-%m-%d %H:%M', finished)}, "
        f"restored, not trained again (another --workdir, or {workdir} emptied, starts afresh)")
  df = score_table(found, labels, is_noisy)
  history = found.history
  # False: the early window stayed open to the last epoch; None: no window (no copies).
  closed = (not history["early"].all() if config.aum.threshold_samples == "copies" else None)
  if found.copies is not None:  # the early window's probabilities decide
    df = decide.add(df, ds.num_classes, window_closed=closed)
  det = detection_table(df, is_noisy)
  test_acc = (float(history["test_accuracy"].iloc[-1]) if "test_accuracy" in history else None)
  estimate = estimated_wrong_labels(found.flags)
  truth = ds.train.labels if config.noise.kind != "none" else ds.train_clean_labels
  suggested = (None if truth is None or "suggested_label" not in df or not is_noisy.any() else
               quality.suggestions(df["suggested_label"].to_numpy(),
                                   df["final_prediction"].to_numpy(), truth, is_noisy,
                                   np.zeros(len(df), bool) if found.flags is None
                                   else np.asarray(found.flags["flagged"], bool)))
  summary = dict(
      data=ds.name, train_split=config.data.train_split, eval_split=config.data.eval_split,
      num_examples=len(labels), num_classes=ds.num_classes, class_names=list(ds.class_names),
      model=model_name(config), epochs=config.num_epochs, ensemble=config.ensemble,
      test_accuracy=test_acc, estimated_wrong_labels=estimate,
      estimated_wrong_labels_interval=(
          count_interval(history, config.aum.skip_epochs) if estimate is not None
          and config.aum.threshold_samples == "copies" and config.aum.rule == "confident"
          else None),
      early_window_closed=closed,
      flagged=None if found.flags is None else int(found.flags["flagged"].sum()),
      recommended_score=next((s for s in RECOMMENDED if s in df), None),
      decisions=decide.summary(df) if "decision" in df else None,
      image_shape=list(ds.train.images.shape[1:]), devices=mesh.size)
  if lead:
    write_outputs(workdir, df, det, found, summary, suggested)
    report_path = report.build(workdir)
    if det is not None:
      say(f"\nDetection of {int(is_noisy.sum())} known wrong labels among {len(labels)}:")
      say(det.drop(columns="k").to_string(float_format="%.4f"))
    if estimate is not None:
      say(f"\nestimated wrong labels: {estimate} of {len(labels)} "
          f"({estimate / len(labels):.1%}{report.interval_words(summary)}); "
          f"flagged: {summary['flagged']}"
          + ("" if is_noisy is None else f"; truly wrong: {int(is_noisy.sum())}"))
    if suggested is not None:
      pct = lambda v: "-" if v is None else f"{v:.1%}"
      say(f"suggested label right for {pct(suggested['suggested_right'])} of the wrong labels "
          f"({pct(suggested['suggested_right_flagged'])} of the flagged ones; the final "
          f"model's prediction: {pct(suggested['final_prediction_right'])})")
    if summary["decisions"]:
      say(f"decisions: {summary['decisions']}; corrected_labels.npy (the relabels applied), "
          f"review.csv (for a person)")
    say(f"test accuracy: {test_acc if test_acc is None else round(test_acc, 4)}")
    say(f"scores: {os.path.join(workdir, 'scores.csv')}\nreport: {report_path}")
  out = dict(scores=df, detection=det, flags=found.flags, estimated_wrong_labels=estimate,
             test_accuracy=test_acc, history=history, suggestion=suggested)
  c = config.clean
  if c.method == "in_run":
    summary = in_run_summary(found, is_noisy)
    if lead:
      outputs.write_json(os.path.join(workdir, "clean_in_run.json"), summary)
      say(f"cleaned inside the run: {summary}")
    out["retrain"] = summary
  elif c.method != "none":
    removed = clean.removal(c.method, df, found.flags, is_noisy, c.fraction, c.score, c.seed,
                            c.count)
    summary = dict(method=c.method, **retrain(config, ds, labels, ~removed,
                                              os.path.join(workdir, f"retrain_{c.method}"), mesh),
                   **clean.precision_recall(removed, is_noisy))
    if lead:
      outputs.write_json(os.path.join(workdir, f"retrain_{c.method}.json"), summary)
      say(f"retrained after {c.method}: {summary}")
    out["retrain"] = summary
  return out
