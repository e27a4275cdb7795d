"""cleanlab (confident learning, Northcutt et al. 2021) on the same model and epochs.

cleanlab needs out-of-sample predicted probabilities. `cross_val_pred_probs`
trains the configured model with `jaxclean.train.fit` on K-1 of K stratified
folds (same model, optimizer and epochs as the run it is compared with) and
predicts softmax probabilities on the held-out fold. `label_issues` then calls
`cleanlab.filter.find_label_issues` (the set of suspected wrong labels) and
`cleanlab.rank.get_label_quality_scores` (a ranking: low = suspicious).

cleanlab is optional (`pip install -e ".[peers]"`); `available()` says
whether it is installed, and nothing here imports it before it is needed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from sklearn import model_selection

from jaxclean import parallel, train


def available() -> bool:
  return importlib.util.find_spec("cleanlab") is not None


def predict_proba(state, images: np.ndarray, mean: np.ndarray, std: np.ndarray,
                  batch_size: int = 512) -> np.ndarray:
  """Softmax probabilities (N, C) of a trained `train.TrainState` in eval mode.

  Fixed-size batches (the last one padded) so the apply function compiles once.
  """
  variables = {"params": state.params}
  if state.batch_stats is not None:
    variables["batch_stats"] = state.batch_stats
  variables = parallel.fetch(variables)

  @jax.jit
  def probs(variables, x):
    x = (x.astype(jnp.float32) - mean) / std
    logits = train.map_members(lambda v: state.apply_fn(v, x, train=False), variables)
    return jnp.mean(jax.nn.softmax(logits, axis=-1), axis=0)  # the members' mean

  n = len(images)
  out = []
  for start in range(0, n, batch_size):
    x = images[start:start + batch_size]
    pad = batch_size - len(x)
    if pad:
      x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
    out.append(np.asarray(probs(variables, x))[:batch_size - pad])
  return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 0))


def cross_val_pred_probs(config, images: np.ndarray, labels: np.ndarray, num_classes: int,
                         mean: np.ndarray, std: np.ndarray, workdir: str, mesh=None,
                         folds: int = 4) -> np.ndarray:
  """Out-of-sample probabilities (N, num_classes) from `folds`-fold cross-validation.

  Folds are stratified by the given (noisy) labels and seeded by `config.seed`;
  fold i trains in `workdir/fold{i}` (and resumes there). Dynamics are not
  recorded and no threshold samples are added: this is plain training.
  """
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.record_dynamics = False
    c.aum.threshold_samples = "none"
  split = model_selection.StratifiedKFold(folds, shuffle=True, random_state=config.seed)
  probs = np.full((len(labels), num_classes), np.nan)
  for i, (fit_idx, held_idx) in enumerate(split.split(np.zeros(len(labels)), labels)):
    result = train.fit(c, images[fit_idx], labels[fit_idx], num_classes,
                       os.path.join(workdir, f"fold{i}"), mean, std, mesh=mesh)
    probs[held_idx] = predict_proba(result.state, images[held_idx], mean, std)
  return probs


@dataclasses.dataclass
class LabelIssues:
  pred_probs: np.ndarray  # (N, C) out-of-sample probabilities
  is_issue: np.ndarray  # bool (N,): cleanlab.filter.find_label_issues
  quality: np.ndarray  # float (N,): cleanlab.rank.get_label_quality_scores, low = suspicious
  seconds: float  # wall time of the whole pipeline (cross-validation + cleanlab)


def label_issues(config, images: np.ndarray, labels: np.ndarray, num_classes: int,
                 mean: np.ndarray, std: np.ndarray, workdir: str, mesh=None,
                 folds: int = 4) -> LabelIssues:
  """The whole cleanlab pipeline on (images, labels); raises ImportError without cleanlab."""
  import cleanlab.filter
  import cleanlab.rank

  start = time.perf_counter()
  pred_probs = cross_val_pred_probs(config, images, labels, num_classes, mean, std, workdir,
                                    mesh, folds)
  labels = np.asarray(labels, np.int64)
  # n_jobs=1: cleanlab would otherwise fork worker processes, which deadlock-prone
  # multithreaded JAX processes must not do.
  is_issue = cleanlab.filter.find_label_issues(labels, pred_probs, n_jobs=1)
  quality = cleanlab.rank.get_label_quality_scores(labels, pred_probs)
  return LabelIssues(pred_probs, np.asarray(is_issue, bool), np.asarray(quality, np.float64),
                     time.perf_counter() - start)
