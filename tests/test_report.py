"""jaxclean.report on hand-made workdirs (the files a finished run leaves, see README)."""

import html.parser
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("jinja2")

from jaxclean import report  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANIMALS = ("cat", "dog", "horse", "sheep", "frog")
GALLERY_RGB = (0xEA, 0xF1, 0xFB)  # #gallery's background in the template


def make_workdir(workdir, labels, class_names, data_config=None, image_shape=None,
                 noise_rate=0.3, known=True, threshold_samples=True, seed=0, data="toy",
                 model="mlp", epochs=8):
  """Writes a finished run's files for `labels` (the true labels), with synthetic dynamics.

  A `noise_rate` share of the labels is flipped; wrong labels get low confidence
  and AUM, high loss and forgetting, as a real run gives them.
  """
  rng = np.random.default_rng(seed)
  n, c = len(labels), len(class_names)
  os.makedirs(workdir, exist_ok=True)
  noisy = rng.random(n) < noise_rate
  given = np.where(noisy, (labels + rng.integers(1, c, n)) % c, labels)
  # Mostly the model predicts the true label; a few clean ones are missed.
  missed = ~noisy & (rng.random(n) < 0.05)
  # The suggestion is mostly the true label of a wrong one; never the given label.
  suggested = np.where(noisy & (rng.random(n) < 0.85), labels, (given + rng.integers(1, c, n)) % c)
  support = rng.uniform(0.2, 1.0, n).round(2)
  hard = noisy.astype(np.float64) * rng.uniform(0.6, 1.0, n) + missed * 0.5
  confidence = np.clip(rng.beta(8, 1.5, n) * (1 - hard) + rng.beta(1.5, 8, n) * hard, 0, 1)
  variability = np.clip(np.sqrt(confidence * (1 - confidence)) * rng.uniform(0.3, 0.9, n), 0, 0.5)
  aum = rng.normal(3.0, 1.2, n) * (1 - hard) + rng.normal(-1.5, 1.0, n) * hard
  margin = aum + rng.normal(0, 0.8, n)
  el2n = np.clip(1.3 * (1 - confidence) + rng.normal(0, 0.05, n), 0, 1.414)
  loss = -np.log(np.clip(confidence * rng.uniform(0.7, 1.1, n), 1e-4, 1))
  forgetting = rng.poisson(0.3 + 3 * hard)
  ranks = [pd.Series(v).rank(pct=True).to_numpy() for v in (-aum, loss, el2n, -confidence)]
  combined = np.mean(ranks, 0)
  scores = pd.DataFrame(dict(
      index=np.arange(n), given_label=given, suggested_label=suggested,
      suggested_support=support, final_prediction=np.where(missed, suggested, given),
      forgetting=forgetting.astype(np.float64), aum=aum, margin=margin, el2n=el2n,
      confidence=confidence, variability=variability, loss=loss, combined=combined))
  if known:
    scores["is_noisy"] = noisy
  scores.to_csv(os.path.join(workdir, "scores.csv"), index=False)
  estimated = int(round(noisy.sum() * 1.05))
  flagged_count = estimated
  if threshold_samples:
    fake = rng.normal(-1.5, 1.0, n // c)
    threshold = [float(np.percentile(fake, 99)), float(np.percentile(fake, 99)) + 0.15]
    per_example = np.where(rng.random(n) < 0.5, threshold[0], threshold[1])
    flags = aum < per_example
    flagged_count = int(flags.sum())
    pd.DataFrame(dict(index=np.arange(n), flagged=flags, aum=aum, threshold=per_example)).to_csv(
        os.path.join(workdir, "flagged.csv"), index=False)
    pd.DataFrame(dict(aum=fake)).to_csv(os.path.join(workdir, "threshold_samples.csv"),
                                        index=False)
  detection = dict(estimated_wrong_labels=estimated, flagged=flagged_count)
  if known:
    from sklearn import metrics
    from jaxclean import scores as score_lib
    quality = {}
    k = int(noisy.sum())
    for name in ("forgetting", "aum", "margin", "el2n", "confidence", "variability", "loss",
                 "combined"):
      s = scores[name].to_numpy()
      s = s if score_lib.SUSPICIOUS_HIGH.get(name, True) else -s
      top = np.argsort(-s, kind="stable")[:k]
      hits = int(noisy[top].sum())
      quality[name] = dict(auroc=float(metrics.roc_auc_score(noisy, s)),
                           ap=float(metrics.average_precision_score(noisy, s)),
                           precision_at_k=hits / k, recall_at_k=hits / k, k=k)
    detection["quality"] = quality
  with open(os.path.join(workdir, "detection.json"), "w") as f:
    json.dump(detection, f, indent=2)
  epoch = np.arange(epochs)
  train_loss = 2.2 * np.exp(-epoch / 3) + 0.9
  test_loss = np.where(epoch % 2 == 1, 1.8 * np.exp(-epoch / 3) + 0.35, np.nan)
  test_loss[-1] = 1.8 * np.exp(-epoch[-1] / 3) + 0.35
  history = pd.DataFrame(dict(epoch=epoch + 1, train_loss=train_loss,
                              train_accuracy=0.68 - 0.55 * np.exp(-epoch / 2.5),
                              seconds=1.0 + 0 * epoch,
                              test_accuracy=np.where(np.isnan(test_loss), np.nan,
                                                     0.93 - 0.7 * np.exp(-epoch / 2.5)),
                              test_loss=test_loss))
  interval = None
  if threshold_samples:  # the early window's count, as a run with copies logs it
    close = epochs - 2
    # Falling to the estimate at the window's last epoch, constant after it.
    count = np.round(estimated * (1.8 - 0.8 * np.exp(-(close - np.minimum(epoch, close)) / 2)))
    history = history.assign(early=epoch <= close,
                             estimated_wrong_labels=np.where(epoch == 0, 0, count))
    from jaxclean import protocol
    interval = protocol.count_interval(history, 1)
  history.to_csv(os.path.join(workdir, "history.csv"), index=False)
  test_acc = 0.93 - 0.7 * np.exp(-(epochs - 1) / 2.5)
  summary = dict(data=data, train_split="train", eval_split="test", num_examples=n,
                 num_classes=c, class_names=list(class_names), model=model, epochs=epochs,
                 ensemble=1, test_accuracy=float(test_acc), recommended_score="combined",
                 estimated_wrong_labels=estimated, estimated_wrong_labels_interval=interval,
                 flagged=flagged_count,
                 image_shape=None if image_shape is None else list(image_shape), devices=1)
  with open(os.path.join(workdir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  config = dict(seed=seed, data=data_config or dict(name="digits"), model=dict(name=model))
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
  return scores


def image_workdir(tmp_path, n=40, **kw):
  """A workdir whose data are an npz of n 8x8 grayscale images and 5 animal classes."""
  rng = np.random.default_rng(1)
  labels = np.arange(n) % len(ANIMALS)
  x = np.zeros((n, 8, 8, 1), np.uint8)
  for i, y in enumerate(labels):  # one bright stripe per class: visible, distinct thumbnails
    x[i, :, y, 0] = 255
    x[i, y, :, 0] = 180
  x = np.maximum(x, rng.integers(0, 40, x.shape).astype(np.uint8))
  npz = tmp_path / "toy.npz"
  np.savez(npz, x_train=x, y_train=labels, x_test=x[:10], y_test=labels[:10])
  data_config = dict(name=f"npz:{npz}", data_dir="", cache_dir="", train_split="train",
                     eval_split="test", labels_file="", cifar10_labels="clean", train_size=0,
                     eval_size=0)
  workdir = tmp_path / "run"
  scores = make_workdir(str(workdir), labels, ANIMALS, data_config, image_shape=(8, 8, 1), **kw)
  return str(workdir), scores, str(npz)


class Page(html.parser.HTMLParser):
  """Collects every tag with its attributes and the section it is in, and the text per section."""

  def __init__(self):
    super().__init__()
    self.tags, self.text, self.section = [], {}, None

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    if tag == "section":
      self.section = attrs.get("id")
    self.tags.append((tag, attrs, self.section))

  def handle_endtag(self, tag):
    if tag == "section":
      self.section = None

  def handle_data(self, data):
    self.text.setdefault(self.section, []).append(data)

  def section_text(self, name):
    return " ".join(" ".join(self.text.get(name, [])).split())

  def imgs(self, section=None):
    return [a for t, a, s in self.tags if t == "img" and (section is None or s == section)]


def parse(path):
  page = Page()
  with open(path, encoding="utf-8") as f:
    page.feed(f.read())
  return page


def check_offline(page, text):
  for tag, attrs, _ in page.tags:
    for name in ("src", "href", "srcset", "poster", "data"):
      value = (attrs.get(name) or "").strip().lower()
      assert not value.startswith(("http:", "https:", "//")), (tag, name, value[:80])
      if tag == "img" and name == "src":
        assert value.startswith("data:image/png;base64,"), value[:60]
  assert "http://" not in text and "https://" not in text
  assert "@import" not in text and "url(" not in text
  assert not any(t in ("script", "link", "iframe") for t, _, _ in page.tags)


def test_image_report(tmp_path):
  workdir, scores, _ = image_workdir(tmp_path, n=40)
  path = report.build(workdir, top=12)
  assert path == os.path.join(workdir, "report.html")
  assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)
  assert [f for f in os.listdir(workdir) if f.startswith(".")] == []  # no temp file left
  with open(path, encoding="utf-8") as f:
    text = f.read()
  page = parse(path)
  check_offline(page, text)
  gallery = page.imgs("gallery")
  assert len(gallery) == 12
  # Ranked by the recommended score, most suspicious (highest combined) first.
  order = scores.sort_values(["combined", "index"], ascending=[False, True])
  expected = order["index"].tolist()[:12]
  alts = [a["alt"] for a in gallery]
  assert alts == [f"example {i}, given {ANIMALS[g]}, suggested {ANIMALS[p]}"
                  for i, g, p in zip(expected, order["given_label"], order["suggested_label"])]
  words = page.section_text("gallery")
  for _, row in order.head(12).iterrows():
    assert ANIMALS[row.given_label] in words and ANIMALS[row.suggested_label] in words
    assert f"{100 * row.suggested_support:.1f} %" in words  # the suggestion's support
  assert words.count("wrong") >= order.head(12)["is_noisy"].sum()
  # Thumbnails are upscaled 8x8 images.
  import base64
  import io
  from PIL import Image
  thumb = Image.open(io.BytesIO(base64.b64decode(gallery[0]["src"].split(",", 1)[1])))
  assert thumb.size == (80, 80)
  # Plots and tables; with threshold copies, the count per epoch of the early window
  # and the interval it gives, also in the headline.
  for section in ("datamap", "aum"):
    assert len(page.imgs(section)) == 1, section
  assert [a["id"] for a in page.imgs("training")] == ["curves-img", "count-img"]
  low, high = json.load(open(os.path.join(workdir, "summary.json")))[
      "estimated_wrong_labels_interval"]
  assert f"likely {low:,} to {high:,}" in text
  assert f"python -m jaxclean.report --workdir={workdir} --top=12" in text  # the footer
  summary = page.section_text("summary")
  for fact in ("toy", "mlp", "40", "AUROC", "combined"):
    assert fact in summary, fact
  classes = page.section_text("classes")
  assert all(name in classes for name in ANIMALS)
  assert "thumbnails" not in summary  # no note: the data loaded


def test_top_larger_than_n_and_default(tmp_path):
  workdir, _, _ = image_workdir(tmp_path, n=40)
  page = parse(report.build(workdir))
  assert len(page.imgs("gallery")) == 40


def test_missing_data_still_builds(tmp_path):
  workdir, _, npz = image_workdir(tmp_path, n=40, known=False, threshold_samples=False)
  os.remove(npz)
  for name in ("history.csv", "config.json"):
    os.remove(os.path.join(workdir, name))
  page = parse(report.build(workdir, top=5))
  assert page.imgs("gallery") == []
  rows = [a for t, a, s in page.tags if t == "tr" and "suspect" in (a.get("class") or "")]
  assert len(rows) == 5
  assert "no thumbnails" in page.section_text("summary")
  assert len(page.imgs("datamap")) == 1 and page.imgs("training") == []


def test_vector_report(tmp_path):
  workdir = str(tmp_path / "vec")
  labels = np.arange(30) % 3
  names = ("setosa", "versicolor", "virginica")
  scores = make_workdir(workdir, labels, names, data_config=dict(name="npz:/nonexistent.npz"),
                        image_shape=None, threshold_samples=False)
  path = report.build(workdir, top=10)
  with open(path, encoding="utf-8") as f:
    text = f.read()
  page = parse(path)
  check_offline(page, text)
  assert page.imgs("gallery") == []
  rows = [a for t, a, s in page.tags if t == "tr" and "suspect" in (a.get("class") or "")]
  assert len(rows) == 10
  words = page.section_text("gallery")
  top = scores.sort_values(["combined", "index"], ascending=[False, True]).head(10)
  for _, row in top.iterrows():
    assert names[row.given_label] in words and names[row.suggested_label] in words
  assert "no thumbnails" not in page.section_text("summary")  # vector data: not an error
  # Without flagged.csv the top estimated_wrong_labels are flagged.
  for section in ("datamap", "aum", "training"):
    assert len(page.imgs(section)) == 1, section  # no copies: no count per epoch


def test_missing_files(tmp_path):
  with pytest.raises(report.ReportError, match="does not exist"):
    report.build(str(tmp_path / "nope"))
  (tmp_path / "summary.json").write_text("{}")
  with pytest.raises(report.ReportError, match="scores.csv is missing"):
    report.build(str(tmp_path))


def _cli(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "jaxclean.report", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=120)


def test_cli(tmp_path):
  missing = _cli(f"--workdir={tmp_path / 'nope'}")
  assert missing.returncode == 2
  assert len(missing.stderr.strip().splitlines()) == 1, missing.stderr
  assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr
  (tmp_path / "summary.json").write_text("{}")
  no_scores = _cli(f"--workdir={tmp_path}")
  assert no_scores.returncode == 2
  assert len(no_scores.stderr.strip().splitlines()) == 1, no_scores.stderr
  assert "scores.csv" in no_scores.stderr
  workdir, _, _ = image_workdir(tmp_path, n=40)
  made = _cli(f"--workdir={workdir}", "--top=7")
  assert made.returncode == 0, made.stderr
  assert made.stdout.strip().splitlines()[-1] == os.path.join(workdir, "report.html")
  assert len(parse(os.path.join(workdir, "report.html")).imgs("gallery")) == 7
  footer = f"python -m jaxclean.report --workdir={workdir} --top=7"
  assert footer in open(os.path.join(workdir, "report.html")).read()


@pytest.mark.parametrize("closed, words", [
    (True, "; likely 90 to 1,200, the count read one epoch earlier or later"),
    (False, "; likely 90 to 1,200, from its change over the last epoch: training ended"),
    (None, "; likely 90 to 1,200, the count read one epoch earlier or later"),  # older runs
])
def test_interval_words(closed, words):
  summary = dict(estimated_wrong_labels_interval=[90, 1200])
  if closed is not None:
    summary["early_window_closed"] = closed
  assert report.interval_words(summary).startswith(words)
  assert report.interval_words(summary).endswith("(num_epochs) make it surer") == (closed is False)
  assert report.interval_words({}) == ""


def _chromium():
  for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
    found = shutil.which(name)
    if found:
      return found
  return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


def test_browser_renders(tmp_path):
  browser = _chromium()
  if browser is None:
    pytest.skip("chromium not found (apt-get install chromium); cannot render the report")
  workdir, _, _ = image_workdir(tmp_path, n=60)
  path = report.build(workdir, top=60)
  shot = tmp_path / "shot.png"
  cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000",
         f"--screenshot={shot}", "file://" + os.path.abspath(path)]
  done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
  assert shot.exists(), f"no screenshot (rc {done.returncode}): {done.stderr[-2000:]}"
  from PIL import Image
  pixels = np.asarray(Image.open(shot).convert("RGB"))
  assert pixels.shape[:2] == (2000, 1280)
  assert pixels.std() > 20
  assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500
  # The gallery's light-blue panel is drawn, and the cards' dark thumbnails inside it.
  gallery = np.all(np.abs(pixels.astype(int) - GALLERY_RGB) <= 2, axis=-1)
  assert gallery.mean() > 0.03, gallery.mean()
  rows = np.flatnonzero(gallery.mean(1) > 0.02)
  band = pixels[rows.min():rows.max()]
  assert (band.max(-1) < 60).mean() > 0.02  # the thumbnails' near-black pixels
