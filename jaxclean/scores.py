"""Per-example label-quality scores read off `Records`.

Every score is a pure function of the records (jit-able, O(N)), so it works
inside a user's own loop as well as at the end of `train_and_evaluate`.
`SUSPICIOUS_HIGH[name]` gives each score's orientation: True when a high value
means a suspicious label, False when a low value does.

  forgetting   correct->incorrect transitions between consecutive presentations;
               never-learned examples get their number of presentations
               (Toneva et al. 2019). High = suspicious.
  aum          mean margin over presentations after the first `skip_epochs`
               epochs (Pleiss et al. 2020). Low = suspicious.
  margin       margin at the last presentation. Low = suspicious.
  el2n         mean over presentations of ||softmax - onehot||_2 (Paul et al.
               2021 score, averaged over the trajectory of one run). High = suspicious.
  confidence   mean probability of the assigned label (Swayamdipta et al.
               2020). Low = suspicious.
  variability  standard deviation (ddof=0) of that probability. High = ambiguous.
  loss         cross-entropy at the last presentation. High = suspicious.
  grand        norm of the loss gradient w.r.t. the parameters at initialisation or after
               `grand.epochs` epochs, the ensemble members' mean (Paul et al. 2021;
               `jaxclean.grand`, not read off the records). High = suspicious.
  early_el2n   EL2N over the early window only (before the model memorises wrong
               labels: `Records` and `jaxclean.train`). High = suspicious.
  early_confidence  mean assigned-label probability over the early window. Low = suspicious.
  combined     mean percentile rank of early EL2N and of early EL2N centred on its
               mean within the given class (`combined`, which needs the labels): a
               hard class's correct examples have large errors too, and centring
               removes that difficulty but also a real difference between
               classes' noise; ranking by both halves the correction. Read off
               the early window, it does not decay as the model memorises
               (experiments/results/defaults). High = suspicious.
The suggestion (`suggestion`): the class the model favoured over the given label
during the early window, and the share of the window's presentations it won.
The count (`confident_count`): how many labels are wrong, from the early window's
confident joint.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxclean.records import Records


def _div(a, b):
  b = b.astype(jnp.float32)
  return jnp.where(b > 0, a / jnp.maximum(b, 1), jnp.nan)


def forgetting(r: Records) -> jax.Array:
  return jnp.where(r.learned, r.forgotten.astype(jnp.int32), r.seen.astype(jnp.int32))


def aum(r: Records) -> jax.Array:
  return _div(r.margin_sum, r.aum_seen)


def margin(r: Records) -> jax.Array:
  return r.margin


def el2n(r: Records) -> jax.Array:
  return _div(r.el2n_sum, r.seen)


def confidence(r: Records) -> jax.Array:
  return jnp.where(r.seen > 0, r.prob_mean, jnp.nan)


def variability(r: Records) -> jax.Array:
  return jnp.sqrt(_div(r.prob_m2, r.seen))


def loss(r: Records) -> jax.Array:
  return r.loss


def early_el2n(r: Records) -> jax.Array:
  return _div(r.early_el2n, r.early_seen)


def early_confidence(r: Records) -> jax.Array:
  return _div(r.early_prob, r.early_seen)


def early_rival(r: Records) -> jax.Array:
  """Mean probability of the strongest other class over the early window."""
  return _div(r.early_other, r.early_seen)


@jax.jit
def suggestion(r: Records) -> tuple[jax.Array, jax.Array]:
  """(suggested label, its support): the early window's weighted vote of the strongest
  other class, and the share of the window's presentations it won since it led the vote.
  With a leading member axis, the member whose vote is strongest decides."""
  support = _div(r.suggested_wins.astype(jnp.float32), r.early_seen)
  if r.suggested.ndim == 1:
    return r.suggested.astype(jnp.int32), support
  best = jnp.argmax(r.suggested_vote, axis=0)
  pick = lambda a: jnp.take_along_axis(a, best[None], 0)[0]
  return pick(r.suggested).astype(jnp.int32), pick(support)


def early_probabilities(r: Records) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The early window's mean probability of the given label and of the strongest other
  class (the members' means, as `ensemble_scores`), and the suggestion."""
  members = jax.tree.map(lambda a: a[None], r) if r.seen.ndim == 1 else r
  member_mean = lambda score: jnp.mean(jax.vmap(score)(members), axis=0)
  return member_mean(early_confidence), member_mean(early_rival), suggestion(r)[0]


def _confident_joint(conf, rival, suggested, labels, num_classes: int):
  """The examples off and on the diagonal of cleanlab's confident joint, and the class
  sizes: what `confident_count` and `label_posterior` share."""
  per_class = lambda v: jax.ops.segment_sum(v, labels, num_segments=num_classes)
  size = per_class(jnp.ones_like(conf))
  t = per_class(conf) / jnp.maximum(size, 1)
  in_given = conf >= t[labels]
  off = (rival >= t[suggested]) & (~in_given | (rival > conf))
  return off, in_given & ~off, size


@functools.partial(jax.jit, static_argnames="num_classes")
def confident_count(r: Records, labels: jax.Array, num_classes: int
                    ) -> tuple[jax.Array, jax.Array]:
  """Estimated number of wrong labels: cleanlab's calibrated confident joint, from records.

  cleanlab counts example i (given y) as off the diagonal when some other class j
  has p_ij >= t_j, t_j being the mean self-confidence of the examples given j. Here
  the probabilities are the early window's means, and the records keep two of them
  per example: the given label's (`early_confidence`) and the strongest other
  class's (`early_rival`, standing for the suggested class). The counts of each
  given class are then scaled to its size, as cleanlab's calibration does. Records
  with a leading member axis use the members' mean probabilities and `suggestion`.
  Returns the estimate (an int32 scalar) and the examples counted off the diagonal.
  """
  off, on, size = _confident_joint(*early_probabilities(r), labels, num_classes)
  return jnp.round(_estimate(off, on, size, labels)).astype(jnp.int32), off


def _estimate(off, on, size, labels) -> jax.Array:
  """The calibrated confident joint's off-diagonal total: each given class's off share
  times its size."""
  per_class = lambda v: jax.ops.segment_sum(v.astype(jnp.float32), labels,
                                            num_segments=size.shape[0])
  off_c, on_c = per_class(off), per_class(on)
  return jnp.sum(off_c / jnp.maximum(off_c + on_c, 1) * size)


# Sharpness exponents `label_posterior` chooses from (geometric, 1/2 to 64).
SHARPNESS = tuple(float(2 ** (e / 4)) for e in range(-4, 25))


@functools.partial(jax.jit, static_argnames="num_classes")
def label_posterior(conf: jax.Array, rival: jax.Array, suggested: jax.Array, labels: jax.Array,
                    num_classes: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(P(the given label is right), P(the suggestion is right), the sharpness k) per example.

  Bayes' rule with the noise read off the confident joint: P(true j | x, given y) is
  proportional to P(given y | true j) q_j(x), q(x) the early window's mean probabilities
  p_j(x) sharpened, q_j proportional to p_j^k. P(given | true) is the calibrated joint
  (`confident_count`'s, each off-diagonal example counted at its suggestion) normalised
  per true class. The records keep p of the given class (`conf`) and of the suggestion
  (`rival`); the rest is spread evenly over the other classes. The means are softer or
  sharper than a posterior, so k is fitted, by maximum likelihood of the given labels
  under that noise, sum_i log sum_j P(given y_i | true j) q_j(x_i) (temperature scaling
  with noisy labels), over `SHARPNESS`; nothing known-wrong is used. The calibration is
  measured in experiments/results/decisions. NaN where the window never saw the example.
  """
  off, on, size = _confident_joint(conf, rival, suggested, labels, num_classes)
  joint = jnp.zeros((num_classes, num_classes)).at[labels, suggested].add(
      off.astype(jnp.float32)).at[labels, labels].add(on.astype(jnp.float32))
  joint = joint / jnp.maximum(joint.sum(1, keepdims=True), 1) * size[:, None]  # [given, true]
  noise = joint / jnp.maximum(joint.sum(0, keepdims=True), 1e-9)  # P(given | true)
  log = lambda v: jnp.log(jnp.maximum(v, 1e-30))
  same = suggested == labels
  t_given, t_sugg = noise[labels, labels], jnp.where(same, 0.0, noise[labels, suggested])
  t_rest = jnp.maximum(noise[labels].sum(1) - t_given - t_sugg, 0.0)
  others = max(num_classes - 2, 1)
  rest = jnp.maximum(1.0 - conf - rival, 0.0) / others
  logsumexp = functools.partial(jax.scipy.special.logsumexp, axis=0)

  def fit(k):
    q = jnp.stack([k * log(conf), k * log(rival), k * log(rest)])  # per class of each group
    terms = q + jnp.stack([log(t_given), log(t_sugg), log(t_rest)])
    given = logsumexp(terms)  # log P(given y | x), less the normaliser of q
    norm = logsumexp(q + jnp.log(jnp.array([1.0, 1.0, others]))[:, None])
    p = jnp.exp(terms - given)
    return jnp.nansum(given - norm), p[0], jnp.where(same, p[0], p[1])

  ks = jnp.asarray(SHARPNESS)
  likelihood, given, sugg = jax.vmap(fit)(ks)
  best = jnp.argmax(likelihood)
  return given[best], sugg[best], ks[best]


def _percentile_rank(v: jax.Array) -> jax.Array:
  """Rank of each value in [0, 1] (0 = smallest); ties broken by index."""
  ranks = jnp.zeros(v.shape, jnp.float32).at[jnp.argsort(v, stable=True)].set(
      jnp.arange(v.shape[0], dtype=jnp.float32))
  return ranks / max(v.shape[0] - 1, 1)


@jax.jit
def combined(el2n_values: jax.Array, labels: jax.Array) -> jax.Array:
  """The combined score from EL2N (the member mean for an ensemble) and the given labels."""
  n = labels.shape[0]  # a static bound on the number of classes
  sums = jax.ops.segment_sum(el2n_values, labels, num_segments=n)
  counts = jax.ops.segment_sum(jnp.ones_like(el2n_values), labels, num_segments=n)
  centred = el2n_values - (sums / jnp.maximum(counts, 1))[labels]
  return 0.5 * (_percentile_rank(el2n_values) + _percentile_rank(centred))


SCORES = dict(forgetting=forgetting, aum=aum, margin=margin, el2n=el2n,
              confidence=confidence, variability=variability, loss=loss,
              early_el2n=early_el2n, early_confidence=early_confidence, early_rival=early_rival)
SUSPICIOUS_HIGH = dict(forgetting=True, aum=False, margin=False, el2n=True,
                       confidence=False, variability=True, loss=True, early_el2n=True,
                       early_confidence=False, early_rival=True, combined=True, grand=True)


@jax.jit
def all_scores(r: Records) -> dict[str, jax.Array]:
  """Every score in `SCORES`, in one jitted call."""
  return {name: fn(r) for name, fn in SCORES.items()}


@jax.jit
def ensemble_scores(r: Records) -> dict[str, jax.Array]:
  """Every score of records with a leading member axis, averaged over the members."""
  return {name: jnp.mean(v.astype(jnp.float32), axis=0)
          for name, v in jax.vmap(all_scores)(r).items()}


def suspicion(name: str, values):
  """Values oriented so that higher always means more suspicious."""
  return values if SUSPICIOUS_HIGH[name] else -values
