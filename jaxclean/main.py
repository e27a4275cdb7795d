"""Command line: `jaxclean --workdir=runs/default` (`USAGE`, printed by `jaxclean --help`).

`jaxclean` is setup.py's console command for `python -m jaxclean.main`; both run `run()`.
Without `--config` it runs the packaged default config, configs/default.py
(`jaxclean.configs.default`).

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

from jaxclean import backbones, checks, protocol, xla_defaults
from jaxclean.configs import default

_CONFIG = config_flags.DEFINE_config_file(
    "config", default.__file__, "Path to a config file (default: the packaged default).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and outputs.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False,
                                 "Call jax.distributed.initialize() (cluster auto-detection).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's id.")

USAGE = """\
usage: jaxclean --workdir=DIR [--config=FILE] [--config.FIELD=VALUE ...]

Trains on a labelled data set while recording how every training example is
learned, and ranks every training label by how likely it is to be wrong:
DIR/scores.csv, DIR/label_issues.csv and DIR/report.html (open it in a browser).

  --workdir=DIR   the run's checkpoints and results; a stopped run resumes there,
                  a finished one is not trained again (its results are printed)
  --config=FILE   a Python file whose get_config() returns the settings; the
                  default: scikit-learn's digits with {rate:.0%} of the labels made
                  wrong, about a minute on a laptop CPU ({default})

Any setting of the config can be changed with --config.FIELD=VALUE, for example:
  --config.data.name=NAME     digits, fashion_mnist, cifar10, tfds:NAME,
                              npz:FILE (x_train, y_train, x_test, y_test),
                              folder:DIR (train/CLASS/*.png, test/CLASS/*.png)
  --config.noise.kind=none    rank the labels as given (default: {kind}, which
                              makes {rate:.0%} of them wrong to show the detection)
  --config.num_epochs=N       epochs of training (default {epochs})
  --config.model.name=NAME    auto, mlp, cnn, resnet32, preact_resnet18 (default {model}),
                              or import:MODULE:NAME, your own flax.linen Module
  --config.backbone.name=NAME a pretrained backbone (pip install 'jaxclean[pretrained]'):
                              {backbones};
                              embeds every image once (cached), trains a head on that;
                              --config.backbone.mode=finetune trains it with the head

Examples:
  jaxclean --workdir=runs/digits
  jaxclean --workdir=runs/mine --config.data.name=npz:data.npz --config.noise.kind=none
  jaxclean --workdir=runs/pets --config.data.name=folder:pets --config.noise.kind=none \\
      --config.backbone.name=dinov2_small

Every flag, other libraries' included: --helpfull.
"""


def _usage() -> str:
  """`USAGE` with the packaged default config's values, so that it cannot drift from them."""
  c = default.get_config()
  return USAGE.format(default=default.__file__, rate=c.noise.rate, kind=c.noise.kind,
                      epochs=c.num_epochs, model=c.model.name,
                      backbones=", ".join(backbones.PRESETS))


def _fail(message: str) -> None:
  """The one line and exit status 2 that every bad input ends with."""
  lines = str(message).strip().splitlines() or [""]
  print(f"error: {lines[0]}", file=sys.stderr)
  sys.exit(2)


def _parse_flags(argv):
  """absl's flag parsing, with a bad flag, config file or override as `_fail`'s line;
  `--help` prints the usage (exit 0), and so does no argument at all (exit 2)."""
  if len(argv) == 1 or {"--help", "-help", "-h", "-?", "--helpshort"} & set(argv[1:]):
    print(_usage(), end="", file=sys.stdout if len(argv) > 1 else sys.stderr)
    sys.exit(0 if len(argv) > 1 else 2)
  try:
    argv = flags.FLAGS(argv)
    _CONFIG.value.get("seed")  # a config file that failed to load raises when first read
    if _WORKDIR.value is None:
      _fail("--workdir=DIR is missing: where the run's results go (jaxclean --help)")
    return argv
  except flags.Error as e:
    _fail(e)
  except Exception as e:  # the config file is the user's code: its failures are bad input
    while e.__cause__ or e.__context__:  # the first failure says what went wrong
      e = e.__cause__ or e.__context__
    why = [l for l in str(e).splitlines() if l.strip()] or [""]
    _fail(f"cannot read the config (--config or an override): {type(e).__name__}: "
          f"{why[-1].strip()}")


def main(argv):
  if len(argv) > 1:
    _fail(f"unexpected arguments {argv[1:]}")
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
    _fail(e)
  except FloatingPointError as e:  # the loss went NaN: data with NaN or inf, or too high a rate
    _fail(f"{e} (NaN or inf in the data, or optimizer.lr too high)")


def run():
  """The `jaxclean` console command (setup.py's entry point): `python -m jaxclean.main`."""
  app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
  run()
