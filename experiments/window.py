"""The early window's choices, measured on `experiments.probe` dumps with the real records code.

Each dump holds every presentation's logits of a default run (originals and threshold
copies). This replays them through `records.update` epoch by epoch, with the early window
closed as `train.fit` closes it (the copies' training accuracy reaching a threshold), and
reads the answers a run would give at 15 and 30 epochs: the count's error, the AUROC of
`combined` against the full-run version (the score before the early window), and how often
the suggestion is the true label (all wrong labels; flagged wrong labels):
  python -m experiments.window --dumps=runs/probe --thresholds=0.07,0.085,0.1 \
      --out=experiments/results/defaults/window.md
With --curve, per dump the count had the window closed after each epoch, where the default
rule closes it, and `protocol.count_interval` there (results/defaults/count_curve.md):
  python -m experiments.window --dumps=runs/probe --curve --epochs=15 \
      --out=experiments/results/defaults/count_curve.md
"""

import glob
import itertools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from absl import app, flags

from experiments import dumps, tables
from jaxclean import protocol, quality
from jaxclean import scores as scores_lib

_DUMPS = flags.DEFINE_string("dumps", None, "Directory of probe dumps (one folder per case).")
_THRESHOLDS = flags.DEFINE_list("thresholds", ["0.07", "0.085", "0.1"], "copies_accuracy values.")
_SOFT = flags.DEFINE_list("soft", ["2"], "copies_probability values (2 = never).")
_EPOCHS = flags.DEFINE_list("epochs", ["15", "30"], "Run lengths to read.")
_OUT = flags.DEFINE_string("out", None, "Markdown file to write.")
_CURVE = flags.DEFINE_bool("curve", False, "Instead: the count had the window closed after "
                           "each epoch, and count_interval's range at the default close.")


def replay(logits, labels, copies, tau, epochs, skip=1, min_epochs=2, soft=2.0):
  """Records of originals and copies after `epochs` epochs, and the window's length: it
  closes when the copies' accuracy reaches `tau` or their mean probability `soft`."""
  n = len(labels)
  r, step = dumps.replayer(labels, copies, logits.shape[-1])
  early, window = True, epochs
  for e in range(epochs):
    r = step(r, logits[e], e >= skip, early and e >= skip)
    if early and e + 1 >= min_epochs and (float(jnp.mean(r.correct[n:])) >= tau
                                          or float(jnp.mean(jnp.exp(-r.loss[n:]))) >= soft):
      early, window = False, e + 1
  return jax.tree.map(lambda a: a[:n], r), window


def case_rows(path, taus, softs, epochs):
  meta, logits = dumps.load(path)
  labels, noisy, truth = meta["labels"], meta["is_noisy"], meta["clean"]
  n, c = len(labels), logits.shape[-1] - 1
  out = []
  for e in epochs:
    if e > len(logits):
      continue
    full, _ = replay(logits, labels, len(meta["sources"]), 2.0, e)  # never closes: today's
    before = quality.quality(np.asarray(scores_lib.combined(scores_lib.el2n(full), labels)),
                             noisy)["auroc"]
    for tau, soft in itertools.product(taus, softs):
      r, window = replay(logits, labels, len(meta["sources"]), tau, e, soft=soft)
      values = scores_lib.all_scores(r)
      suggested = np.asarray(scores_lib.suggestion(r)[0])
      estimate = int(scores_lib.confident_count(r, labels, c)[0])
      combined = np.asarray(scores_lib.combined(values["early_el2n"], labels))
      flagged = np.zeros(n, bool)
      flagged[np.argsort(-combined, kind="stable")[:estimate]] = True
      right = quality.suggestions(suggested, suggested, truth, noisy, flagged)
      out.append(dict(case=os.path.basename(path), epochs=e, copies_accuracy=tau,
                      copies_probability=soft, window=window,
                      wrong=int(noisy.sum()), estimate=estimate,
                      error=(estimate - noisy.sum()) / noisy.sum(),
                      auroc_before=before, auroc=quality.quality(combined, noisy)["auroc"],
                      suggested_right=right["suggested_right"],
                      suggested_right_flagged=right["suggested_right_flagged"]))
  return out


def curve_row(path, tau=0.085, soft=0.15, epochs=15):
  """The count's error had the window closed after each epoch (1-based: `e1`, ...), the
  epoch the rule (`tau`, `soft`) closes it after, and `protocol.count_interval` there."""
  meta, logits = dumps.load(path)
  labels, wrong, copies = meta["labels"], int(meta["is_noisy"].sum()), len(meta["sources"])
  c = logits.shape[-1] - 1
  counts = [int(scores_lib.confident_count(replay(logits, labels, copies, 2.0, e)[0],
                                           labels, c)[0]) for e in range(1, epochs + 1)]
  _, window = replay(logits, labels, copies, tau, epochs, soft=soft)
  history = pd.DataFrame(dict(epoch=range(1, epochs + 1), early=np.arange(epochs) < window,
                              estimated_wrong_labels=counts))
  low, high = protocol.count_interval(history, 1)
  return dict(case=os.path.basename(path), wrong=wrong, closes_after=window,
              error=(counts[window - 1] - wrong) / wrong, interval=f"{low}-{high}",
              covers=low <= wrong <= high,
              **{f"e{e + 1}": f"{(n - wrong) / wrong:+.0%}" for e, n in enumerate(counts)})


def main(argv):
  del argv
  taus = [float(t) for t in _THRESHOLDS.value]
  softs = [float(t) for t in _SOFT.value]
  epochs = [int(e) for e in _EPOCHS.value]
  paths = sorted(p for p in glob.glob(os.path.join(_DUMPS.value, "*"))
                 if os.path.exists(os.path.join(p, "logits.npy")))
  df = pd.DataFrame([curve_row(p, epochs=max(epochs)) for p in paths] if _CURVE.value else
                    [row for p in paths for row in case_rows(p, taus, softs, epochs)])
  text = tables.markdown_table(df)
  print(text)
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  flags.mark_flags_as_required(["dumps"])
  app.run(main)
