"""Batches carry indices and masks; every example is seen exactly once per epoch."""

import numpy as np
import pytest

from jaxclean.data import pipeline


@pytest.mark.parametrize("n,bs", [(10, 4), (12, 4), (3, 8), (1, 1)])
def test_each_example_once_per_epoch(n, bs):
  spe = pipeline.steps_per_epoch(n, bs)
  for epoch in range(3):
    seen = []
    for s in range(epoch * spe, (epoch + 1) * spe):
      index, mask = pipeline.batch_indices(n, bs, seed=7, step=s)
      assert index.shape == mask.shape == (bs,)
      assert np.all((0 <= index) & (index < n))
      seen.extend(index[mask])
      assert mask.sum() == min(bs, n - (s - epoch * spe) * bs)
    assert sorted(seen) == list(range(n))


def test_order_is_seeded_and_rebuilt_from_step():
  a = [pipeline.batch_indices(50, 8, seed=1, step=s)[0] for s in range(20)]
  b = [pipeline.batch_indices(50, 8, seed=1, step=s)[0] for s in range(20)]
  c = [pipeline.batch_indices(50, 8, seed=2, step=s)[0] for s in range(20)]
  assert all(np.array_equal(x, y) for x, y in zip(a, b))
  assert not all(np.array_equal(x, y) for x, y in zip(a, c))
  # Epochs differ from each other.
  assert not np.array_equal(a[0], a[7])


def test_gather_carries_index_and_mask():
  images = np.arange(5)[:, None, None, None] * np.ones((5, 2, 2, 1), np.uint8)
  labels = np.array([4, 3, 2, 1, 0])
  index, mask = pipeline.batch_indices(5, 4, seed=0, step=1)
  b = pipeline.gather(images, labels, index, mask)
  np.testing.assert_array_equal(b["image"][:, 0, 0, 0], index)
  np.testing.assert_array_equal(b["label"], 4 - index)
  np.testing.assert_array_equal(b["mask"], [True, False, False, False])


def test_prefetch_keeps_order_and_raises():
  assert list(pipeline.prefetch(iter(range(10)))) == list(range(10))

  def bad():
    yield 1
    raise RuntimeError("boom")

  with pytest.raises(RuntimeError, match="boom"):
    list(pipeline.prefetch(bad()))
