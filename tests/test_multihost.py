"""The CLI under `jax.distributed`: 2 processes x 2 CPU devices against 1 device.

One 2-process run of the default digits config (the first 1498 training
examples, 10 epochs, AUM from epoch 0, every epoch-end checkpoint kept) is
launched through `tests/multihost_worker.py`, which runs `python -m
jaxclean.main` unchanged and logs each process's file writes. That run shards
its records over the 4 devices (1500 rows with 2 pad rows; fetching them for
scores and per-epoch trajectories gathers across processes). While it runs,
the same config trains in this process on one device, records replicated.
Checks:
  * both processes exit 0 and see 2 processes x 4 devices;
  * the records after one epoch (the step-24 checkpoint, written jointly by
    both processes, less its pad rows) equal the 1-device records, field by
    field, and so do the
    scores read off them (the scores.csv columns a 1-epoch run would write).
    That needs the gradient all-reduce to cross processes (gloo): with only
    local reduction the two processes' parameters would drift apart. Reading
    the epoch-1 checkpoint of the 10-epoch run saves a second 2-process launch;
  * the final AUM in process 0's scores.csv ranks like the 1-device run's;
  * only process 0 wrote the outputs; each exists once, complete, no leftovers.
Every subprocess is killed on a deadline (after dumping its Python stacks into
its log) so a hang fails instead of blocking.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pandas as pd
import pytest
from scipy import stats

from jaxclean import records as records_lib
from jaxclean import scores as scores_lib
from jaxclean import protocol, trajectories
from jaxclean import workdir as workdir_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "multihost_worker.py")
NUM_PROCESSES, DEVICES_PER_PROCESS = 2, 2
EPOCHS, STEPS_PER_EPOCH, EXAMPLES = 10, 24, 1498  # digits' first 1498 training examples, batch 64
TIMEOUT_S = 480  # the whole 2-process run; ~1.5-3 min on 2 (busy) cores
OVERRIDES = dict(num_epochs=EPOCHS, progress=False, batch_size=64, **{
                 "aum.skip_epochs": 0, "aum.threshold_samples": "none",
                 "data.train_size": EXAMPLES,
                 "checkpoint.keep": EPOCHS, "checkpoint.every_steps": 0,
                 "checkpoint.every_seconds": 3600})
OUTPUTS = {"config.json", "scores.csv", "scores.parquet", "history.csv", "history.parquet",
           "detection.json"}


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env() -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  flags = [f for f in env.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  env["XLA_FLAGS"] = " ".join(flags + [
      f"--xla_force_host_platform_device_count={DEVICES_PER_PROCESS}"])
  env.pop("JAX_NUM_CPU_DEVICES", None)
  return env


def _tail(path, n=3000) -> str:
  with open(path, errors="replace") as f:
    return f.read()[-n:]


def _launch(workdir, logdir):
  port = _free_port()
  procs = []
  for i in range(NUM_PROCESSES):
    cmd = [sys.executable, WORKER, os.path.join(logdir, f"writes{i}.json"), "--",
           "--config=configs/default.py", f"--workdir={workdir}",
           f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={NUM_PROCESSES}",
           f"--process_id={i}", "--verbosity=0", "--config.shard_records=True",
           "--config.trajectories=True"] + [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
    log = open(os.path.join(logdir, f"process{i}.log"), "w")
    procs.append(subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True))
    log.close()
  return procs


def _wait(procs, deadline) -> list[int | None]:
  """Return codes; every process still running at `deadline` is killed (None),
  after it dumped its Python stacks into its log (the worker's SIGUSR1 handler)."""
  codes = []
  for p in procs:
    try:
      codes.append(p.wait(timeout=max(deadline - time.monotonic(), 0.1)))
    except subprocess.TimeoutExpired:
      codes.append(None)
  hung = [p for p in procs if p.poll() is None]
  for p in hung:
    os.kill(p.pid, signal.SIGUSR1)
  if hung:
    time.sleep(2)
  for p in hung:
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
  return codes


def _reference(workdir):
  """The same config on one device, in this process."""
  from configs import default
  c = default.get_config()
  c.num_devices = 1
  for key, value in OVERRIDES.items():
    *path, leaf = key.split(".")
    node = c
    for p in path:
      node = node[p]
    node[leaf] = value
  return protocol.train_and_evaluate(c, workdir)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  base = tmp_path_factory.mktemp("multihost")
  two, one, logs = base / "two", base / "one", base / "logs"
  logs.mkdir()
  start = time.monotonic()
  procs = _launch(str(two), str(logs))
  try:
    reference = _reference(str(one))  # overlaps the 2-process run's start-up
  except BaseException:
    _wait(procs, time.monotonic())  # kill them
    raise
  codes = _wait(procs, start + TIMEOUT_S)
  print(f"2-process run and 1-device reference took {time.monotonic() - start:.0f} s")
  return dict(two=two, one=one, logs=logs, codes=codes, reference=reference)


def _logs(runs) -> str:
  return "\n".join(f"--- process {i} ---\n{_tail(runs['logs'] / f'process{i}.log')}"
                   for i in range(NUM_PROCESSES))


def test_both_processes_exit_zero(runs):
  assert runs["codes"] == [0] * NUM_PROCESSES, (
      f"return codes {runs['codes']} (None = killed at {TIMEOUT_S} s)\n{_logs(runs)}")
  for i in range(NUM_PROCESSES):
    log = _tail(runs["logs"] / f"process{i}.log", 10**7)
    assert (f"process {i} of {NUM_PROCESSES}, "
            f"{NUM_PROCESSES * DEVICES_PER_PROCESS} devices") in log


def _checkpointed_records(workdir, step, rows=EXAMPLES) -> records_lib.Records:
  """The records of a checkpoint, whose first `rows` rows are examples and the rest padding."""
  path = os.path.join(workdir, "checkpoints", str(step), "default")
  ckpt = ocp.PyTreeCheckpointer()
  meta = ckpt.metadata(path).item_metadata.tree
  restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), meta)
  tree = ckpt.restore(path, args=ocp.args.PyTreeRestore(restore_args=restore_args))
  assert all(a.shape[-1] == rows for a in tree["records"].values())
  assert not any(a[..., EXAMPLES:].any() for a in tree["records"].values())  # pad rows untouched
  return records_lib.Records(**{k: a[..., :EXAMPLES] for k, a in tree["records"].items()})


def test_records_after_one_epoch_match_one_device(runs):
  assert runs["codes"] == [0] * NUM_PROCESSES, _logs(runs)
  two = _checkpointed_records(runs["two"], STEPS_PER_EPOCH, rows=1500)  # sharded over 4
  one = _checkpointed_records(runs["one"], STEPS_PER_EPOCH)
  assert (np.asarray(one.seen) == 1).all()  # one epoch: every example seen once
  for name in records_lib.Records.__dataclass_fields__:
    a, b = np.asarray(getattr(one, name)), np.asarray(getattr(two, name))
    assert a.dtype == b.dtype, name
    np.testing.assert_allclose(a.astype(float), b.astype(float), rtol=1e-3, atol=1e-3,
                               err_msg=name)
  # The scores.csv columns a 1-epoch run would write, read off the same records.
  s1, s2 = scores_lib.all_scores(one), scores_lib.all_scores(two)
  for name in ["aum", "margin", "confidence", "el2n", "loss"]:
    np.testing.assert_allclose(s1[name], s2[name], rtol=1e-3, atol=1e-3, err_msg=name)
  np.testing.assert_array_equal(s1["forgetting"], s2["forgetting"])


def test_final_aum_ranks_like_one_device(runs):
  assert runs["codes"] == [0] * NUM_PROCESSES, _logs(runs)
  two = pd.read_csv(runs["two"] / "scores.csv")
  one = runs["reference"]["scores"]
  np.testing.assert_array_equal(two["index"], one["index"])
  np.testing.assert_array_equal(two["given_label"], one["given_label"])
  # The last epoch's trajectory, gathered from both processes' shards, is scores.csv's margin.
  margin = trajectories.read(str(runs["two"]), "margin")
  assert margin.shape == (EPOCHS, 1, EXAMPLES)
  np.testing.assert_allclose(margin[-1, 0], two["margin"], rtol=1e-6)
  rho = stats.spearmanr(two["aum"], one["aum"]).statistic
  print(f"Spearman AUM 2x2 devices vs 1 device after {EPOCHS} epochs: {rho:.5f}; "
        f"max |diff| {np.abs(two['aum'] - one['aum']).max():.2e}")
  assert rho >= 0.99, rho


def test_only_process_zero_writes_outputs(runs):
  assert runs["codes"] == [0] * NUM_PROCESSES, _logs(runs)
  writes = []
  for i in range(NUM_PROCESSES):
    with open(runs["logs"] / f"writes{i}.json") as f:
      writes.append({p for p in json.load(f) if not p.startswith("checkpoints" + os.sep)})
  assert writes[1] == set(), f"process 1 wrote {sorted(writes[1])}"
  assert OUTPUTS <= writes[0], sorted(writes[0])
  # What is left: each output once, whole, no temporary or partial files.
  entries = set(os.listdir(runs["two"]))
  assert OUTPUTS | {"checkpoints"} <= entries, sorted(entries)
  # No outputs.py temp files; the workdir's lock file (released, not removed) stays.
  assert not [e for e in entries if e.startswith(".") and e != workdir_lib.LOCK], sorted(entries)
  df = pd.read_csv(runs["two"] / "scores.csv")
  assert df["index"].tolist() == list(range(len(runs["reference"]["scores"])))
  pd.testing.assert_frame_equal(df, pd.read_parquet(runs["two"] / "scores.parquet"),
                                check_dtype=False)
  history = pd.read_csv(runs["two"] / "history.csv")
  assert history["epoch"].tolist() == list(range(1, EPOCHS + 1))
  # The time policy, decided on the primary host for both: the first epoch's end (no save
  # yet) and the last step; the epoch ends between come sooner than every_seconds.
  steps = sorted(int(d) for d in os.listdir(runs["two"] / "checkpoints") if d.isdigit())
  assert steps == [STEPS_PER_EPOCH, EPOCHS * STEPS_PER_EPOCH]
