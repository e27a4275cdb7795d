"""FLOPs of one train step of each full-scale config, from XLA's cost analysis.

The wall-time estimates in configs/full_*.py come from these counts: no GPU was measured.
Compiles each step on the local backend (CPU here) and prints XLA's FLOP count per
example trained (forward, backward, optimiser and the in-step record update).

  python benchmarks/step_flops.py
  python benchmarks/step_flops.py --smoke   # each config with an MLP at batch 8 (the suite's)
"""

from __future__ import annotations

import importlib
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jaxclean import parallel, train  # noqa: E402

# config module -> (classes the model is trained with, image shape)
FULL = {"full_aum": (11, (32, 32, 3)), "full_pruning": (10, (32, 32, 3))}


def step_flops(config, classes: int, shape) -> float:
  """XLA's FLOPs for one train step of `config` at its batch size."""
  mesh = parallel.make_mesh(1)
  bs = config.batch_size
  state = train.create_train_state(config, train.model_for(config, classes, shape), shape, 1)
  records = train.init_records(bs, config.ensemble, mesh)
  batch = dict(image=jnp.zeros((bs, *shape), jnp.uint8), label=jnp.zeros(bs, jnp.int32),
               index=jnp.arange(bs, dtype=jnp.int32), mask=jnp.ones(bs, bool))
  step = train.make_train_step(config, np.zeros(shape[-1], np.float32),
                               np.ones(shape[-1], np.float32), 1, True)
  with jax.set_mesh(mesh):
    compiled = step.lower(state, records, batch, jax.random.key(0), jnp.bool_(True)).compile()
  cost = compiled.cost_analysis()
  return float((cost[0] if isinstance(cost, list) else cost)["flops"])


def main():
  smoke = "--smoke" in sys.argv[1:]
  for name, (classes, shape) in FULL.items():
    c = importlib.import_module(f"configs.{name}").get_config()
    if smoke:
      c.model, c.batch_size = dict(name="mlp"), 8
    flops = step_flops(c, classes, shape)
    print(f"{name}: {c.model.name}, batch {c.batch_size}, {c.ensemble} member(s): "
          f"{flops:.3e} FLOP per step, {flops / c.batch_size / 1e9:.2f} GFLOP per example")


if __name__ == "__main__":
  main()
