"""One Python call from arrays to wrong labels: `find_label_issues`, and `load_result`.

`find_label_issues` runs the same protocol as the `jaxclean` command
(`protocol.train_and_evaluate`, given the arrays as a `Dataset`), so a
workdir made here holds the same files as one made by the command line;
`load_result` reads any finished workdir back without training. Bad input
raises `checks.InputError` with the command line's message.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import tempfile

import ml_collections
import numpy as np
import pandas as pd

from jaxclean.errors import InputError, MissingFile


@dataclasses.dataclass
class LabelIssues:
  """A finished run's results, read from its workdir."""
  scores: pd.DataFrame  # scores.csv: one row per training example
  label_issues: pd.DataFrame  # label_issues.csv: cleanlab's columns, indexed by example
  estimated_wrong_labels: int | None  # None without threshold examples
  flagged: np.ndarray  # indices of the examples flagged as wrongly labelled
  report: str  # path of report.html
  workdir: str
  summary: dict  # summary.json

  def apply(self, x, labels, decisions=None):
    """(x, labels) with decisions applied: relabelled, and dropped rows left out.
    `decisions`: a decisions file (the report's export: index, decision, label) or such a
    DataFrame; by default the run's own relabels (scores.csv's `decision`)."""
    from jaxclean import decide
    table = (decide.export(self.scores) if decisions is None else
             decisions if isinstance(decisions, pd.DataFrame) else decide.read(decisions))
    new, keep = decide.apply(labels, table, int(self.summary["num_classes"]))
    return np.asarray(x)[keep], new[keep]


def find_label_issues(x, labels, *, x_test=None, y_test=None, class_names=None,
                      model=None, variables=None, embed=None,
                      workdir: str | None = None, **overrides) -> LabelIssues:
  """Trains with per-example recording on (x, labels) and ranks every label.

  `x`: images (N, H, W, C) or (N, H, W), uint8 or float, or feature vectors
  (N, D) such as embeddings; `labels`: N integers in [0, classes). Without
  `x_test`/`y_test` nothing is held out: the first 500 training examples are
  evaluated on, so the test accuracy printed is that of the given labels.
  `workdir`: where the outputs go; by default a new temporary directory
  (`tempfile.mkdtemp`), kept so that the report stays readable.
  `overrides`: settings of configs/default.py, one keyword per field, a dot
  written as a double underscore: `num_epochs=5, noise__kind="uniform"`.
  The labels are taken as they are (`noise__kind="none"` unless overridden).

  Bring a model: `model`, a flax.linen Module returning logits, is trained by jaxclean's
  step with the records (a `num_classes` field is set to the run's outputs: the classes
  and the threshold copies' one), starting from `variables` where given (leaves whose
  shape differs, such as another head, start fresh); a model with variables trains at
  `backbone__lr_scale` (0.05) times `optimizer__lr`, as a backbone fine-tuned by name
  does. `embed`, a jittable function from a batch of images (B, H, W, C) float32 to
  features (B, D), with its parameters bound, runs frozen mode: every example embedded
  once (cached under `data__cache_dir`), the model trained on the features. A pretrained
  backbone by name: `backbone__name=...`.
  """
  from jaxclean import checks, models, protocol
  from jaxclean.data import sources
  config = make_config(overrides)
  with config.unlocked():
    if model is not None:
      config.model.name = models.given(model, variables)
    elif variables is not None:
      raise InputError("variables= needs model=: the module they belong to")
    if embed is not None:
      if not callable(embed):
        raise InputError(f"embed must be a function from images to features, got "
                         f"{type(embed).__name__}")
      config.backbone.name = models.PYTHON + getattr(embed, "__qualname__", type(embed).__name__)
      config.backbone.mode = "frozen"
  checks.check_config(config)
  ds = sources.from_arrays(config.data, x, labels, x_test, y_test, class_names)
  workdir = workdir or tempfile.mkdtemp(prefix="jaxclean-")
  protocol.train_and_evaluate(config, workdir, dataset=ds, embed=embed)
  return load_result(workdir)


def make_config(overrides: dict):
  """configs/default.py's config (installed as `jaxclean.configs.default`) for arrays: no
  injected noise, then `overrides` (see `find_label_issues`); InputError for a field that does
  not exist or a value of the wrong type."""
  from jaxclean.configs import default
  from jaxclean.data import sources
  config = default.get_config()
  config.noise.kind = "none"
  config.data.name = sources.ARRAYS
  config.lock()  # an unknown field is an error, not a new field
  for key, value in overrides.items():
    field = key.replace("__", ".")
    *parents, leaf = key.split("__")
    try:
      node = functools.reduce(lambda n, p: n[p], parents, config)
      current = node[leaf]
    except (KeyError, TypeError):
      raise InputError(f"unknown setting {key} (config field {field})") from None
    if isinstance(current, ml_collections.ConfigDict):
      raise InputError(f"{key} is a section: set its fields, e.g. {key}__{next(iter(current))}=")
    try:
      node[leaf] = value
    except (TypeError, ValueError) as e:
      raise InputError(f"cannot set {field}={value!r}: {e}") from None
  return config


def load_result(workdir: str) -> LabelIssues:
  """The results of a finished run's workdir (Python or command line), without training."""
  def path(name):
    p = os.path.join(workdir, name)
    if not os.path.isfile(p):
      raise MissingFile(f"{p} is missing; is {workdir} a finished run's workdir?")
    return p
  try:
    with open(path("summary.json")) as f:
      summary = json.load(f)
    scores = pd.read_csv(path("scores.csv"))
    issues = pd.read_csv(path("label_issues.csv"), index_col="index")
    flagged = np.flatnonzero(issues["is_label_issue"].to_numpy(bool))
  except (ValueError, KeyError) as e:  # JSON, CSV or a column that is not what a run writes
    raise InputError(f"{workdir}: unreadable outputs ({type(e).__name__}: {e})") from None
  return LabelIssues(scores=scores, label_issues=issues,
                     estimated_wrong_labels=summary.get("estimated_wrong_labels"),
                     flagged=flagged, report=path("report.html"), workdir=workdir,
                     summary=summary)
