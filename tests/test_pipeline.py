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


def test_batches_follow_the_steps_and_raise():
  from jaxclean import parallel
  mesh = parallel.make_mesh(1)
  images = np.arange(10)[:, None, None, None] * np.ones((10, 2, 2, 1), np.uint8)
  labels = np.arange(10) % 3
  got = list(pipeline.batches(images, labels, 4, 5, mesh, range(3, 9)))
  assert [step for step, *_ in got] == list(range(3, 9))
  for step, index, mask, batch in got:  # a range from a resumed step continues the order
    want, want_mask = pipeline.batch_indices(10, 4, 5, step)
    np.testing.assert_array_equal(index, want)
    np.testing.assert_array_equal(mask, want_mask)
    np.testing.assert_array_equal(np.asarray(batch["image"])[:, 0, 0, 0], want)
    np.testing.assert_array_equal(np.asarray(batch["label"]), want % 3)

  class Broken:
    shape, dtype = images.shape, images.dtype

    def __getitem__(self, index):
      raise OSError("disk gone")

  with pytest.raises(OSError, match="disk gone"):
    list(pipeline.batches(Broken(), labels, 4, 0, mesh, range(2)))


def test_first_batches_are_not_the_noise_draw(digits_config):
  """Equal seeds for data order and noise: the first batches hold the usual share of wrong labels."""
  from jaxclean import data as data_lib, protocol
  c = digits_config
  assert c.seed == c.noise.seed == 0 and c.noise.rate == 0.3
  ds = data_lib.load(c.data)
  _, is_noisy = protocol.noisy_labels(c, ds)
  first = np.concatenate([pipeline.batch_indices(len(is_noisy), 64, c.seed, s)[0]
                          for s in range(7)])
  assert abs(is_noisy[first].mean() - 0.3) < 0.08, is_noisy[first].mean()


def test_random_purposes_never_share_a_stream():
  from jaxclean import rng
  draws = {}
  for seed in range(5):
    for purpose, (_, arity) in rng.PURPOSES.items():
      for counters in ([()] if not arity else [(0,), (1,)]):
        draws[(seed, purpose, counters)] = tuple(rng.numpy(seed, purpose, *counters).integers(
            0, 2**62, 4))
  assert len(set(draws.values())) == len(draws)
  keys = {(s, p): tuple(np.asarray(__import__("jax").random.key_data(rng.key(s, p))).ravel())
          for s in range(5) for p in ("init", "augment")}
  assert len(set(keys.values())) == len(keys)


class OnDisk:
  """Images that index like an array but are not resident (`arrays.resident` is False)."""

  def __init__(self, images):
    self.images, self.shape, self.dtype, self.ndim = images, images.shape, images.dtype, images.ndim

  def __len__(self):
    return len(self.images)

  def __getitem__(self, index):
    return self.images[index]


@pytest.mark.parametrize("shuffle", [True, False])
def test_inline_batches_are_the_threaded_ones(shuffle, monkeypatch):
  """Images in memory (and views of them) are batched inline, chunk by chunk of an epoch's
  order: the same steps, indices, masks and rows as through grain's threads, across epoch
  ends and chunk ends, from any first step."""
  from jaxclean import parallel
  from jaxclean.data import arrays
  monkeypatch.setattr(pipeline, "CHUNK", 16)  # 4 batches of 4 per chunk
  mesh = parallel.make_mesh(1)
  n = 13  # 4 steps an epoch, the last padded
  images = np.arange(n)[:, None, None, None] * np.ones((n, 2, 2, 1), np.uint8)
  labels = np.arange(n) % 3
  for steps in (range(0, 11), range(3, 9), range(5, 6)):
    want = list(pipeline.batches(OnDisk(images), labels, 4, 5, mesh, steps, shuffle))
    for source in (images, arrays.take(images, np.arange(n))):
      assert arrays.resident(source)
      got = list(pipeline.batches(source, labels, 4, 5, mesh, steps, shuffle))
      assert [g[0] for g in got] == [w[0] for w in want] == list(steps)
      for (_, i, m, b), (_, wi, wm, wb) in zip(got, want):
        np.testing.assert_array_equal(i, wi)
        np.testing.assert_array_equal(m, wm)
        for k in wb:
          np.testing.assert_array_equal(np.asarray(b[k]), np.asarray(wb[k]))
  assert not arrays.resident(OnDisk(images))


def test_memory_mapped_images_are_not_resident(tmp_path):
  from jaxclean.data import arrays
  mapped = np.lib.format.open_memmap(str(tmp_path / "x.npy"), "w+", np.uint8, (4, 2, 2, 1))
  assert not arrays.resident(mapped) and not arrays.resident(arrays.take(mapped, [0, 1]))
  assert arrays.resident(np.zeros(3)) and arrays.resident(arrays.take(np.zeros(3), [1]))


def test_many_batch_indices_are_the_batches():
  for n, bs in ((10, 4), (13, 4), (1000, 64)):
    spe = pipeline.steps_per_epoch(n, bs)
    for shuffle in (True, False):
      index, mask = pipeline.many_batch_indices(n, bs, 3, spe + 1, spe - 1, shuffle)
      for k in range(spe - 1):
        i, m = pipeline.batch_indices(n, bs, 3, spe + 1 + k, shuffle)
        np.testing.assert_array_equal(index[k], i)
        np.testing.assert_array_equal(mask[k], m)
  with pytest.raises(ValueError, match="leave epoch"):
    pipeline.many_batch_indices(10, 4, 0, 2, 2)


def test_reading_threads_stop_when_the_consumer_does():
  import threading
  import time
  from jaxclean import parallel
  readers = lambda: sum(t.name.startswith("grain") for t in threading.enumerate())
  before = readers()
  images, labels = np.zeros((10**6, 1, 1, 1), np.uint8), np.zeros(10**6, np.int32)
  on_disk = OnDisk(images)  # images in memory are batched inline, without threads
  it = pipeline.batches(on_disk, labels, 8, 0, parallel.make_mesh(1), range(10**6))
  assert [next(it)[0] for _ in range(3)] == [0, 1, 2]
  assert readers() > before
  it.close()
  deadline = time.time() + 5
  while readers() > before:
    assert time.time() < deadline, "grain's reading threads outlived the consumer"
    time.sleep(0.05)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 4097])
def test_permute_is_a_bijection_of_the_index_space(n):
  for seed, epoch in ((0, 0), (1, 0), (0, 5)):
    keys = pipeline.order_keys(seed, epoch)
    assert sorted(pipeline.permute(np.arange(n), n, keys)) == list(range(n))


def test_batch_cost_does_not_grow_with_n():
  """A batch is computed from (seed, step) alone: no O(N) permutation, even at N = 1e12."""
  index, mask = pipeline.batch_indices(10**12, 256, seed=0, step=123456)
  assert mask.all() and len(set(index.tolist())) == 256
  assert index.min() >= 0 and index.max() < 10**12
