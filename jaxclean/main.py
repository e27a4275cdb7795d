"""Command line: `python -m jaxclean.main --config=configs/default.py --workdir=runs/default`.

Any config field can be overridden, e.g. `--config.noise.rate=0.4`. For
multi-process runs pass `--distributed` (on TPU pods and SLURM/GPU clusters
JAX finds the cluster itself) or the explicit coordinator flags. Bad input
(a setting, a data set, a file) ends with one line on stderr and exit status 2.
Library INFO logs are off unless asked for with `--verbosity=0` (or higher).
On the CPU it sets XLA:CPU up before JAX starts (`jaxclean.xla_defaults`: on
x86, YNNPACK for dots only unless XLA_FLAGS mentions ynn; each step's
temporaries kept in the heap), 2-3x faster CNN steps; JAXCLEAN_XLA_DEFAULTS=0
leaves both out.
"""

import os
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from jaxclean import checks, protocol, xla_defaults

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and outputs.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False,
                                 "Call jax.distributed.initialize() (cluster auto-detection).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's id.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  added = xla_defaults.apply()  # before the first JAX computation starts a backend
  heap = xla_defaults.reuse_heap()
  if not flags.FLAGS["verbosity"].present:  # library INFO logs (orbax, JAX) only when asked
    logging.set_verbosity(logging.WARNING)
    # orbax warns when an epoch ends before the last epoch's asynchronous save did: harmless.
    logging.get_absl_handler().addFilter(
        lambda record: "Waiting for previous save" not in record.getMessage())
  if _DISTRIBUTED.value or _COORDINATOR.value:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value,
                               process_id=_PROCESS_ID.value)
  logging.info("process %d of %d, %d devices", jax.process_index(), jax.process_count(),
               jax.device_count())
  logging.info("XLA_FLAGS=%r%s", os.environ.get("XLA_FLAGS", ""),
               f" ({xla_defaults.FLAG} added; {xla_defaults.ENV}=0 leaves XLA_FLAGS alone)"
               if added else "")
  logging.info("malloc: %s", "one arena, no mmap, no trim (xla_defaults.HEAP)" if heap
               else "glibc's defaults")
  try:
    protocol.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except checks.InputError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
