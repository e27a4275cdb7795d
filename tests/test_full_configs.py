"""The full-scale configs (configs/full_*.py): each parses, passes the config checks, shows its
command and wall-time estimate, and runs its experiment script end to end on tiny settings."""

import glob
import importlib
import os

import pytest

from jaxclean import checks
from tests.test_experiments import _fake_cifar10

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# config file -> (experiment script, arguments of get_config)
FULL = {"full_aum": ("cleaning", ((), ("cifar100",))), "full_forgetting": ("forgetting_curve", ((),)),
        "full_cifar10n": ("real_noise", ((),)), "full_pruning": ("pruning", ((),))}


def test_every_full_config_is_listed():
  found = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "configs", "full_*.py"))}
  assert found == set(FULL)


@pytest.mark.parametrize("name", FULL)
def test_full_config_parses_and_documents_its_command(name):
  module = importlib.import_module(f"configs.{name}")
  script, variants = FULL[name]
  assert f"python -m experiments.{script} --config=configs/{name}.py" in module.__doc__
  assert "not measured" in module.__doc__ and "benchmarks/step_flops.py" in module.__doc__
  for args in variants:
    c = module.get_config(*args)
    checks.check_config(c)
    assert c.data.name in ("cifar10", "tfds:cifar100") and c.data.train_size == 0
    assert c.model.name in ("resnet32", "preact_resnet18") and c.num_epochs >= 150


def _tiny(c, tmp_path):
  """`c` on 200 digits (or a fake CIFAR-10 directory), a small MLP, 1 epoch, one setting."""
  if c.data.name == "cifar10" and c.exp.get("label_sets"):
    c.data.data_dir = str(_fake_cifar10(tmp_path / "cifar10"))
    c.data.cache_dir = str(tmp_path / "cache")
  else:
    c.data.name, c.data.train_size, c.data.eval_size = "digits", 200, 100
  c.noise.pairs = ""
  c.model = dict(name="mlp", hidden=(32,))
  c.num_epochs = 1
  c.aum.skip_epochs = 0
  c.clean.retrain.num_epochs = 1
  c.num_devices = 1
  c.progress = False
  c.exp.results_dir = ""
  for key, value in dict(settings=(("uniform", 0.4),), methods=("keep_all", "aum_threshold"),
                         fractions=(0.5,), label_sets=("worst",)).items():
    if key in c.exp:
      c.exp[key] = value
  if "score" in c.exp:
    c.exp.score.update(num_epochs=1, ensemble=2)
  return c


@pytest.mark.parametrize("name", FULL)
def test_full_config_runs_on_tiny_settings(name, tmp_path):
  script, variants = FULL[name]
  c = _tiny(importlib.import_module(f"configs.{name}").get_config(*variants[0]), tmp_path)
  checks.check_config(c)
  df = importlib.import_module(f"experiments.{script}").run(c, str(tmp_path / "work"))
  assert len(df) and os.path.exists(tmp_path / "work" / f"{script}.md")
