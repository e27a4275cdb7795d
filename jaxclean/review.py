"""The report's review mode: the examples a decision touches, for a person to decide.

`items` builds what the page needs from scores.csv's decisions (`jaxclean.decide`):
every example not kept automatically, those for review first (most useful first, as
review.csv), then the automatic relabels and drops, each with its thumbnail (the first
`THUMBS`), labels and probabilities. The page (templates/review.html.j2) renders only
the rows in view, keeps a person's decisions in the browser's localStorage under the
run's key (two reports never mix; nothing leaves the machine) and exports them with
the automatic ones as a decisions file that `data.decisions_file` reads back.
"""

from __future__ import annotations

import hashlib
import os
from typing import Callable

import numpy as np
import pandas as pd

from jaxclean import decide

THUMBS = 3000  # thumbnails inlined (the page stays a few MB); rows past them show none
ORDER = ("review", "relabel", "drop")


def run_key(workdir: str, scores: pd.DataFrame) -> str:
  """The run's storage key: its workdir's path and its given labels."""
  h = hashlib.blake2b(os.path.abspath(workdir).encode(), digest_size=8)
  h.update(np.ascontiguousarray(scores["given_label"].to_numpy(), np.int64).data)
  return h.hexdigest()


def items(workdir: str, scores: pd.DataFrame, class_names: list[str],
          thumbnail: Callable[[int], str] | None, window_closed: bool = True) -> dict | None:
  """The review page's data (None without decisions): rows of (index, given, suggested,
  support, P(given right), P(suggestion right), automatic decision, thumbnail or ''), and
  the relabelling margin the run's decisions took (`decide.MARGIN`, or `OPEN_MARGIN` where
  its early window never closed: summary.json's `early_window_closed` is False)."""
  if "decision" not in scores:
    return None
  rows = []
  for decision in ORDER:
    part = scores[scores["decision"] == decision]
    rows.append(part.iloc[np.argsort(part["p_given"].to_numpy(), kind="stable")])
  rows = pd.concat(rows)
  out = []
  for k, r in enumerate(rows.itertuples(index=False)):
    thumb = thumbnail(int(r.index)) if thumbnail is not None and k < THUMBS else ""
    out.append([int(r.index), int(r.given_label), int(r.suggested_label),
                _round(r.suggested_support), _round(r.p_given), _round(r.p_suggested),
                r.decision, thumb or ""])
  return dict(run=run_key(workdir, scores), classes=class_names, items=out,
              thumbs=min(THUMBS, len(out)), window_closed=window_closed,
              margin=decide.MARGIN if window_closed else decide.OPEN_MARGIN,
              closed_margin=decide.MARGIN)


def _round(x) -> float | None:
  return round(float(x), 3) if np.isfinite(x) else None
