"""Eight fake CPU devices for the multi-device tests (set before JAX starts)."""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")  # the backbone tests: Keras on JAX, set before import
import jax
import pytest

jax.config.update("jax_num_cpu_devices", 8)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


@pytest.fixture
def digits_config():
  """The default config, made small enough for a test; one device unless a test asks."""
  from configs import default
  c = default.get_config()
  c.progress = False
  c.num_devices = 1
  # Step counts and shapes in the tests assume batches of 64 and only the examples
  # (no threshold copies); tests of the copies ask for them.
  c.batch_size = 64
  c.aum.threshold_samples = "none"
  return c
