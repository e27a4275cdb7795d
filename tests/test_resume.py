"""Resuming the CLI run from orbax checkpoints: after SIGKILL, when finished, when corrupt.

The CLI (`python -m jaxclean.main`, one CPU device) trains digits for 4 epochs
(24 steps each) with a checkpoint every 5 steps and at every epoch end. One
module fixture runs everything in two waves of concurrent subprocesses:
  wave 1: the uninterrupted reference run, and the run that is SIGKILLed as
          soon as a mid-epoch checkpoint (step > 24, not a multiple of 24) exists;
  wave 2: the killed run restarted; a copy of the finished reference run
          restarted; a copy with its newest checkpoint truncated restarted.
The tests then check the restarted run reproduces the reference's scores.csv,
a finished run is restored, not retrained, and an unreadable checkpoint is
skipped with a warning naming its step. Every subprocess has a deadline.
"""

import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pandas as pd
import pytest

from jaxclean import checkpoint as checkpoint_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS, SPE, EVERY = 4, 24, 5  # digits: 1500 training examples, batch 64
TOTAL = EPOCHS * SPE
TIMEOUT_S = 420  # per wave; a run takes ~45 s alone on 2 idle cores
INT_COLUMNS = ["index", "given_label", "suggested_label", "final_prediction", "forgetting",
               "is_noisy"]
FLOAT_COLUMNS = ["aum", "margin", "el2n", "confidence", "variability", "loss"]


def _env() -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                              if not f.startswith("--xla_force_host_platform_device_count"))
  env.pop("JAX_NUM_CPU_DEVICES", None)
  return env


def _start(workdir, log_path) -> subprocess.Popen:
  cmd = [sys.executable, "-m", "jaxclean.main", "--config=configs/default.py",
         f"--workdir={workdir}", f"--config.num_epochs={EPOCHS}", "--config.progress=False",
         f"--config.checkpoint.every_steps={EVERY}", "--config.batch_size=64",
         "--config.aum.threshold_samples=none", "--verbosity=0"]  # INFO logs: checked
  with open(log_path, "w") as log:
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _kill(p: subprocess.Popen) -> None:
  if p.poll() is None:
    os.killpg(p.pid, signal.SIGKILL)
  p.wait()


def _wait_all(procs: dict, deadline: float) -> dict:
  """name -> return code, None for a run killed at `deadline`."""
  codes = {}
  for name, p in procs.items():
    try:
      codes[name] = p.wait(timeout=max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
      _kill(p)
      codes[name] = None
  return codes


def _steps(workdir) -> list[int]:
  """Committed checkpoint steps (orbax renames a step folder into place when done)."""
  d = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def _snapshot(workdir) -> dict:
  """path -> (size, mtime) of every file under checkpoints/."""
  out = {}
  for p in glob.glob(os.path.join(workdir, "checkpoints", "**"), recursive=True):
    if os.path.isfile(p):
      st = os.stat(p)
      out[os.path.relpath(p, workdir)] = (st.st_size, st.st_mtime_ns)
  return out


def _read(path) -> str:
  with open(path, errors="replace") as f:
    return f.read()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  base = tmp_path_factory.mktemp("resume")
  ref, killed = base / "reference", base / "killed"
  finished, corrupt = base / "finished", base / "corrupt"
  log = lambda name: str(base / f"{name}.log")
  out = dict(base=base, ref=ref, killed=killed, finished=finished, corrupt=corrupt, log=log)
  t0 = time.monotonic()

  # Wave 1: the reference, and the run killed right after a mid-epoch checkpoint.
  procs = dict(reference=_start(ref, log("reference")), killed=_start(killed, log("killed")))
  deadline = t0 + TIMEOUT_S
  try:
    while True:
      steps = _steps(killed)
      if steps and steps[-1] > SPE and steps[-1] % SPE:
        _kill(procs["killed"])  # SIGKILL: no chance to finish a save or clean up
        break
      if procs["killed"].poll() is not None:
        pytest.fail(f"the run ended (rc {procs['killed'].returncode}) before a mid-epoch "
                    f"checkpoint was seen; steps {steps}\n{_read(log('killed'))[-3000:]}")
      if time.monotonic() > deadline:
        pytest.fail("no mid-epoch checkpoint before the deadline")
      time.sleep(0.02)
  except BaseException:
    for p in procs.values():
      _kill(p)
    raise
  out["steps_at_kill"] = _steps(killed)
  # A step saved between the check and the kill may be an epoch end: drop it, so
  # the restart provably starts mid-epoch (checkpoints are independent of each other).
  mid = max(s for s in out["steps_at_kill"] if s % SPE)
  for s in out["steps_at_kill"]:
    if s > mid:
      shutil.rmtree(os.path.join(killed, "checkpoints", str(s)))
  out["resume_step"] = mid
  codes = _wait_all(dict(reference=procs["reference"]), deadline)
  assert codes["reference"] == 0, _read(log("reference"))[-3000:]
  out["wave1_s"] = time.monotonic() - t0

  # Wave 2: restart the killed run; restart finished and corrupted copies of the reference.
  shutil.copytree(ref, finished)
  shutil.copytree(ref, corrupt)
  out["finished_before"] = _snapshot(finished)
  out["history_before"] = _read(finished / "history.csv")
  steps = _steps(corrupt)
  out["corrupt_step"], out["fallback_step"] = steps[-1], steps[-2]
  data = glob.glob(os.path.join(corrupt, "checkpoints", str(steps[-1]), "default", "**", "d",
                                "*"), recursive=True)
  assert data, "no data files found in the checkpoint to corrupt"
  for p in data:
    with open(p, "r+b") as f:
      f.truncate(os.path.getsize(p) // 2)
  t1 = time.monotonic()
  procs = dict(restarted=_start(killed, log("restarted")),
               finished=_start(finished, log("finished")),
               corrupt=_start(corrupt, log("corrupt")))
  out["codes"] = _wait_all(procs, t1 + TIMEOUT_S)
  out["wave2_s"] = time.monotonic() - t1
  print(f"\nresume runs: wave 1 {out['wave1_s']:.0f} s (killed at steps "
        f"{out['steps_at_kill']}), wave 2 {out['wave2_s']:.0f} s")
  return out


def _check_rc(runs, name):
  assert runs["codes"][name] == 0, (
      f"{name}: rc {runs['codes'][name]} (None = killed at the deadline)\n"
      f"{_read(runs['log'](name))[-3000:]}")


def _assert_same_scores(a: pd.DataFrame, b: pd.DataFrame) -> bool:
  """Equal up to float tolerance, integer columns exactly; True when bitwise equal."""
  assert list(a.columns) == list(b.columns)
  for c in INT_COLUMNS:
    np.testing.assert_array_equal(a[c], b[c], err_msg=c)
  for c in FLOAT_COLUMNS:
    np.testing.assert_allclose(a[c], b[c], rtol=1e-5, atol=1e-6, err_msg=c)
  return a.equals(b)


def test_killed_run_resumes_mid_epoch_to_the_same_scores(runs):
  _check_rc(runs, "restarted")
  step = runs["resume_step"]
  assert SPE < step < TOTAL and step % SPE
  log = _read(runs["log"]("restarted"))
  assert f"resumed from step {step} of {TOTAL}" in log
  ref = pd.read_csv(runs["ref"] / "scores.csv")
  got = pd.read_csv(runs["killed"] / "scores.csv")
  exact = _assert_same_scores(ref, got)
  print(f"resumed at step {step}: scores.csv bitwise equal to the reference: {exact}")
  history = pd.read_csv(runs["killed"] / "history.csv")
  assert history["epoch"].tolist() == list(range(1, EPOCHS + 1))  # no duplicated epoch rows
  ref_history = pd.read_csv(runs["ref"] / "history.csv")
  np.testing.assert_allclose(history["test_accuracy"], ref_history["test_accuracy"])
  # The resumed epoch's training metrics cover the whole epoch, not just its tail.
  np.testing.assert_allclose(history[["train_loss", "train_accuracy"]],
                             ref_history[["train_loss", "train_accuracy"]], rtol=1e-5)
  assert _steps(runs["killed"])[-1] == TOTAL


def test_finished_run_is_restored_not_retrained(runs):
  _check_rc(runs, "finished")
  log = _read(runs["log"]("finished"))
  assert f"resumed from step {TOTAL} of {TOTAL}" in log
  assert not re.search(r"\] epoch \d+: ", log), "a finished run trained again"
  assert "Saving checkpoint" not in log
  assert _snapshot(runs["finished"]) == runs["finished_before"]  # no checkpoint touched
  assert _read(runs["finished"] / "history.csv") == runs["history_before"]
  # The outputs are rewritten from the restored state and records, unchanged.
  assert _assert_same_scores(pd.read_csv(runs["ref"] / "scores.csv"),
                             pd.read_csv(runs["finished"] / "scores.csv"))


def test_corrupt_newest_checkpoint_falls_back_to_previous(runs):
  _check_rc(runs, "corrupt")
  bad, prev = runs["corrupt_step"], runs["fallback_step"]
  log = _read(runs["log"]("corrupt"))
  assert re.search(rf"checkpoint at step {bad} in \S+ is unreadable .*trying the previous one",
                   log), log[-3000:]
  assert f"resumed from step {prev} of {TOTAL}" in log
  _assert_same_scores(pd.read_csv(runs["ref"] / "scores.csv"),
                      pd.read_csv(runs["corrupt"] / "scores.csv"))
  # The unreadable step was replaced by the retrained one, which now restores.
  path = os.path.join(runs["corrupt"], "checkpoints", str(bad), "default")
  meta = ocp.PyTreeCheckpointer().metadata(path).item_metadata.tree
  args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), meta)
  tree = ocp.PyTreeCheckpointer().restore(path, args=ocp.args.PyTreeRestore(restore_args=args))
  assert int(tree["state"]["step"]) == bad


def _break(step_dir: str, how: str) -> None:
  if how == "truncated_data":
    for p in glob.glob(os.path.join(step_dir, "default", "**", "d", "*"), recursive=True):
      open(p, "w").close()
  elif how == "no_item_metadata":
    os.remove(os.path.join(step_dir, "default", "_METADATA"))
  elif how == "no_item_folder":
    shutil.rmtree(os.path.join(step_dir, "default"))
  elif how == "empty_files":
    for p in glob.glob(os.path.join(step_dir, "**"), recursive=True):
      if os.path.isfile(p):
        open(p, "w").close()
  else:
    raise ValueError(how)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # tensorstore
@pytest.mark.parametrize("how", ["truncated_data", "no_item_metadata", "no_item_folder",
                                 "empty_files"])
def test_checkpointer_skips_unreadable_step(runs, tmp_path, how, caplog):
  """`Checkpointer.restore` on several kinds of damage, plus a killed save's tmp folder."""
  _check_rc(runs, "finished")
  src = os.path.join(runs["finished"], "checkpoints")
  d = str(tmp_path / "checkpoints")
  shutil.copytree(src, d)
  steps = _steps(tmp_path)
  _break(os.path.join(d, str(steps[-1])), how)
  # A save killed halfway leaves a tmp folder behind; it is not a step.
  shutil.copytree(os.path.join(src, str(steps[-1])),
                  os.path.join(d, f"{TOTAL + EVERY}.orbax-checkpoint-tmp"))
  meta = ocp.PyTreeCheckpointer().metadata(os.path.join(src, str(steps[-1]), "default"))
  target = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), meta.item_metadata.tree)
  ckpt = checkpoint_lib.Checkpointer(d)
  with caplog.at_level("WARNING"):
    restored = ckpt.restore(target)
  ckpt.close()
  assert restored is not None
  step, tree = restored
  assert step == steps[-2]
  assert int(np.asarray(tree["state"]["step"])) == steps[-2]
  assert f"checkpoint at step {steps[-1]} in" in caplog.text


@pytest.mark.parametrize("every_steps, every_seconds, saved", [
    (0, 3600, [10, 30]),  # the first epoch end (nothing saved yet) and the last step
    (0, 0, [10, 20, 30]),  # every epoch end
    (4, 3600, [4, 8, 12, 16, 20, 24, 28, 30]),  # every 4th step; 10 comes soon after 8
])
def test_checkpointer_saves_epoch_ends_by_time(tmp_path, every_steps, every_seconds, saved):
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path), keep=100, every_steps=every_steps,
                                     every_seconds=every_seconds, last_step=30)
  for step in range(1, 31):
    ckpt.maybe_save(step, {"x": np.full(3, step)}, epoch_end=step % 10 == 0)
    ckpt.manager.wait_until_finished()  # a save in progress would make the policy skip
  ckpt.close()
  assert sorted(ckpt.manager.all_steps()) == saved
