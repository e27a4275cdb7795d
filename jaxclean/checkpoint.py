"""Resumable runs: orbax checkpoints of the train state and per-example records.

The data position and every random number derive from (seed, step), so the
step stored in the train state is all a restart needs besides the arrays.
A checkpoint that fails to restore (partial, corrupt) is skipped, with a
warning, in favour of the one before it. The run's identity (its settings
and a digest of its data) is saved beside the checkpoints: a run with another
identity is refused before anything is restored or deleted.
"""

from __future__ import annotations

import json
import os

import jax
import orbax.checkpoint as ocp
from absl import logging

from jaxclean import outputs
from jaxclean.errors import InputError

IDENTITY_FILE = "run.json"


class ConfigMismatch(InputError):
  """The checkpoints in a directory belong to a run with other settings or data."""


def check_identity(directory: str, identity: dict) -> None:
  """Saves `identity` in `directory`, or raises ConfigMismatch if another one is there."""
  path = os.path.join(directory, IDENTITY_FILE)
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
    if saved != identity:
      keys = sorted(set(saved) | set(identity), key=str)
      diff = [f"{k}: {saved.get(k, '(unset)')!r} -> {identity.get(k, '(unset)')!r}"
              for k in keys if saved.get(k) != identity.get(k)]
      raise ConfigMismatch(
          f"{os.path.dirname(directory)} holds a run with other settings or data "
          f"({'; '.join(diff)}); use another --workdir, or delete that directory to start afresh")
  elif jax.process_index() == 0:
    outputs.write_text(path, json.dumps(identity, indent=1, sort_keys=True, default=str))


class Checkpointer:
  """Saves every `every_steps`-th step and `last_step` (a finished run is restored from it),
  and an epoch's end once `every_seconds` have passed since the last save (0: every epoch
  end). The time is orbax's `ContinuousCheckpointingPolicy`, decided on the primary host
  and shared with the others; a small run is then not slowed by a save per epoch (a third
  of a 10,000-embedding run's time), and a crash loses at most that many seconds and an
  epoch."""

  def __init__(self, directory: str, keep: int = 3, every_steps: int = 0,
               every_seconds: float = 0, last_step: int | None = None,
               identity: dict | None = None):
    self.every_steps, self.every_seconds, self.last_step = every_steps, every_seconds, last_step
    self.unreadable: set[int] = set()
    directory = os.path.abspath(directory)
    if identity is not None:
      check_identity(directory, json.loads(json.dumps(identity, default=str)))
    policy = ocp.checkpoint_managers.ContinuousCheckpointingPolicy(
        minimum_interval_secs=every_seconds)
    # One item: a step whose item folder is missing must not make the manager
    # read every step as a multi-item checkpoint (then none restores).
    self.manager = ocp.CheckpointManager(
        directory, options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, save_decision_policy=policy),
        item_handlers=ocp.StandardCheckpointHandler())

  def maybe_save(self, step: int, tree, epoch_end: bool = False) -> None:
    """Saves `step` if it is an `every_steps`-th or the last step, or an epoch's end that
    the time policy takes."""
    forced = step == self.last_step or (self.every_steps and step % self.every_steps == 0) or (
        epoch_end and not self.every_seconds)
    if not (forced or epoch_end):
      return
    if step in self.unreadable:  # replace it, or it shadows this good save forever
      self.manager.delete(step)
      self.unreadable.discard(step)
    if step not in self.manager.all_steps():
      self.manager.save(step, args=ocp.args.StandardSave(tree), force=bool(forced))

  def restore(self, target):
    """(step, tree) of the newest readable checkpoint shaped like `target`, or None.

    Arrays come back with `target`'s sharding, and not strictly of the saved
    shape: records sharded over the devices are padded up to a multiple of
    the device count, and a run may resume on other devices or layouts, so the
    zero pad rows (never indexed) are added or cut. Every other shape follows
    from the run's identity, checked before anything is restored.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        return step, self.manager.restore(
            step, args=ocp.args.StandardRestore(abstract, strict=False))
      except Exception as e:  # orbax raises several types for unreadable data
        self.unreadable.add(step)
        logging.warning("checkpoint at step %d in %s is unreadable (%s: %s); "
                        "trying the previous one", step, self.manager.directory,
                        type(e).__name__, e)
    return None

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
