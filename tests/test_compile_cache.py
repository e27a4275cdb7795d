"""The persistent compilation cache (jaxclean.compile_cache): where it goes, when it is left
alone, and that a second run reads every program back, compiles nothing and writes the same
results."""

import os
import subprocess
import sys

import pandas as pd

from jaxclean import compile_cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_directory(monkeypatch, tmp_path):
  monkeypatch.setenv("HOME", str(tmp_path))
  assert compile_cache.directory({compile_cache.ENV: "0"}) is None
  assert compile_cache.directory({compile_cache.ENV: "~/x"}) == str(tmp_path / "x")
  default = compile_cache.directory({})
  assert default == str(tmp_path / ".cache" / "jaxclean" / "xla" / compile_cache.host())
  import jax
  assert compile_cache.host().startswith(f"jax{jax.__version__}-")
  assert compile_cache.host() == compile_cache.host()


def _enable(env: dict, tmp_path) -> list[str]:
  """`enable()` in a fresh process (JAX's cache settings are the process's): its return
  value, then the cache directory, minimum compile time and size bound it leaves."""
  code = ("import jax\nfrom jaxclean import compile_cache\n"
          "print(compile_cache.enable())\n"
          "print(jax.config.jax_compilation_cache_dir)\n"
          "print(jax.config.jax_persistent_cache_min_compile_time_secs)\n"
          "print(jax.config.jax_compilation_cache_max_size)\n")
  environ = {k: v for k, v in os.environ.items()
             if k not in (compile_cache.ENV, "JAX_COMPILATION_CACHE_DIR")}
  environ.update(env, HOME=str(tmp_path))
  proc = subprocess.run([sys.executable, "-c", code], env=environ, cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  return proc.stdout.split()


def test_enable_sets_the_cache_where_the_user_has_none(tmp_path):
  got = _enable({}, tmp_path)
  path = str(tmp_path / ".cache" / "jaxclean" / "xla" / got[0].rsplit(os.sep, 1)[-1])
  assert got == [path, path, "0.0", str(compile_cache.MAX_BYTES)]
  assert os.stat(path).st_mode & 0o777 == 0o700
  mine = str(tmp_path / "mine")
  assert _enable({compile_cache.ENV: mine}, tmp_path) == [mine, mine, "0.0",
                                                          str(compile_cache.MAX_BYTES)]


def test_enable_leaves_a_users_choice_alone(tmp_path):
  theirs = str(tmp_path / "theirs")
  assert _enable({"JAX_COMPILATION_CACHE_DIR": theirs}, tmp_path) == [theirs, theirs, "1.0",
                                                                      "-1"]
  assert _enable({compile_cache.ENV: "0"}, tmp_path) == ["None", "None", "1.0", "-1"]
  (tmp_path / "file").write_text("")  # a directory that cannot be made: nothing cached
  assert _enable({compile_cache.ENV: str(tmp_path / "file" / "x")}, tmp_path) == [
      "None", "None", "1.0", "-1"]


def test_a_second_run_compiles_nothing_and_gives_the_same_results(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
  env.update({compile_cache.ENV: str(tmp_path / "xla"), "JAX_LOG_COMPILES": "1"})
  logs = []
  for run in ("a", "b"):
    proc = subprocess.run(
        [sys.executable, "-m", "jaxclean.main", f"--workdir={tmp_path / run}",
         "--config.num_epochs=3", "--config.progress=False", "--config.data.train_size=600"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs.append(proc.stderr)
  compiled = lambda log: log.count("Finished XLA compilation")
  hits = lambda log: log.count("Persistent compilation cache hit")
  assert compiled(logs[0]) > 10 and hits(logs[0]) == 0
  assert hits(logs[1]) == compiled(logs[1]) == compiled(logs[0])  # every program read back
  for name in ("scores.csv", "label_issues.csv", "review.csv"):
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a" / name),
                                  pd.read_csv(tmp_path / "b" / name))
