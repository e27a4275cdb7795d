"""The detection protocol behind `python -m jaxclean.main`, on top of the trainer.

Data flow one way: source (`data.load`) -> labels (`noisy_labels`) ->
training with recording (`record`: one run, or the threshold runs) ->
scores (`score_table`) -> outputs (`write_outputs`) -> optional removal and
retraining (`retrain`, given the mask of examples to keep). The trainer
(`jaxclean.train`) builds the steps; this module decides what they train on
and writes what comes out.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import ml_collections
import numpy as np
import pandas as pd

from jaxclean import checks, clean, noise, outputs, parallel, quality, threshold, train
from jaxclean import data as data_lib
from jaxclean import models
from jaxclean import records as records_lib
from jaxclean import scores as scores_lib


@dataclasses.dataclass
class Recorded:
  """What training left: records of every example and the model's predictions."""
  records: records_lib.Records | None  # host copy, (members, N); each example from a run that scored it
  predicted: np.ndarray  # eval-mode prediction of the final model(s) on every training example
  history: pd.DataFrame
  flags: dict[str, np.ndarray] | None  # threshold-sample flags, see `threshold.flag`


def noisy_labels(config, ds: data_lib.Dataset) -> tuple[np.ndarray, np.ndarray | None]:
  """Training labels after noise injection, and the ground-truth mask if known."""
  labels = ds.train.labels
  if config.noise.kind != "none":
    return noise.inject(labels, ds.num_classes, config.noise.kind, config.noise.rate,
                        config.noise.seed, config.noise.pairs)
  if ds.train_clean_labels is not None:
    return labels, labels != ds.train_clean_labels
  return labels, None


def resolve(config, ds: data_lib.Dataset) -> ml_collections.ConfigDict:
  """A copy of `config` with `model.name='auto'` replaced by the model chosen for the data."""
  c = config.copy_and_resolve_references()
  if c.model.name == "auto":
    with c.unlocked():
      c.model.name = models.auto(ds.train.images.shape[1:])
  return c


def record(config, ds: data_lib.Dataset, labels: np.ndarray, workdir: str, mesh) -> Recorded:
  """Trains and records: one run, or two threshold-sample runs (`aum.threshold_samples`)."""
  mean, std = ds.mean_std()
  eval_step = train.make_eval_step(mean, std, mesh, ds.num_classes)
  two_runs = config.aum.threshold_samples == "two_runs"
  runs = []
  for run in range(2 if two_runs else 1):
    run_labels, classes, samples = labels, ds.num_classes, np.zeros(0, np.int64)
    if two_runs:
      samples = threshold.samples(len(labels), ds.num_classes, config.seed, run)
      run_labels, classes = threshold.relabel(labels, samples, ds.num_classes), classes + 1
    result = train.fit(config, ds.train.images, run_labels, classes,
                       os.path.join(workdir, f"threshold_run{run}") if two_runs else workdir,
                       mean, std, test=ds.test, mesh=mesh, eval_classes=ds.num_classes)
    with jax.set_mesh(mesh):
      _, _, predicted = train.evaluate(eval_step, result.state, ds.train.images, labels,
                                       config.batch_size, mesh)
    runs.append((result, predicted, samples))
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


def score_table(recorded: Recorded, labels: np.ndarray, is_noisy: np.ndarray | None
                ) -> pd.DataFrame:
  """One row per training example in source order."""
  df = pd.DataFrame(dict(index=np.arange(len(labels)), given_label=labels,
                         predicted_label=recorded.predicted))
  if recorded.records is not None:
    values = scores_lib.ensemble_scores(recorded.records)
    for name in scores_lib.SCORES:
      df[name] = np.asarray(values[name])
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
  result = train.fit(rc, ds.train.images[keep], labels[keep], ds.num_classes, workdir, mean,
                     std, test=ds.test, mesh=mesh)
  return dict(removed=int((~keep).sum()), kept=int(keep.sum()),
              test_accuracy=float(result.history["test_accuracy"].iloc[-1]))


def detection_table(df: pd.DataFrame, is_noisy: np.ndarray | None) -> pd.DataFrame | None:
  """Quality of every recorded score against the known wrong labels (None if unknown)."""
  names = [s for s in scores_lib.SCORES if s in df]
  if is_noisy is None or not names or not 0 < is_noisy.sum() < len(is_noisy):
    return None
  return quality.table({k: df[k].to_numpy() for k in names}, is_noisy)


def write_outputs(workdir: str, df: pd.DataFrame, det: pd.DataFrame | None,
                  flags: dict | None) -> None:
  """scores.csv/.parquet, flagged.csv (threshold samples), detection.json (when known)."""
  outputs.write_table(os.path.join(workdir, "scores.csv"), df)
  if flags is not None:
    outputs.write_table(os.path.join(workdir, "flagged.csv"), pd.DataFrame(dict(
        index=df["index"], flagged=flags["flagged"], aum=flags["aum"],
        threshold=flags["threshold"])))
  if det is not None:
    outputs.write_json(os.path.join(workdir, "detection.json"), det.to_dict(orient="index"))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The main job: check, load, train and record, score every training label, write tables.

  Writes to `workdir` (process 0 only): scores.csv/.parquet, history.csv,
  config.json; detection.json when the wrong labels are known; flagged.csv
  with threshold samples; retrain_<method>.json when `config.clean.method` is
  set. Returns a dict with the score table, the detection table (or None), the
  flags, the test accuracy, the history and, after cleaning, the retraining summary.
  """
  checks.check_config(config)
  ds = data_lib.load(config.data)
  labels, is_noisy = noisy_labels(config, ds)
  config = resolve(config, ds)
  mesh = parallel.make_mesh(config.num_devices)
  lead = jax.process_index() == 0
  if lead:
    outputs.write_text(os.path.join(workdir, "config.json"), config.to_json_best_effort(indent=2))
  found = record(config, ds, labels, workdir, mesh)
  df = score_table(found, labels, is_noisy)
  det = detection_table(df, is_noisy)
  test_acc = found.history["test_accuracy"].iloc[-1] if "test_accuracy" in found.history else None
  if lead:
    write_outputs(workdir, df, det, found.flags)
    if found.flags is not None:
      print(f"AUM threshold samples flag {found.flags['flagged'].sum()} of {len(labels)} "
            f"(thresholds {np.round(found.flags['thresholds'], 4).tolist()})")
    if det is not None:
      print(f"\nDetection of {int(is_noisy.sum())} wrong labels among {len(labels)}:")
      print(det.drop(columns="k").to_string(float_format="%.4f"))
    print(f"test accuracy {test_acc}")
  out = dict(scores=df, detection=det, flags=found.flags, test_accuracy=test_acc,
             history=found.history)
  c = config.clean
  if c.method != "none":
    removed = clean.removal(c.method, df, found.flags, is_noisy, c.fraction, c.score, c.seed,
                            c.count)
    summary = dict(method=c.method, **retrain(config, ds, labels, ~removed,
                                              os.path.join(workdir, f"retrain_{c.method}"), mesh),
                   **clean.precision_recall(removed, is_noisy))
    if lead:
      outputs.write_json(os.path.join(workdir, f"retrain_{c.method}.json"), summary)
      print(f"retrained after {c.method}: {summary}")
    out["retrain"] = summary
  return out
