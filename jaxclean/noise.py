"""Synthetic label noise with a known ground truth, for measuring detection.

Counts are exact, not Bernoulli draws: `rate` 0.2 flips round(0.2 * N)
examples (per class for asymmetric noise), so a run's true noise rate is the
one asked for. Every flip really changes the label, so the returned mask is
exactly the set of corrupted examples.
"""

from __future__ import annotations

import numpy as np

from jaxclean import rng as rng_lib
from jaxclean.errors import InputError

KINDS = ("none", "uniform", "asymmetric")
# Patrini et al. 2017: truck->automobile, bird->airplane, deer->horse, cat<->dog.
CIFAR10_PAIRS = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}


def parse_pairs(pairs) -> dict[int, int]:
  """{source: target} classes from a dict or a string "9:1,2:0"; '' or None -> CIFAR10_PAIRS."""
  if pairs is None or pairs == "":
    return dict(CIFAR10_PAIRS)
  if isinstance(pairs, str):
    try:
      items = [(int(a), int(b)) for a, b in (item.split(":") for item in pairs.split(","))]
    except ValueError:
      raise InputError(f"noise pairs {pairs!r} must look like '9:1,2:0'") from None
    if len({a for a, _ in items}) != len(items):
      raise InputError(f"noise pairs {pairs!r} map a class twice")
    pairs = dict(items)
  pairs = {int(a): int(b) for a, b in dict(pairs).items()}
  same = [a for a, b in pairs.items() if a == b]
  if same:
    raise InputError(f"noise pairs map class {same[0]} to itself")
  return pairs


def inject(labels, num_classes: int, kind: str, rate: float, seed: int,
           pairs=None) -> tuple[np.ndarray, np.ndarray]:
  """(noisy int32 labels, bool mask of the examples whose label changed).

  uniform: round(rate * N) examples, picked by a seeded permutation, each get
  a label drawn uniformly from the other classes. asymmetric: in every class c
  with a pair, round(rate * n_c) of its examples flip to pairs[c]; other
  classes are untouched. `labels` is not modified.
  """
  labels = np.asarray(labels)
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise InputError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
  out_of_range = (labels < 0) | (labels >= num_classes)
  if out_of_range.any():
    raise InputError(f"{np.count_nonzero(out_of_range)} labels outside [0, {num_classes}), "
                     f"e.g. {labels[out_of_range][0]}")
  if not 0 <= rate < 1:
    raise InputError(f"noise rate {rate} is outside [0, 1)")
  rng = rng_lib.numpy(seed, "noise")
  noisy = labels.astype(np.int32)
  if kind == "uniform":
    if num_classes < 2:
      raise InputError("uniform noise needs at least 2 classes")
    chosen = rng.permutation(len(labels))[:round(rate * len(labels))]
    noisy[chosen] = (noisy[chosen] + rng.integers(1, num_classes, len(chosen))) % num_classes
  elif kind == "asymmetric":
    pairs = parse_pairs(pairs)
    bad = [(a, b) for a, b in pairs.items() if not (0 <= a < num_classes and 0 <= b < num_classes)]
    if bad:
      raise InputError(f"noise pair {bad[0][0]}:{bad[0][1]} has a class outside [0, {num_classes})")
    for source, target in sorted(pairs.items()):
      members = np.flatnonzero(labels == source)
      chosen = rng.choice(members, round(rate * len(members)), replace=False)
      noisy[chosen] = target
  elif kind != "none":
    raise InputError(f"unknown noise kind {kind!r}; valid: {', '.join(KINDS)}")
  return noisy, noisy != labels
