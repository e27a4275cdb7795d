"""README's and docs/*.md's Python examples run as written, and their relative links resolve."""

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def test_readme_is_a_front_page():
  assert len(open(PAGES[0]).read().splitlines()) <= 250


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_python_examples_run(page):
  blocks = re.findall(r"```python\n(.*?)```", open(page).read(), re.S)
  if page == PAGES[0]:
    assert blocks, "README has no python example"
  for code in blocks:
    exec(compile(code, os.path.relpath(page, ROOT), "exec"), {})


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_relative_links_resolve(page):
  text = re.sub(r"```.*?```", "", open(page).read(), flags=re.S)
  for link in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text):
    if not link.startswith(("http://", "https://", "mailto:")):
      assert os.path.exists(os.path.join(os.path.dirname(page), link)), (page, link)
