"""The wheel as a user gets it: built from the checkout, installed (not editable) in a fresh
venv, then used from a directory outside the checkout: the Python API on arrays,
`jaxclean --help` and the default job. site-packages gains only jaxclean and its dist-info.

The venv sees this interpreter's packages (--system-site-packages), so nothing is
downloaded; it is skipped where no venv can be made.
"""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

API = """
import os

import numpy as np
import jaxclean
import jaxclean.configs.default
print(jaxclean.__file__)
print(jaxclean.configs.default.__file__)
rng = np.random.default_rng(0)
x = rng.normal(size=(200, 8)).astype(np.float32)
labels = (x[:, 0] > 0).astype(np.int64)
labels[:20] = 1 - labels[:20]
found = jaxclean.find_label_issues(x, labels, workdir="api", num_epochs=2, progress=False)
print(len(found.scores), os.path.isfile(found.report))
"""


def _run(*args, cwd, timeout=300):
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of the checkout
  return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True,
                        timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
  """(venv's python, venv's bin, site-packages entries the install added, elsewhere dir)."""
  tmp = tmp_path_factory.mktemp("wheel")
  # Built from a copy: building in the checkout would leave build/ and *.egg-info there.
  src = tmp / "src"
  shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
      ".git", "runs", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"))
  made = _run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
              str(tmp / "venv"), cwd=tmp)
  python = tmp / "venv" / "bin" / "python"
  if made.returncode or _run(str(python), "-m", "pip", "--version", cwd=tmp).returncode:
    pytest.skip(f"cannot make a venv with pip: {made.stderr.strip()[-300:]}")
  built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
               "-w", str(tmp / "dist"), str(src), cwd=tmp)
  assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
  (wheel,) = (tmp / "dist").glob("jaxclean-*.whl")
  site = _run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
              cwd=tmp).stdout.strip()
  before = set(os.listdir(site))
  # --ignore-installed: the checkout's editable jaxclean is visible through the system site.
  done = _run(str(python), "-m", "pip", "install", "--no-deps", "--no-index",
              "--ignore-installed", str(wheel), cwd=tmp)
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
  added = set(os.listdir(site)) - before
  elsewhere = tmp / "elsewhere"
  elsewhere.mkdir()
  return python, python.parent, site, added, elsewhere


def test_site_packages_gains_only_jaxclean(installed):
  _, bin_dir, _, added, _ = installed
  version = [a for a in added if a.endswith(".dist-info")]
  assert len(version) == 1 and added == {"jaxclean", version[0]}, added
  assert (bin_dir / "jaxclean").is_file()


def test_api_on_arrays(installed):
  python, _, site, _, elsewhere = installed
  r = _run(str(python), "-c", API, cwd=elsewhere)
  assert r.returncode == 0, r.stderr[-3000:]
  lines = r.stdout.strip().splitlines()  # the two paths, the run's summary, the result
  package, config, result = lines[0], lines[1], lines[-1]
  # The venv's copy, not the checkout's.
  assert package == os.path.join(site, "jaxclean", "__init__.py")
  assert config == os.path.join(site, "jaxclean", "configs", "default.py")
  assert result == "200 True"
  no_checkout = _run(str(python), "-c", "import configs", cwd=elsewhere)
  assert "No module named 'configs'" in no_checkout.stderr


def test_command_help_and_default_job(installed):
  _, bin_dir, _, _, elsewhere = installed
  helped = _run(str(bin_dir / "jaxclean"), "--help", cwd=elsewhere)
  assert helped.returncode == 0, helped.stderr[-2000:]
  assert "--config=FILE" in helped.stdout and "--workdir=DIR" in helped.stdout
  ran = _run(str(bin_dir / "jaxclean"), "--workdir=W", "--config.num_epochs=2",
             "--config.progress=False", cwd=elsewhere)
  assert ran.returncode == 0, ran.stderr[-3000:]
  assert ran.stdout.splitlines()[-1] == f"report: {os.path.join('W', 'report.html')}"
  assert (elsewhere / "W" / "scores.csv").is_file()
