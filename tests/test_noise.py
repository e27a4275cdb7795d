"""Synthetic label noise: exact counts, real flips, seeding, pair targets, errors."""

import numpy as np
import pytest

from jaxclean import noise

# Patrini et al. 2017: truck->automobile, bird->airplane, deer->horse, cat<->dog.
PATRINI = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}


def balanced(per_class=100, num_classes=10):
  return np.repeat(np.arange(num_classes), per_class)


def test_none_leaves_labels_unchanged():
  labels = balanced()
  noisy, mask = noise.inject(labels, 10, "none", 0.5, seed=0)
  np.testing.assert_array_equal(noisy, labels)
  assert noisy.dtype == np.int32 and mask.dtype == bool and not mask.any()


@pytest.mark.parametrize("n, rate, flips", [(1000, 0.2, 200), (999, 0.1, 100), (10, 0.0, 0)])
def test_uniform_flips_exact_count(n, rate, flips):
  labels = np.random.default_rng(1).integers(0, 10, n)
  noisy, mask = noise.inject(labels, 10, "uniform", rate, seed=3)
  assert mask.sum() == flips
  np.testing.assert_array_equal(mask, noisy != labels)
  np.testing.assert_array_equal(noisy[~mask], labels[~mask])
  assert noisy.min() >= 0 and noisy.max() < 10


def test_uniform_draws_evenly_from_the_other_classes():
  labels = np.random.default_rng(0).integers(0, 10, 20000)
  noisy, mask = noise.inject(labels, 10, "uniform", 0.5, seed=0)
  transitions = np.zeros((10, 10), int)
  np.add.at(transitions, (labels[mask], noisy[mask]), 1)
  assert np.trace(transitions) == 0
  off_diagonal = transitions[~np.eye(10, dtype=bool)]
  expected = mask.sum() / 90  # ~111; a 40% margin is about 4 standard deviations
  assert off_diagonal.min() > 0.6 * expected and off_diagonal.max() < 1.4 * expected


@pytest.mark.parametrize("kind", ["uniform", "asymmetric"])
def test_seeded_and_input_untouched(kind):
  labels = balanced()
  before = labels.copy()
  a = noise.inject(labels, 10, kind, 0.3, seed=7)
  b = noise.inject(labels, 10, kind, 0.3, seed=7)
  c = noise.inject(labels, 10, kind, 0.3, seed=8)
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])
  assert (a[1] != c[1]).any()
  np.testing.assert_array_equal(labels, before)


def test_asymmetric_flips_exact_fraction_per_class_to_its_pair():
  counts = [40, 61, 83, 47, 102, 71, 30, 90, 20, 119]  # 0.3 * n_c rounds up for some, down too
  labels = np.repeat(np.arange(10), counts)
  noisy, mask = noise.inject(labels, 10, "asymmetric", 0.3, seed=0)
  np.testing.assert_array_equal(mask, noisy != labels)
  for c in range(10):
    flipped = mask & (labels == c)
    if c in PATRINI:
      assert flipped.sum() == round(0.3 * counts[c])
      assert (noisy[flipped] == PATRINI[c]).all()
    else:
      assert not flipped.any()


def test_asymmetric_custom_pairs():
  labels = balanced(per_class=20, num_classes=3)
  noisy, mask = noise.inject(labels, 3, "asymmetric", 0.5, seed=0, pairs="0:2")
  assert mask.sum() == 10 and (labels[mask] == 0).all() and (noisy[mask] == 2).all()


def test_parse_pairs():
  assert noise.parse_pairs("9:1, 2:0") == {9: 1, 2: 0}
  assert noise.parse_pairs({"3": "5"}) == {3: 5}
  assert noise.parse_pairs("") == PATRINI
  assert noise.parse_pairs(None) == PATRINI
  assert noise.CIFAR10_PAIRS == PATRINI


@pytest.mark.parametrize("pairs, message", [
    ("9-1", "must look like"), ("3:5,x:1", "must look like"), ("3:5,3:4", "twice"),
    ("3:3", "class 3 to itself"), ({4: 4}, "class 4 to itself")])
def test_parse_pairs_errors(pairs, message):
  with pytest.raises(ValueError, match=message):
    noise.parse_pairs(pairs)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan")])
def test_rate_outside_unit_interval(rate):
  with pytest.raises(ValueError, match=f"noise rate {rate} is outside"):
    noise.inject(balanced(), 10, "uniform", rate, seed=0)


def test_unknown_kind():
  with pytest.raises(ValueError, match="unknown noise kind 'gaussian'"):
    noise.inject(balanced(), 10, "gaussian", 0.1, seed=0)


@pytest.mark.parametrize("pairs", ["12:1", "1:10", "-1:2"])
def test_pair_class_out_of_range(pairs):
  with pytest.raises(ValueError, match=r"has a class outside \[0, 10\)"):
    noise.inject(balanced(), 10, "asymmetric", 0.1, seed=0, pairs=pairs)


def test_labels_out_of_range():
  with pytest.raises(ValueError, match=r"2 labels outside \[0, 10\), e.g. 10"):
    noise.inject(np.array([0, 10, 3, 10]), 10, "uniform", 0.1, seed=0)
  with pytest.raises(ValueError, match="1-D integer"):
    noise.inject(np.array([0.0, 1.0]), 10, "uniform", 0.1, seed=0)
