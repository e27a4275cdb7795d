"""Per-example training-dynamics records, updated inside a jitted step.

`Records` holds O(N) streaming statistics: 54 bytes per example whatever the
number of epochs and (up to 32,767) classes; at C = 1000 a running mean over the
classes would take 4,000. `update` takes the logits a train step already computed and
scatters the new statistics into the rows named by the batch's example
indices; padding rows (mask False) are sent out of bounds and dropped, so they
never touch a record. `update_sharded` does the same for records split over
the devices of a mesh axis, each device holding N / D of the rows. Scores are
read off the records in `jaxclean.scores`.

Byte budget per example (see `BYTES_PER_EXAMPLE`):
  margin_sum f32   sum of margins over presentations from epoch `skip_epochs` on (AUM)
  margin     f32   margin at the last presentation
  prob_mean  f32   running mean of the assigned-label probability (confidence)
  prob_m2    f32   running sum of squared deviations of that probability (Welford; variability)
  el2n_sum   f32   sum of ||softmax - onehot||_2 over presentations (EL2N)
  loss       f32   cross-entropy at the last presentation
  seen       i16   number of presentations
  aum_seen   i16   presentations that count for AUM
  forgotten  i16   correct -> incorrect transitions between consecutive presentations
  correct    bool  correct at the last presentation
  learned    bool  correct at some presentation
The early window (presentations while `early` is True: before the model starts
memorising wrong labels, which the protocol reads off the threshold copies):
  early_seen      i16  presentations in the window
  early_prob      f32  sum of the assigned-label probability in the window
  early_other     f32  sum of the strongest other class's probability in the window
  early_el2n      f32  sum of EL2N in the window
  suggested       i16  the class the model favours over the assigned label: a weighted
                       Boyer-Moore vote of the strongest other class, weighted by its probability
  suggested_vote  f32  that vote's weight
  suggested_wins  i16  window presentations it won since it became the candidate
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P


@flax.struct.dataclass
class Records:
  margin_sum: jax.Array
  margin: jax.Array
  prob_mean: jax.Array
  prob_m2: jax.Array
  el2n_sum: jax.Array
  loss: jax.Array
  seen: jax.Array
  aum_seen: jax.Array
  forgotten: jax.Array
  correct: jax.Array
  learned: jax.Array
  early_seen: jax.Array
  early_prob: jax.Array
  early_other: jax.Array
  early_el2n: jax.Array
  suggested: jax.Array
  suggested_vote: jax.Array
  suggested_wins: jax.Array

  @property
  def num_examples(self) -> int:
    return self.seen.shape[0]


_DTYPES = dict(
    margin_sum=jnp.float32, margin=jnp.float32, prob_mean=jnp.float32,
    prob_m2=jnp.float32, el2n_sum=jnp.float32, loss=jnp.float32,
    seen=jnp.int16, aum_seen=jnp.int16, forgotten=jnp.int16,
    correct=jnp.bool_, learned=jnp.bool_,
    early_seen=jnp.int16, early_prob=jnp.float32, early_other=jnp.float32,
    early_el2n=jnp.float32, suggested=jnp.int16, suggested_vote=jnp.float32,
    suggested_wins=jnp.int16)

BYTES_PER_EXAMPLE = sum(jnp.dtype(d).itemsize for d in _DTYPES.values())


def init(num_examples: int) -> Records:
  """Empty records for `num_examples` examples."""
  return Records(**{k: jnp.zeros((num_examples,), d) for k, d in _DTYPES.items()})


def dynamics(logits: jax.Array, labels: jax.Array, rival_classes: int | None = None
             ) -> dict[str, jax.Array]:
  """Per-example margin, correctness, loss, assigned-label probability and EL2N.

  margin = logit of the assigned label minus the largest other logit (Pleiss
  et al. 2020); correct means the assigned label wins strictly (ties count as
  wrong, matching margin > 0).
  """
  logits = logits.astype(jnp.float32)
  num_classes = logits.shape[-1]
  onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  assigned = jnp.sum(logits * onehot, axis=-1)
  others = jnp.where(onehot > 0, -jnp.inf, logits)
  other = jnp.max(others, axis=-1)
  logp = jax.nn.log_softmax(logits)
  prob = jnp.exp(logp)
  margin = assigned - other
  if rival_classes is not None:  # the strongest other class among the real ones
    others = jnp.where(jnp.arange(num_classes) >= rival_classes, -jnp.inf, others)
  rival = jnp.argmax(others, axis=-1)
  return dict(
      rival=rival,  # the strongest other class
      rival_prob=jnp.take_along_axis(prob, rival[:, None], -1)[:, 0],
      margin=margin,
      correct=margin > 0,
      loss=-jnp.sum(logp * onehot, axis=-1),
      prob=jnp.sum(prob * onehot, axis=-1),
      el2n=jnp.linalg.norm(prob - onehot, axis=-1),
  )


def update(records: Records, index: jax.Array, logits: jax.Array,
           labels: jax.Array, mask: jax.Array, count_aum: jax.Array | bool = True,
           early: jax.Array | bool = True, rival_classes: int | None = None) -> Records:
  """Adds one presentation of each unmasked batch example to `records`.

  Args:
    records: current records (donate them to the enclosing jit to update in place).
    index: (B,) int example indices into the records.
    logits: (B, C) logits from the forward pass the step already ran.
    labels: (B,) assigned (possibly noisy) labels.
    mask: (B,) bool, False for padding rows; those rows are dropped.
    count_aum: whether this presentation counts for AUM (False during the
      first `skip_epochs` epochs); a traced scalar is fine.
    early: whether this presentation is in the early window (the `early_*` and
      `suggested*` fields); a traced scalar is fine.
    rival_classes: static; the suggestion is among the first `rival_classes` outputs
      (the real classes of a model that also has the threshold examples' extra class).
  Indices must be unique within a batch (true for epoch-based sampling).
  """
  d = dynamics(logits, labels, rival_classes)
  n = records.num_examples
  idx = jnp.where(mask, index, n)  # out of bounds -> dropped by the scatter
  get = lambda a: a.at[idx].get(mode="fill", fill_value=0)
  put = lambda a, v: a.at[idx].set(v.astype(a.dtype), mode="drop")

  seen = get(records.seen).astype(jnp.int32) + 1
  was_correct = get(records.correct)
  learned = get(records.learned)
  # Welford's update of mean and M2 of the assigned-label probability.
  mean = get(records.prob_mean)
  delta = d["prob"] - mean
  new_mean = mean + delta / seen
  m2 = get(records.prob_m2) + delta * (d["prob"] - new_mean)
  aum = jnp.asarray(count_aum, jnp.bool_)
  forgot = was_correct & ~d["correct"]
  early = jnp.asarray(early, jnp.bool_)
  in_early = lambda new, old: jnp.where(early, new, old)
  # Weighted Boyer-Moore: the strongest other class votes with its probability; a
  # rival outvoting the candidate takes its place with the surplus.
  cand, vote, wins = get(records.suggested), get(records.suggested_vote), get(records.suggested_wins)
  first = get(records.early_seen) == 0
  same = (cand == d["rival"]) & ~first
  vote_after = jnp.where(same, vote + d["rival_prob"], vote - d["rival_prob"])
  take = ~same & ((vote_after < 0) | first)
  wins_after = jnp.where(take, 1, wins.astype(jnp.int32) + same)

  return Records(
      margin_sum=put(records.margin_sum,
                     get(records.margin_sum) + jnp.where(aum, d["margin"], 0.0)),
      margin=put(records.margin, d["margin"]),
      prob_mean=put(records.prob_mean, new_mean),
      prob_m2=put(records.prob_m2, m2),
      el2n_sum=put(records.el2n_sum, get(records.el2n_sum) + d["el2n"]),
      loss=put(records.loss, d["loss"]),
      seen=put(records.seen, seen),
      aum_seen=put(records.aum_seen, get(records.aum_seen) + aum.astype(jnp.int32)),
      forgotten=put(records.forgotten, get(records.forgotten) + forgot.astype(jnp.int32)),
      # Written through `was_correct` so XLA updates in place instead of copying.
      correct=put(records.correct, jnp.where(mask, d["correct"], was_correct)),
      learned=put(records.learned, learned | d["correct"]),
      early_seen=put(records.early_seen,
                     get(records.early_seen).astype(jnp.int32) + early.astype(jnp.int32)),
      early_prob=put(records.early_prob, get(records.early_prob) + jnp.where(early, d["prob"], 0.0)),
      early_other=put(records.early_other,
                      get(records.early_other) + jnp.where(early, d["rival_prob"], 0.0)),
      early_el2n=put(records.early_el2n, get(records.early_el2n) + jnp.where(early, d["el2n"], 0.0)),
      suggested=put(records.suggested, in_early(jnp.where(take, d["rival"], cand), cand)),
      suggested_vote=put(records.suggested_vote, in_early(jnp.abs(vote_after), vote)),
      suggested_wins=put(records.suggested_wins, in_early(wins_after, wins)),
  )


def update_sharded(records: Records, index: jax.Array, logits: jax.Array, labels: jax.Array,
                   mask: jax.Array, count_aum: jax.Array | bool = True,
                   early: jax.Array | bool = True, rival_classes: int | None = None,
                   axis_name: str = "data") -> Records:
  """`update` for records whose rows are split in contiguous blocks over mesh axis `axis_name`.

  Call inside `jax.jit` under `jax.set_mesh`, with records placed as
  `NamedSharding(mesh, P(axis_name))` (`P(None, axis_name)` under a member
  `vmap`) and a row count that is a multiple of the axis size (pad rows are
  never indexed). The batch's index, logits, labels and mask, O(batch), reach
  every device (XLA all-gathers them where they are sharded); each device
  scatters only the rows it owns, so the O(N) records never cross devices.
  Plain `update` on sharded records, partitioned by XLA, moves no O(N) data
  either but compiles to 31 collectives against these 4 and takes 2-3x as long
  (benchmarks/README.md, "Records at scale").
  """

  def local(rec, index, logits, labels, mask, count_aum, early):
    start = jax.lax.axis_index(axis_name) * rec.num_examples
    own = mask & (index >= start) & (index < start + rec.num_examples)
    return update(rec, index - start, logits, labels, own, count_aum, early, rival_classes)

  return jax.shard_map(local, in_specs=(P(axis_name), P(), P(), P(), P(), P(), P()),
                       out_specs=P(axis_name))(records, index, logits, labels, mask,
                                               jnp.asarray(count_aum, jnp.bool_),
                                               jnp.asarray(early, jnp.bool_))
