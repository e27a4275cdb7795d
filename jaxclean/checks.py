"""The config checks that run before any data is loaded.

Each refusal is an `InputError` (`jaxclean.errors`, also `jaxclean.checks.InputError`): the
command line prints its one-line message and exits with status 2.
"""

from __future__ import annotations

from jaxclean.errors import InputError, MissingFile  # noqa: F401  (the public names)


THRESHOLD_SAMPLES = ("none", "two_runs", "copies")
SCHEDULES = ("cosine", "step", "constant")


def _require(ok: bool, message: str) -> None:
  if not ok:
    raise InputError(message)


def check_config(config) -> None:
  """Raises InputError for any setting that cannot work, before anything is loaded or trained."""
  from jaxclean import clean, noise, scores
  from jaxclean.data import sources
  from jaxclean.models import MODELS, OWN

  _require(config.num_epochs >= 1, f"num_epochs must be at least 1, got {config.num_epochs}")
  _require(config.batch_size >= 1, f"batch_size must be at least 1, got {config.batch_size}")
  _require(0 <= config.aum.skip_epochs < config.num_epochs,
           f"aum.skip_epochs={config.aum.skip_epochs} leaves no epoch for AUM out of "
           f"num_epochs={config.num_epochs}; use 0 <= skip_epochs < num_epochs")
  _require(config.aum.threshold_samples in THRESHOLD_SAMPLES,
           f"aum.threshold_samples={config.aum.threshold_samples!r}; valid: "
           f"{', '.join(THRESHOLD_SAMPLES)}")
  _require(config.aum.rule in ("confident", "calibrated", "percentile"),
           f"aum.rule={config.aum.rule!r}; valid: confident, calibrated, percentile")
  e = config.early
  _require(0 < e.copies_accuracy <= 1 and 0 < e.copies_probability <= 1 and e.min_epochs >= 1,
           f"early.copies_accuracy and early.copies_probability must be in (0, 1] and "
           f"early.min_epochs >= 1, got {e.copies_accuracy}, {e.copies_probability} and "
           f"{e.min_epochs}")
  _require(config.aum.copies_margin in ("real", "all"),
           f"aum.copies_margin={config.aum.copies_margin!r}; valid: real, all")
  _require(0 < config.aum.percentile <= 100,
           f"aum.percentile must be in (0, 100], got {config.aum.percentile}")
  _require(config.eval_every_epochs >= 0,
           f"eval_every_epochs must be >= 0 (0: after the last epoch only), got "
           f"{config.eval_every_epochs}")
  _require(config.ensemble >= 1, f"ensemble must be at least 1, got {config.ensemble}")
  _require(-1 <= config.grand.epochs <= config.num_epochs,
           f"grand.epochs must be -1 (off), 0 (at initialisation) or an epoch up to num_epochs="
           f"{config.num_epochs}, got {config.grand.epochs}")
  o = config.optimizer
  _require(o.lr > 0, f"optimizer.lr must be positive, got {o.lr}")
  _require(o.schedule in SCHEDULES,
           f"unknown optimizer.schedule {o.schedule!r}; valid: {', '.join(SCHEDULES)}")
  _require(0 <= o.momentum < 1, f"optimizer.momentum must be in [0, 1), got {o.momentum}")
  _require(o.weight_decay >= 0, f"optimizer.weight_decay must be >= 0, got {o.weight_decay}")
  _require(0 <= o.warmup_epochs < config.num_epochs,
           f"optimizer.warmup_epochs must be in [0, num_epochs), got {o.warmup_epochs}")
  _require(config.model.name in ("auto", *MODELS)
           or config.model.name.startswith(OWN),
           f"unknown model.name {config.model.name!r}; valid: auto, {', '.join(MODELS)}, "
           "or import:<module>:<name> for your own flax.linen Module")
  _check_backbone(config.backbone)
  n = config.noise
  _require(n.kind in noise.KINDS, f"unknown noise.kind {n.kind!r}; valid: {', '.join(noise.KINDS)}")
  _require(0 <= n.rate < 1, f"noise.rate {n.rate} is outside [0, 1)")
  if n.kind == "asymmetric":
    noise.parse_pairs(n.pairs)
  _require(not config.data.get("decisions_file", "") or n.kind == "none",
           f"data.decisions_file decides on the given labels, but noise.kind={n.kind!r} "
           "would replace them; use noise.kind=none")
  kind, _, arg = config.data.name.partition(":")
  _require(config.data.name in ("digits", "fashion_mnist", "cifar10", sources.ARRAYS)
           or (kind in ("tfds", "npz", "folder", *sources.STREAMED) and arg),
           f"unknown data set {config.data.name!r}; valid names: {', '.join(sources.NAMES)}")
  c = config.clean
  _require(c.method in clean.METHODS,
           f"unknown clean.method {c.method!r}; valid: {', '.join(clean.METHODS)}")
  _require(c.score in scores.SUSPICIOUS_HIGH,
           f"unknown clean.score {c.score!r}; valid: {', '.join(scores.SUSPICIOUS_HIGH)}")
  _require(0 <= c.fraction <= 1, f"clean.fraction must be in [0, 1], got {c.fraction}")
  _require(c.method != "aum_threshold" or config.aum.threshold_samples != "none",
           "clean.method=aum_threshold needs aum.threshold_samples=two_runs or copies")
  _require(c.method != "in_run" or (config.aum.threshold_samples == "copies"
                                    and config.record_dynamics),
           "clean.method=in_run needs aum.threshold_samples=copies and record_dynamics=True")
  _require(isinstance(c.at_epoch, int) and 0 <= c.at_epoch
           and (c.method != "in_run" or c.at_epoch < config.num_epochs),
           f"clean.at_epoch must be in [0, num_epochs={config.num_epochs}) (0: when the early "
           f"window closes, k: after epoch k), got {c.at_epoch}")
  _require(isinstance(c.fresh_optimizer, bool),
           f"clean.fresh_optimizer must be True or False, got {c.fresh_optimizer!r}")
  retrain_epochs = c.retrain.get("num_epochs")
  _require(retrain_epochs is None or retrain_epochs >= 1,
           f"clean.retrain.num_epochs must be at least 1, got {retrain_epochs}")
  _require(config.checkpoint.every_steps >= 0 and config.checkpoint.keep >= 1
           and config.checkpoint.every_seconds >= 0,
           "checkpoint.every_steps and every_seconds must be >= 0 and checkpoint.keep >= 1")
  _require(config.num_devices >= 0, f"num_devices must be >= 0, got {config.num_devices}")


def _check_backbone(b) -> None:
  import re
  from jaxclean import backbones
  from jaxclean.models import OWN
  _require(not b.name or b.name in backbones.NAMES or b.name.startswith(OWN),
           f"unknown backbone.name {b.name!r}; valid: {', '.join(backbones.NAMES)}, or "
           "import:<module>:<function> for your own embedding function")
  _require(b.mode in ("frozen", "finetune"),
           f"backbone.mode={b.mode!r}; valid: frozen, finetune")
  _require(not (b.mode == "finetune" and b.name.startswith("import:")),
           "backbone.mode=finetune needs a backbone by name; to fine-tune your own network "
           "give it as model.name=import:<module>:<Module>")
  _require(b.batch_size >= 1 and b.image_size >= 0 and b.lr_scale >= 0,
           f"backbone.batch_size must be >= 1, image_size >= 0 and lr_scale >= 0, got "
           f"{b.batch_size}, {b.image_size} and {b.lr_scale}")
  try:
    re.compile(b.trainable)
  except re.error as e:
    raise InputError(f"backbone.trainable={b.trainable!r} is not a regular expression: {e}")


def check_classes(labels, class_names) -> None:
  """Refuses training labels (after labels_file and noise) that use fewer than two classes."""
  import numpy as np
  used = np.unique(labels)
  _require(len(used) >= 2,
           f"the training labels use {len(used)} of {len(class_names)} classes"
           + (f" (only {class_names[used[0]]!r})" if len(used) else "")
           + "; telling wrong labels apart needs at least two classes in use")
