"""A self-contained HTML report of a finished run, built from its workdir.

  python -m jaxclean.report --workdir=runs/default [--top=60]

writes `runs/default/report.html`: one file that opens offline (plots and
thumbnails are inline PNG data URIs, CSS is inline, nothing is fetched) with

  - a summary of the run and, when the wrong labels are known, the detection
    quality of every score;
  - a gallery of the `top` most suspicious examples by the run's recommended
    score: thumbnail, given and suggested class (with the suggestion's support),
    score and rank (a table for vector data, or when the images cannot be loaded);
  - the data map (variability vs confidence, Swayamdipta et al. 2020);
  - the AUM histogram with the threshold samples' AUMs and the threshold;
  - per given class, how many examples are flagged and what labels are suggested for them;
  - the training curves;
  - with decisions (`jaxclean.decide`), the review mode (`jaxclean.review`).

Inputs (see README, Outputs): summary.json and scores.csv are required;
detection.json, flagged.csv, threshold_samples.csv, history.csv and
config.json are used when present. `python -m jaxclean.main` builds it at the
end of every run.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import sys

import numpy as np
import pandas as pd

from jaxclean import history as history_lib
from jaxclean import outputs
from jaxclean import review as review_lib
from jaxclean.errors import InputError

DEFAULT_TOP = 60
THUMB_PX = 80  # thumbnails are upscaled (nearest neighbour) to about this size
MIN_IMAGE_PIXELS = 16  # H * W below this is vector data: a table, not thumbnails
SCORE_COLUMNS = ("forgetting", "aum", "margin", "el2n", "confidence", "variability", "loss",
                 "early_el2n", "early_confidence", "early_rival", "combined", "suggested_support")
MAX_PLOT_POINTS = 20000  # data map points drawn per group (random subsample beyond)
# Colours shared by the plots and the page.
FLAGGED_COLOUR = "#d1495b"
CLEAN_COLOUR = "#8d99ae"
WRONG_COLOUR = "#edae49"
THRESHOLD_COLOUR = "#00798c"
TRAIN_COLOUR = "#30638e"
TEST_COLOUR = "#d1495b"


class ReportError(InputError):
  """The workdir cannot make a report (missing directory or required file)."""


def build(workdir: str, top: int = DEFAULT_TOP) -> str:
  """Writes `workdir/report.html` atomically and returns its path."""
  if top < 0:
    raise ValueError(f"top must be >= 0, got {top}")
  run = _read_run(workdir)
  page = _render(run, top)
  path = os.path.join(workdir, "report.html")
  outputs.write_text(path, page)
  return path


# ---------------------------------------------------------------- reading


def _read_run(workdir: str) -> dict:
  """Everything the report needs from the workdir; raises ReportError when unusable."""
  if not os.path.isdir(workdir):
    raise ReportError(f"workdir {workdir} does not exist or is not a directory")
  for required in ("summary.json", "scores.csv"):
    if not os.path.isfile(os.path.join(workdir, required)):
      raise ReportError(f"{os.path.join(workdir, required)} is missing; is {workdir} a "
                        f"finished run's workdir?")
  summary = _read_json(workdir, "summary.json")
  if not isinstance(summary, dict):
    raise ReportError(f"{os.path.join(workdir, 'summary.json')} is not a JSON object")
  scores = _read_csv(workdir, "scores.csv")
  missing = {"index", "given_label"} - set(scores.columns)
  if missing:
    raise ReportError(f"{os.path.join(workdir, 'scores.csv')} lacks columns {sorted(missing)}")
  if len(scores) == 0:
    raise ReportError(f"{os.path.join(workdir, 'scores.csv')} has no rows")
  opt = lambda name, reader: (reader(workdir, name)
                              if os.path.isfile(os.path.join(workdir, name)) else None)
  return dict(workdir=workdir, summary=summary, scores=scores,
              detection=opt("detection.json", _read_json),
              flagged=opt("flagged.csv", _read_csv),
              threshold_samples=opt("threshold_samples.csv", _read_csv),
              history=opt("history.csv", lambda w, n: history_lib.one_based(_read_csv(w, n))),
              config=opt("config.json", _read_json))


def _read_json(workdir: str, name: str):
  path = os.path.join(workdir, name)
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise ReportError(f"cannot read {path}: {e}") from None


def _read_csv(workdir: str, name: str) -> pd.DataFrame:
  path = os.path.join(workdir, name)
  try:
    return pd.read_csv(path)
  except (OSError, ValueError) as e:
    raise ReportError(f"cannot read {path}: {e}") from None


# ---------------------------------------------------------------- analysis


def _suspicion(name: str, values: np.ndarray) -> np.ndarray:
  """Higher = more suspicious; scores the library does not know (`combined`) are high-suspicious."""
  from jaxclean.scores import SUSPICIOUS_HIGH
  values = np.asarray(values, np.float64)
  return values if SUSPICIOUS_HIGH.get(name, True) else -values


def _ranking_score(summary: dict, scores: pd.DataFrame) -> str | None:
  """The recommended score if scores.csv has it, else the first score column it has."""
  wanted = summary.get("recommended_score") or "combined"
  if wanted in scores.columns:
    return wanted
  return next((s for s in SCORE_COLUMNS if s in scores.columns), None)


def _order(scores: pd.DataFrame, score: str | None) -> np.ndarray:
  """Row positions, most suspicious first; NaN scores last, ties by index."""
  if score is None:
    return np.arange(len(scores))
  s = _suspicion(score, scores[score].to_numpy())
  s = np.where(np.isfinite(s), s, -np.inf)
  return np.lexsort((scores["index"].to_numpy(), -s))


def _as_int(x):
  if x is None:
    return None
  try:
    if isinstance(x, float) and not math.isfinite(x):
      return None
    return int(x)
  except (TypeError, ValueError):
    return None


def _quality(detection) -> dict:
  """{score: {auroc, ap, precision_at_k, recall_at_k, k}} from detection.json, or {}."""
  if not isinstance(detection, dict):
    return {}
  quality = detection.get("quality")
  if quality is None:  # an older detection.json: the score table alone
    quality = {k: v for k, v in detection.items() if isinstance(v, dict) and "auroc" in v}
  return {k: v for k, v in (quality or {}).items() if isinstance(v, dict)}


def interval_words(summary: dict) -> str:
  """The count's interval (`protocol.count_interval`) in plain words, as the report's
  headline and the run's last lines say it; '' without one."""
  interval = summary.get("estimated_wrong_labels_interval")
  if not isinstance(interval, list) or len(interval) != 2:
    return ""
  words = f"; likely {interval[0]:,} to {interval[1]:,}"
  if summary.get("early_window_closed", True):
    return words + ", the count read one epoch earlier or later"
  return (words + ", from its change over the last epoch: training ended before the model "
          "began to learn wrong labels, which is when the count is read; more epochs "
          "(num_epochs) make it surer")


def _flags(run: dict, order: np.ndarray, estimated: int | None) -> tuple[np.ndarray | None, str]:
  """Per-row flagged mask (scores.csv order) and where it came from."""
  scores, flagged = run["scores"], run["flagged"]
  if flagged is not None and {"index", "flagged"} <= set(flagged.columns):
    by_index = dict(zip(flagged["index"].to_numpy(), _bool(flagged["flagged"])))
    mask = np.array([by_index.get(i, False) for i in scores["index"].to_numpy()], bool)
    return mask, "flagged (flagged.csv)"
  if estimated is not None:
    mask = np.zeros(len(scores), bool)
    mask[order[:max(0, min(estimated, len(scores)))]] = True
    return mask, (f"the top {estimated:,} (the estimated number of wrong labels) "
                  f"by the ranking score")
  return None, ""


def _suggestion(scores: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
  """Each row's suggested label and its support (scores.csv's suggestion; in a run that
  recorded nothing, the final model's prediction; in older workdirs, predicted_label)."""
  if "suggested_label" in scores:
    return scores["suggested_label"].to_numpy(), scores["suggested_support"].to_numpy()
  for column in ("final_prediction", "predicted_label"):
    if column in scores:
      return scores[column].to_numpy(), None
  return scores["given_label"].to_numpy(), None


def _bool(column: pd.Series) -> np.ndarray:
  if column.dtype == bool:
    return column.to_numpy()
  return column.astype(str).str.strip().str.lower().isin(("true", "1", "yes")).to_numpy()


def _class_name(names: list[str], i) -> str:
  i = _as_int(i)
  if i is None:
    return "?"
  return names[i] if 0 <= i < len(names) else str(i)


def _fmt(x, digits: int = 4) -> str:
  if x is None:
    return "–"
  try:
    x = float(x)
  except (TypeError, ValueError):
    return str(x)
  if not math.isfinite(x):
    return "–"
  if x == int(x) and abs(x) < 1e6:
    return str(int(x))
  return f"{x:.{digits}g}"


def _percent(x) -> str:
  try:
    x = float(x)
  except (TypeError, ValueError):
    return "–"
  return f"{100 * x:.1f} %" if math.isfinite(x) else "–"


# ---------------------------------------------------------------- thumbnails


def _image_shape(summary: dict):
  shape = summary.get("image_shape")
  if not shape or len(shape) != 3:
    return None
  h, w, _ = (int(s) for s in shape)
  return shape if h * w >= MIN_IMAGE_PIXELS else None


def _load_images(run: dict, n: int):
  """The training images (N, H, W, C), or (None, why not)."""
  config = run["config"]
  if not isinstance(config, dict) or not isinstance(config.get("data"), dict):
    return None, "config.json (with a data section) is missing, so there are no thumbnails"
  try:
    import ml_collections
    from jaxclean import data
    ds = data.load(ml_collections.ConfigDict(config["data"]))
    images = ds.train.images
  except Exception as e:  # any failure to load (moved, deleted, no network): no thumbnails
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return None, f"the data set could not be loaded ({type(e).__name__}: {msg[:200]}), " \
                 f"so there are no thumbnails"
  if len(images) != n:
    return None, (f"the data set now has {len(images):,} training examples, but the run "
                  f"scored {n:,}, so there are no thumbnails")
  if images.ndim != 4 or images.shape[1] * images.shape[2] < MIN_IMAGE_PIXELS:
    return None, None
  return images, None


def _display_range(images: np.ndarray) -> tuple[float, float]:
  """One pixel range for the whole data set, so thumbnails compare (digits are 0..16);
  that of 10k rows (`arrays.sample_index`) for images on disk."""
  from jaxclean.data import arrays
  if not arrays.in_memory(images):
    images = images[arrays.sample_index(len(images))]
  if images.dtype == np.uint8:
    hi = float(images.max())
    return 0.0, (hi if hi > 0 else 255.0)
  lo, hi = float(images.min()), float(images.max())
  return lo, (hi if hi > lo else lo + 1.0)


def _thumbnail(image: np.ndarray, lo: float, hi: float, upscale: bool = True) -> str:
  """PNG data URI of one (H, W, C) image, upscaled by an integer factor (nearest) unless
  `upscale` is False (the review rows: the browser scales them), larger ones shrunk."""
  from PIL import Image
  x = (image.astype(np.float32) - lo) / (hi - lo)
  x = np.clip(np.round(x * 255), 0, 255).astype(np.uint8)
  x = x[..., :3] if x.shape[-1] >= 3 else x[..., 0]
  im = Image.fromarray(x)
  h, w = x.shape[:2]
  if max(h, w) < THUMB_PX:
    f = max(1, round(THUMB_PX / max(h, w))) if upscale else 1
    im = im.resize((w * f, h * f), Image.NEAREST)
  else:
    s = THUMB_PX / max(h, w)
    im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS)
  buf = io.BytesIO()
  im.save(buf, format="PNG", optimize=True)
  return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# ---------------------------------------------------------------- plots


def _figure(width: float, height: float, ncols: int = 1):
  from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend
  fig = Figure(figsize=(width, height), layout="constrained")
  axes = fig.subplots(1, ncols, squeeze=False)[0]
  for ax in axes:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
  return fig, axes


def _png(fig) -> str:
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=110, facecolor="white")
  return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _subsample(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  return x if len(x) <= MAX_PLOT_POINTS else np.sort(rng.choice(x, MAX_PLOT_POINTS, replace=False))


def _data_map(scores: pd.DataFrame, flagged, is_noisy) -> str | None:
  if not {"variability", "confidence"} <= set(scores.columns):
    return None
  x = scores["variability"].to_numpy(np.float64)
  y = scores["confidence"].to_numpy(np.float64)
  ok = np.isfinite(x) & np.isfinite(y)
  if not ok.any():
    return None
  rng = np.random.default_rng(0)
  panels = [("Flagged by the detector", flagged, "flagged", "not flagged", FLAGGED_COLOUR)]
  if is_noisy is not None:
    panels.append(("Known wrong labels", is_noisy, "wrong label", "correct label", WRONG_COLOUR))
  fig, axes = _figure(5.2 * len(panels), 4.4, len(panels))
  for ax, (title, mask, on, off, colour) in zip(axes, panels):
    mask = np.zeros(len(x), bool) if mask is None else mask
    rest, hit = np.flatnonzero(ok & ~mask), np.flatnonzero(ok & mask)
    size = 10 if len(x) < 5000 else 4
    r = _subsample(rest, rng)
    ax.scatter(x[r], y[r], s=size, c=CLEAN_COLOUR, alpha=0.45, linewidths=0,
               label=f"{off} ({len(rest):,})", rasterized=True)
    h = _subsample(hit, rng)
    ax.scatter(x[h], y[h], s=size + 4, c=colour, alpha=0.8, linewidths=0,
               label=f"{on} ({len(hit):,})", rasterized=True)
    ax.set(xlabel="variability (std of the given label's probability)",
           ylabel="confidence (mean probability of the given label)", title=title,
           ylim=(-0.03, 1.03), xlim=(0, max(0.05, float(np.nanmax(x[ok])) * 1.05)))
    ax.title.set_fontsize(11)
    for tx, ty, label, ha in ((0.02, 0.97, "easy to learn", "left"),
                              (0.98, 0.5, "ambiguous", "right"),
                              (0.02, 0.03, "hard to learn", "left")):
      ax.text(tx, ty, label, transform=ax.transAxes, ha=ha, va="center", fontsize=9,
              color="#4b5563", style="italic", zorder=5,
              bbox=dict(boxstyle="round,pad=0.25", facecolor="white", edgecolor="none",
                        alpha=0.8))
    ax.legend(loc="upper right", fontsize=8, frameon=True, markerscale=1.5)
  return _png(fig)


def _aum_histogram(run: dict, is_noisy) -> tuple[str | None, str]:
  """AUM histogram of the originals, the threshold samples and the threshold, with a caption."""
  flagged, samples, scores = run["flagged"], run["threshold_samples"], run["scores"]
  if flagged is not None and {"index", "aum"} <= set(flagged.columns):
    # The AUMs the threshold was applied to (the threshold runs'), in scores.csv's order.
    by_index = pd.Series(flagged["aum"].to_numpy(np.float64), index=flagged["index"].to_numpy())
    by_index = by_index[~by_index.index.duplicated()]
    aum = by_index.reindex(scores["index"].to_numpy()).to_numpy(np.float64)
  elif "aum" in scores.columns:
    aum = scores["aum"].to_numpy(np.float64)
  else:
    return None, ""
  finite = np.isfinite(aum)
  if not finite.any():
    return None, ""
  thresholds = (flagged["threshold"].to_numpy(np.float64)
                if flagged is not None and "threshold" in flagged.columns else np.array([]))
  thresholds = thresholds[np.isfinite(thresholds)]
  fake = (samples["aum"].to_numpy(np.float64)
          if samples is not None and "aum" in samples.columns else np.array([]))
  fake = fake[np.isfinite(fake)]
  everything = np.concatenate([aum[finite], fake])
  bins = np.linspace(everything.min(), everything.max(), 51)
  if bins[0] == bins[-1]:
    bins = np.linspace(bins[0] - 1, bins[0] + 1, 51)
  fig, axes = _figure(10, 3.8)
  ax = axes[0]
  style = dict(bins=bins, density=True, histtype="stepfilled", linewidth=1.2)
  noisy = is_noisy
  if noisy is not None:
    ax.hist(aum[finite & ~noisy], color=CLEAN_COLOUR, alpha=0.45, edgecolor=CLEAN_COLOUR,
            label=f"correct labels ({np.sum(finite & ~noisy):,})", **style)
    ax.hist(aum[finite & noisy], color=WRONG_COLOUR, alpha=0.45, edgecolor=WRONG_COLOUR,
            label=f"known wrong labels ({np.sum(finite & noisy):,})", **style)
  else:
    ax.hist(aum[finite], color=CLEAN_COLOUR, alpha=0.45, edgecolor=CLEAN_COLOUR,
            label=f"training examples ({finite.sum():,})", **style)
  if len(fake):
    ax.hist(fake, bins=bins, density=True, histtype="step", linewidth=2, color=FLAGGED_COLOUR,
            label=f"threshold samples ({len(fake):,}, wrong by construction)")
  if len(thresholds):
    t = float(np.median(thresholds))
    lo, hi = float(thresholds.min()), float(thresholds.max())
    if hi - lo > 1e-9:
      ax.axvspan(lo, hi, color=THRESHOLD_COLOUR, alpha=0.12, linewidth=0)
    ax.axvline(t, color=THRESHOLD_COLOUR, linewidth=2, linestyle="--",
               label=f"threshold {t:.3g}" + (f" (runs: {lo:.3g} to {hi:.3g})" if hi - lo > 1e-9
                                               else ""))
  ax.set(xlabel="AUM (area under the margin; low = suspicious)", ylabel="density")
  ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
  if len(thresholds) or len(fake):
    caption = ("Examples left of the threshold look like the threshold samples, whose labels "
               "are wrong by construction, and are flagged.")
  else:
    caption = "This run has no threshold samples (aum.threshold_samples), so there is no threshold."
  return _png(fig), caption


def _curves(history) -> str | None:
  if history is None or "epoch" not in history.columns or len(history) == 0:
    return None
  from matplotlib.ticker import MaxNLocator
  epoch = history["epoch"].to_numpy(np.float64)
  fig, axes = _figure(10, 3.6, 2)
  drew = False
  for ax, metric, title in ((axes[0], "loss", "Loss"), (axes[1], "accuracy", "Accuracy")):
    for split, colour in (("train", TRAIN_COLOUR), ("test", TEST_COLOUR)):
      col = f"{split}_{metric}"
      if col not in history.columns:
        continue
      y = pd.to_numeric(history[col], errors="coerce").to_numpy(np.float64)
      ok = np.isfinite(y)
      if ok.any():
        ax.plot(epoch[ok], y[ok], marker="o", markersize=3.5, color=colour, linewidth=1.8,
                label=split)
        drew = True
    ax.set(xlabel="epoch", title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.title.set_fontsize(11)
    if ax.lines:
      ax.legend(fontsize=9)
  if not drew:
    return None
  axes[1].set_ylim(top=1.0)
  return _png(fig)


def _count_curve(history, summary: dict) -> str | None:
  """The count had the early window closed after each of its epochs (history.csv's
  `estimated_wrong_labels`), with the run's estimate and its interval as a band."""
  if history is None or not {"epoch", "early", "estimated_wrong_labels"} <= set(history):
    return None
  from matplotlib.ticker import MaxNLocator
  window = history[history["early"].astype(bool)]
  count = pd.to_numeric(window["estimated_wrong_labels"], errors="coerce").to_numpy(np.float64)
  epoch = window["epoch"].to_numpy(np.float64)
  ok = np.isfinite(count)
  ok &= np.cumsum(ok & (count > 0)) > 0  # 0 until the window's first presentation
  if not ok.any():
    return None
  fig, (ax,) = _figure(6, 3.2)
  interval = summary.get("estimated_wrong_labels_interval")
  if isinstance(interval, list) and len(interval) == 2:
    ax.axhspan(*interval, color=THRESHOLD_COLOUR, alpha=0.15, linewidth=0,
               label=f"interval {interval[0]:,}–{interval[1]:,}")
  ax.plot(epoch[ok], count[ok], marker="o", markersize=3.5, color=TRAIN_COLOUR,
          linewidth=1.8, label="had the window closed here")
  estimated = _as_int(summary.get("estimated_wrong_labels"))
  if estimated is not None:
    ax.axhline(estimated, color=FLAGGED_COLOUR, linestyle="--", linewidth=1.2,
               label=f"estimate {estimated:,}")
  ax.set(xlabel="epoch", title="Estimated wrong labels")
  ax.xaxis.set_major_locator(MaxNLocator(integer=True))
  ax.title.set_fontsize(11)
  ax.set_ylim(bottom=0)
  ax.legend(fontsize=9)
  return _png(fig)


# ---------------------------------------------------------------- page


def _render(run: dict, top: int) -> str:
  summary, scores, workdir = run["summary"], run["scores"], run["workdir"]
  n = len(scores)
  num_classes = _as_int(summary.get("num_classes"))
  names = [str(c) for c in (summary.get("class_names") or [])]
  if not names and num_classes:
    names = [str(i) for i in range(num_classes)]
  notes = []

  score = _ranking_score(summary, scores)
  if score is None:
    notes.append("scores.csv has no score column, so the gallery is in index order.")
  elif score != (summary.get("recommended_score") or "combined"):
    notes.append(f"scores.csv lacks the recommended score "
                 f"{summary.get('recommended_score')!r}; suspects are ranked by {score!r}.")
  order = _order(scores, score)
  detection = run["detection"] if isinstance(run["detection"], dict) else {}
  estimated = _as_int(summary.get("estimated_wrong_labels"))
  if estimated is None:
    estimated = _as_int(detection.get("estimated_wrong_labels"))
  is_noisy = _bool(scores["is_noisy"]) if "is_noisy" in scores.columns else None
  flagged, flag_source = _flags(run, order, estimated)
  num_flagged = _as_int(summary.get("flagged"))
  if num_flagged is None:
    num_flagged = _as_int(detection.get("flagged"))
  if num_flagged is None and flagged is not None:
    num_flagged = int(flagged.sum())

  # Gallery.
  shown = order[:top]
  shape = _image_shape(summary)
  images, lo, hi = None, 0.0, 1.0
  if shape is not None and len(shown):
    images, why = _load_images(run, n)
    if why:
      notes.append(why + ".")
    if images is not None:
      lo, hi = _display_range(images)
  others = [c for c in SCORE_COLUMNS if c in scores.columns]
  suggested_all, support_all = _suggestion(scores)
  suspects = []
  rows = scores.iloc[shown]
  for rank, (pos, row) in enumerate(zip(shown, rows.itertuples(index=False)), 1):
    r = row._asdict()
    index = _as_int(r["index"])
    thumb = None
    if images is not None and index is not None and 0 <= index < len(images):
      thumb = _thumbnail(images[index], lo, hi)
    given, suggested = _as_int(r["given_label"]), _as_int(suggested_all[pos])
    suspects.append(dict(
        rank=rank, index=index, thumb=thumb,
        given=_class_name(names, given), suggested=_class_name(names, suggested),
        support=None if support_all is None else _percent(support_all[pos]),
        agree=given == suggested,
        score=_fmt(r[score]) if score else "–",
        wrong=None if is_noisy is None else bool(is_noisy[pos]),
        flagged=None if flagged is None else bool(flagged[pos]),
        title=", ".join(f"{c} {_fmt(r[c])}" for c in others)))

  # Per-class table of the flagged examples (or of the gallery when nothing is flagged).
  group = flagged if flagged is not None else np.isin(np.arange(n), shown)
  group_name = "flagged" if flagged is not None else f"in the top {len(shown)}"
  given_all = scores["given_label"].to_numpy()
  classes = sorted(set(np.unique(given_all).tolist()) | set(range(len(names))))
  per_class = []
  for c in classes:
    in_class = given_all == c
    mask = in_class & group
    to = pd.Series(suggested_all[mask]).value_counts()
    to = sorted(to.items(), key=lambda kv: (kv[0] == c, -kv[1], kv[0]))  # the class itself last
    per_class.append(dict(
        name=_class_name(names, c), total=int(in_class.sum()), count=int(mask.sum()),
        share=_percent(mask.sum() / in_class.sum()) if in_class.any() else "–",
        wrong=None if is_noisy is None else int((in_class & is_noisy).sum()),
        caught=None if is_noisy is None else int((mask & is_noisy).sum()),
        to=[dict(name=_class_name(names, p), count=int(k), same=p == c) for p, k in to]))
  max_count = max([p["count"] for p in per_class] + [1])

  # Detection quality.
  quality = []
  q = _quality(detection)
  metrics = (("auroc", "AUROC"), ("ap", "AP"), ("precision_at_k", "P@k"),
             ("recall_at_k", "R@k"))
  shown3 = lambda x: None if _finite(x) is None else round(_finite(x), 3)  # as displayed
  best = {m: max((shown3(v.get(m)) for v in q.values() if shown3(v.get(m)) is not None),
                 default=None) for m, _ in metrics}
  for name in sorted(q, key=lambda s: (-(_finite(q[s].get("auroc")) or -1), s)):
    v = q[name]
    quality.append(dict(
        name=name, recommended=name == score, k=_fmt(v.get("k")),
        cells=[dict(text=f"{_finite(v.get(m)):.3f}" if _finite(v.get(m)) is not None else "–",
                    best=shown3(v.get(m)) is not None and shown3(v.get(m)) == best[m])
               for m, _ in metrics]))

  aum_png, aum_caption = _aum_histogram(run, is_noisy)
  data_map = _data_map(scores, flagged, is_noisy)
  curves = _curves(run["history"])
  count_curve = _count_curve(run["history"], summary)
  if run["history"] is None:
    notes.append("history.csv is missing, so there are no training curves.")

  test_acc = summary.get("test_accuracy")
  facts = [
      ("Data set", summary.get("data", "–")),
      ("Split ranked", f"{summary.get('train_split', '–')} (evaluated on "
                       f"{summary.get('eval_split', '–')})"),
      ("Examples", f"{n:,}"),
      ("Classes", str(num_classes if num_classes is not None else len(names))),
      ("Model", f"{summary.get('model', '–')}" + (
          f" × {summary['ensemble']} (ensemble)" if (_as_int(summary.get("ensemble")) or 1) > 1
          else "")),
      ("Epochs", _fmt(summary.get("epochs"))),
      ("Devices", _fmt(summary.get("devices"))),
      ("Ranking score", score or "–"),
  ]
  headline = [
      dict(label="estimated wrong labels",
           value=f"{estimated:,}" if estimated is not None else "–",
           sub=_percent(estimated / n) + " of the examples" + interval_words(summary)
           if estimated is not None else "no estimate in this run"),
      dict(label="flagged", value=f"{num_flagged:,}" if num_flagged is not None else "–",
           sub=(flag_source or "nothing flagged in this run") + (
               f"; the plots and tables mark {int(flagged.sum()):,}"
               if flagged is not None and num_flagged is not None
               and int(flagged.sum()) != num_flagged else "")),
      dict(label="test accuracy",
           value=_percent(test_acc) if test_acc is not None else "–",
           sub=f"{summary.get('model', '')}, {_fmt(summary.get('epochs'))} epochs"),
  ]
  if is_noisy is not None:
    headline.append(dict(label="known wrong labels", value=f"{int(is_noisy.sum()):,}",
                         sub=_percent(is_noisy.mean()) + " of the examples"))

  import jinja2
  env = jinja2.Environment(
      loader=jinja2.FileSystemLoader(os.path.join(os.path.dirname(__file__), "templates")),
      autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
  return env.get_template("report.html.j2").render(
      title=f"jaxclean report: {summary.get('data', os.path.basename(os.path.abspath(workdir)))}",
      workdir=os.path.basename(os.path.normpath(os.path.abspath(workdir))),
      command=f"python -m jaxclean.report --workdir={workdir} --top={top}",  # remakes it
      facts=facts, headline=headline, notes=notes, quality=quality,
      metric_names=[label for _, label in metrics], score=score,
      suspects=suspects, top=top, thumbnails=images is not None,
      known=is_noisy is not None, has_flags=flagged is not None,
      per_class=per_class, group_name=group_name, max_count=max_count,
      data_map=data_map, aum_png=aum_png, aum_caption=aum_caption, curves=curves,
      count_curve=count_curve,
      review=review_lib.items(workdir, scores, names, None if images is None else
                              lambda i: _thumbnail(images[i], lo, hi, upscale=False),
                              summary.get("early_window_closed") is not False),
      colours=dict(flagged=FLAGGED_COLOUR, clean=CLEAN_COLOUR, wrong=WRONG_COLOUR))


def _finite(x):
  try:
    x = float(x)
  except (TypeError, ValueError):
    return None
  return x if math.isfinite(x) else None


# ---------------------------------------------------------------- command line


def main(argv) -> None:
  from absl import flags
  if len(argv) > 1:
    print(f"report: unexpected arguments {argv[1:]}", file=sys.stderr)
    sys.exit(2)
  workdir, top = flags.FLAGS.workdir, flags.FLAGS.top
  if not workdir:
    print("report: --workdir is required", file=sys.stderr)
    sys.exit(2)
  if top < 0:
    print(f"report: --top must be >= 0, got {top}", file=sys.stderr)
    sys.exit(2)
  try:
    path = build(workdir, top)
  except ReportError as e:
    print(f"report: {e}", file=sys.stderr)
    sys.exit(2)
  print(path)


if __name__ == "__main__":
  from absl import app, flags
  flags.DEFINE_string("workdir", None, "A finished run's workdir; report.html is written there.")
  flags.DEFINE_integer("top", DEFAULT_TOP, "How many suspects the gallery shows.")
  app.run(main)
