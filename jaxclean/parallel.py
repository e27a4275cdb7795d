"""The ("data",) device mesh and moving host data onto it.

Every process feeds only its own rows of each global batch
(`jax.make_array_from_process_local_data`); parameters are replicated, and
per-example records either replicated or split over the devices
(`record_sharding`). The mesh axis is `Auto`, so XLA's partitioner inserts the
gradient all-reduce that `pmap` users wrote as `lax.pmean(grads, "batch")`.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P


def make_mesh(num_devices: int = 0) -> jax.sharding.Mesh:
  """A 1-D ("data",) mesh over the first `num_devices` devices (0 = all)."""
  devices = jax.devices()
  n = num_devices or len(devices)
  if n > len(devices):
    raise ValueError(f"asked for {n} devices, only {len(devices)} are visible")
  if n != len(devices) and jax.process_count() > 1:
    raise ValueError("multi-process runs use every device (set num_devices=0)")
  return jax.make_mesh((n,), ("data",), axis_types=(AxisType.Auto,), devices=devices[:n])


def batch_sharding(mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def record_sharding(mesh, shard: bool) -> NamedSharding:
  """Records (members, N): replicated, or each device holding N / D rows of every member."""
  return NamedSharding(mesh, P(None, "data") if shard else P())


def record_rows(num_examples: int, mesh, shard: bool) -> int:
  """Rows to allocate: sharded records are padded up to a multiple of the device count."""
  return -(-num_examples // mesh.size) * mesh.size if shard else num_examples


def local_rows(global_batch: int, mesh) -> slice:
  """The rows of a global batch that this process feeds."""
  if global_batch % mesh.size:
    raise ValueError(f"batch size {global_batch} is not divisible by {mesh.size} devices")
  per_process = global_batch // jax.process_count()
  start = jax.process_index() * per_process
  return slice(start, start + per_process)


def to_global(local: dict[str, np.ndarray], mesh, global_batch: int) -> dict[str, jax.Array]:
  """Assembles the global batch from every process's rows (one process: one transfer of
  them all, as `jax.make_array_from_process_local_data` would place them)."""
  sharding = batch_sharding(mesh)
  if jax.process_count() == 1:
    return jax.device_put(local, sharding)
  return {k: jax.make_array_from_process_local_data(
      sharding, v, (global_batch,) + v.shape[1:]) for k, v in local.items()}


def replicate(tree, mesh):
  """Places a host pytree (the same on every process) replicated on the mesh.

  Typed PRNG keys travel as their key data: `device_put` cannot place a key
  array on other processes' devices.
  """
  sharding = replicated(mesh)

  def put(x):
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(jax.device_put(jax.random.key_data(x), sharding),
                                      impl=jax.random.key_impl(x))
    return jax.device_put(x, sharding)

  return jax.tree.map(put, tree)


def fetch(tree):
  """Host numpy copy of whole arrays, replicated or sharded, on every process.

  Sharded arrays are assembled from their shards on the host (one process) or
  gathered across processes, which is a collective: every process must call it.
  """

  def get(a):
    if a.is_fully_replicated:
      return np.asarray(a.addressable_data(0))
    if a.is_fully_addressable:
      return np.asarray(a)
    return multihost_utils.process_allgather(a, tiled=True)

  return jax.tree.map(get, tree)
