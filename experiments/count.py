"""The count table: the estimated number of wrong labels against the truth, per case, seed
and epoch budget, read off `experiments.probe` dumps with the real records code.

Each dump holds every presentation's logits of a default run (originals and threshold
copies) for its epochs. One replay through `records.update` with the early window open
gives, after each epoch e, the count had the window closed there (`scores.confident_count`:
C(e)) and the copies' training accuracy and mean probability (the meter that closes it).
The run's answer for a budget of B epochs is C at the first epoch (from
`early.min_epochs`, at most B) where the meter crosses `early.copies_accuracy` or
`early.copies_probability`, and its interval `protocol.count_interval`; the learning
rate is constant, so a 15-epoch dump also answers for 30 epochs when the window closed
within it. Beside today's rule, the alternatives measured (`ALTERNATIVES`):

  soft_interp  C read at the fractional epoch where the copies' mean probability
               crosses `SOFT` (linear between epochs): a meter with less sampling noise
               than accuracy, read between epoch ends
  posterior    the expected number of wrong labels under `scores.label_posterior`
               (sum of P(given wrong)) at today's close
  aum99        the AUM paper's count at today's close: originals whose AUM so far is
               below the 99th percentile of the copies' (`aum.rule=percentile`)

  python -m experiments.count --dumps=runs/probe --out=experiments/results/count
"""

from __future__ import annotations

import glob
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from absl import app, flags

from configs import default
from experiments import dumps, tables
from jaxclean import protocol
from jaxclean import scores as scores_lib

_DUMPS = flags.DEFINE_string("dumps", None, "Directory of probe dumps (one folder per case).")
_BUDGETS = flags.DEFINE_list("budgets", ["15", "30"], "Epoch budgets to read.")
_OUT = flags.DEFINE_string("out", None, "Directory for count.md and count.csv.")

SOFT = 0.14
EARLY = default.get_config().early
PERCENTILE = default.get_config().aum.percentile
ALTERNATIVES = ("soft_interp", "posterior", "aum99")


def curve(meta, logits) -> pd.DataFrame:
  """Per epoch of a dump (`dumps.load`; from 2: the records' early window starts after
  `aum.skip_epochs` = 1): C(e), the posterior's expected count, the AUM paper's count,
  and the copies' accuracy and mean probability."""
  labels = meta["labels"]
  n, c = len(labels), logits.shape[-1] - 1
  r, step = dumps.replayer(labels, len(meta["sources"]), logits.shape[-1])
  out = []
  for e in range(len(logits)):
    r = step(r, logits[e], e >= 1, e >= 1)
    if e == 0:
      continue
    orig, copy = (jax.tree.map(lambda a, s=s: a[s], r) for s in (slice(0, n), slice(n, None)))
    p_given = scores_lib.label_posterior(*scores_lib.early_probabilities(orig),
                                         jnp.asarray(labels), c)[0]
    aum = np.asarray(r.margin_sum / r.aum_seen)
    out.append(dict(epoch=e + 1, count=int(scores_lib.confident_count(orig, labels, c)[0]),
                    posterior=float(jnp.nansum(1 - p_given)),
                    aum99=int((aum[:n] < np.percentile(aum[n:], PERCENTILE)).sum()),
                    copies_accuracy=float(jnp.mean(copy.correct)),
                    copies_probability=float(jnp.mean(jnp.exp(-copy.loss)))))
  return pd.DataFrame(out)


def closes_after(df: pd.DataFrame, budget: int) -> tuple[int, bool]:
  """The epoch today's rule closes the window after (the budget's last if it never does),
  and whether it closed."""
  d = df[df["epoch"] <= budget]
  hit = d[(d["epoch"] >= EARLY.min_epochs) & (
      (d["copies_accuracy"] >= EARLY.copies_accuracy)
      | (d["copies_probability"] >= EARLY.copies_probability))]
  return (int(hit["epoch"].iloc[0]), True) if len(hit) else (int(d["epoch"].iloc[-1]), False)


def soft_interp(df: pd.DataFrame, budget: int) -> float:
  d = df[df["epoch"] <= budget]
  v, count = d["copies_probability"].to_numpy(), d["count"].to_numpy(float)
  above = np.flatnonzero(v >= SOFT)
  if not len(above):
    return float(count[-1])
  i = above[0]
  if i == 0:
    return float(count[0])
  f = (SOFT - v[i - 1]) / (v[i] - v[i - 1])
  return float(count[i - 1] + f * (count[i] - count[i - 1]))


def _train_seconds(path: str, epochs: int) -> float | None:
  """Training seconds for `epochs` epochs, from the probe's log beside the dump."""
  try:
    text = open(path.rstrip("/") + ".log").read()
  except OSError:
    return None
  found = dict(re.findall(r"epoch (\d+): test [0-9.]+ \((\d+) s\)", text))
  return float(found[str(epochs)]) if str(epochs) in found else None


def case_rows(path: str, budgets: list[int]) -> list[dict]:
  meta, logits = dumps.load(path)
  wrong, n = int(meta["is_noisy"].sum()), len(meta["labels"])
  df, name = curve(meta, logits), os.path.basename(path.rstrip("/"))
  last = int(df["epoch"].iloc[-1])
  out = []
  for budget in budgets:
    at, closed = closes_after(df, budget)
    if budget > last and not closed:
      continue  # the dump is shorter than the budget and the window was still open
    estimate = int(df.set_index("epoch")["count"][at])
    history = df.assign(early=df["epoch"] <= at, estimated_wrong_labels=df["count"])
    low, high = protocol.count_interval(history[history["epoch"] <= at], 1)
    posterior = float(df.set_index("epoch")["posterior"][at])
    aum99 = float(df.set_index("epoch")["aum99"][at])
    out.append(dict(case=name, examples=n, wrong=wrong, epochs=budget, closes_after=at,
                    closed=closed, estimate=estimate, error=estimate / wrong - 1,
                    interval=f"{low}-{high}", covers=bool(low <= wrong <= high),
                    half_width=(high - low) / 2 / max(estimate, 1),
                    soft_interp=soft_interp(df, budget) / wrong - 1,
                    posterior=posterior / wrong - 1, aum99=aum99 / wrong - 1,
                    train_seconds=_train_seconds(path, min(budget, last))))
  return out


def main(argv):
  del argv
  budgets = [int(b) for b in _BUDGETS.value]
  paths = sorted(p for p in glob.glob(os.path.join(_DUMPS.value, "*"))
                 if os.path.exists(os.path.join(p, "logits.npy")))
  df = pd.DataFrame([row for p in paths for row in case_rows(p, budgets)])
  text = tables.markdown_table(df)
  print(text)
  if _OUT.value:
    os.makedirs(_OUT.value, exist_ok=True)
    df.to_csv(os.path.join(_OUT.value, "count.csv"), index=False)
    with open(os.path.join(_OUT.value, "count.md"), "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  flags.mark_flags_as_required(["dumps"])
  app.run(main)
