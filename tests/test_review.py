"""The report's review mode in a real browser (Debian's chromium and chromium-driver through
selenium): decide by click and key, reload and find the decisions kept, export them, and
have a run read the export back (data.decisions_file)."""

import os
import shutil
import time

import numpy as np
import pandas as pd
import pytest

from jaxclean import protocol, report

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs chromium and chromium-driver (apt-get install "
                                       "chromium chromium-driver)")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A digits run with threshold copies on given labels (30 % of them wrong, in a
  labels_file), and the truth."""
  from configs import default
  root = tmp_path_factory.mktemp("review")
  c = default.get_config()
  c.progress, c.num_devices, c.num_epochs = False, 1, 6
  from jaxclean import data
  clean = data.load(c.data).train.labels
  given, _ = protocol.noisy_labels(c, data.load(c.data))
  np.save(root / "given.npy", given)
  c.data.labels_file, c.noise.kind = str(root / "given.npy"), "none"
  protocol.train_and_evaluate(c, str(root / "run"))
  return c, root, given, clean


@pytest.fixture
def browser(tmp_path):
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
              f"--user-data-dir={tmp_path / 'profile'}"):
    options.add_argument(arg)
  downloads = tmp_path / "downloads"
  downloads.mkdir()
  options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                            "download.prompt_for_download": False})
  driver = webdriver.Chrome(service=Service(DRIVER), options=options)
  driver.execute_cdp_cmd("Page.setDownloadBehavior",
                         {"behavior": "allow", "downloadPath": str(downloads)})
  yield driver, downloads
  driver.quit()


def _rows(driver):
  from selenium.webdriver.common.by import By
  return driver.find_elements(By.CSS_SELECTOR, "#review-rows .rv")


def _row(driver, index):
  from selenium.webdriver.common.by import By
  return driver.find_element(By.CSS_SELECTOR, f'#review-rows .rv[data-index="{index}"]')


def test_review_decide_reload_export_and_rerun(run, browser):
  from selenium.webdriver.common.by import By
  config, root, given, clean = run
  driver, downloads = browser
  workdir = root / "run"
  scores = pd.read_csv(workdir / "scores.csv")
  todo = scores[scores["decision"] != "keep"]
  assert len(todo) > 100  # enough rows that the page must not hold them all
  driver.get((workdir / "report.html").as_uri())
  rows = _rows(driver)
  assert 0 < len(rows) < 40  # only the rows in view are in the DOM
  data = driver.execute_script("return JSON.parse(document.getElementById('review-data')"
                               ".textContent)")
  items = data["items"]
  assert len(items) == len(todo)
  from jaxclean import decide
  closed = decide.early_window_closed(str(workdir))
  margin = decide.MARGIN if closed else decide.OPEN_MARGIN
  assert (data["margin"], data["window_closed"]) == (margin, closed)
  lead = driver.find_element(By.CSS_SELECTOR, "#review p.lead").text
  assert f"by more than {margin}" in lead and ("never closed" in lead) == (not closed)
  first = [it[0] for it in items[:5]]

  # By click: keep the first example's given label.
  _row(driver, first[0]).find_element(By.CSS_SELECTOR, 'button[data-act="keep"]').click()
  # By key (the click moved to the next row): drop, pick class 3, accept, then skip one.
  from selenium.webdriver.common.action_chains import ActionChains
  ActionChains(driver).send_keys("d").send_keys("3").send_keys("a").perform()
  expected = {first[0]: ("keep", given[first[0]]), first[1]: ("drop", None),
              first[2]: ("keep" if given[first[2]] == 3 else "relabel", 3),
              first[3]: ("keep" if items[3][2] == given[first[3]] else "relabel", items[3][2])}

  def check():
    for index, (decision, label) in expected.items():
      row = _row(driver, index)
      assert row.get_attribute("data-whose") == "you"
      assert row.get_attribute("data-decision") == decision
      assert row.get_attribute("data-label") == ("" if label is None else str(label))
    assert driver.find_element(By.ID, "review-progress").text.startswith("4 of ")

  check()
  driver.refresh()
  check()  # kept in the browser's storage, under this run's key
  keys = driver.execute_script("return Object.keys(localStorage)")
  assert keys == [f"jaxclean-review:{data['run']}"]

  # Scroll to the end: the last rows are rendered, the first ones are gone.
  driver.execute_script("const l = document.getElementById('review-list');"
                        "l.scrollTop = l.scrollHeight;")
  time.sleep(0.2)
  shown = {int(r.get_attribute("data-index")) for r in _rows(driver)}
  assert items[-1][0] in shown and first[0] not in shown

  driver.find_element(By.ID, "review-export").click()
  path = downloads / "decisions.csv"
  for _ in range(100):
    if path.is_file():
      break
    time.sleep(0.1)
  exported = pd.read_csv(path)
  assert list(exported.columns) == ["index", "decision", "label"]
  by_index = exported.set_index("index")
  for index, (decision, label) in expected.items():
    assert by_index.loc[index, "decision"] == decision
    if label is not None:
      assert by_index.loc[index, "label"] == label
  auto = todo[(todo["decision"] == "relabel") & ~todo["index"].isin(expected)]
  assert set(auto["index"]) <= set(exported["index"])  # the automatic relabels go too

  # A run reads the export back: the dropped example is gone, the relabels applied.
  c = config.copy_and_resolve_references()
  c.data.decisions_file, c.num_epochs = str(path), 2
  out = protocol.train_and_evaluate(c, str(root / "rerun"))
  from jaxclean import decide
  labels, keep = decide.apply(given, exported, 10)
  assert len(out["scores"]) == keep.sum() == len(given) - 1
  np.testing.assert_array_equal(out["scores"]["given_label"], labels[keep])
  assert (labels == clean).mean() > (given == clean).mean() + 0.15


def test_review_reports_do_not_mix(run, browser, tmp_path):
  """Two reports of different runs keep their decisions apart."""
  from selenium.webdriver.common.by import By
  _, root, _, _ = run
  driver, _ = browser
  other = tmp_path / "other"
  shutil.copytree(root / "run", other, ignore=shutil.ignore_patterns("checkpoints"))
  report.build(str(other))
  driver.get((root / "run" / "report.html").as_uri())
  from selenium.webdriver.common.action_chains import ActionChains
  ActionChains(driver).send_keys("k").perform()
  assert _rows(driver)[0].get_attribute("data-whose") == "you"
  driver.get(other.joinpath("report.html").as_uri())
  assert all(r.get_attribute("data-whose") == "auto" for r in _rows(driver))
  assert driver.find_element(By.ID, "review-progress").text.startswith("0 of ")
