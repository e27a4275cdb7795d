"""One random stream per purpose, so that no two purposes ever draw the same numbers.

Every numpy draw goes through `numpy(seed, purpose, *counters)`: a
`SeedSequence` whose spawn key starts with the purpose's id and has a fixed
length per purpose, so streams of different purposes (or epochs) differ for
any seeds, including equal ones. JAX keys fold the purpose id into
`jax.random.key(seed)` the same way.
"""

from __future__ import annotations

import jax
import numpy as np

# Purpose -> (id, number of counters it takes). Ids never change: they define the streams.
PURPOSES = dict(noise=(1, 0), order=(2, 1), threshold=(3, 0), removal=(4, 0),
                augment=(5, 0), init=(6, 0), tiebreak=(7, 0))


def numpy(seed: int, purpose: str, *counters: int) -> np.random.Generator:
  """The generator of `purpose` (e.g. 'order' with the epoch as its counter)."""
  pid, arity = PURPOSES[purpose]
  if len(counters) != arity:
    raise TypeError(f"stream {purpose!r} takes {arity} counters, got {len(counters)}")
  return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(pid, *counters)))


def key(seed: int, purpose: str) -> jax.Array:
  """A typed JAX key for `purpose` (init, augment), derived from `seed`."""
  return jax.random.fold_in(jax.random.key(int(seed)), PURPOSES[purpose][0])
