"""The README's code examples run as written."""

import os
import re

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def test_reuse_example_runs():
  blocks = re.findall(r"```python\n(.*?)```", open(README).read(), re.S)
  assert blocks, "README has no python example"
  for code in blocks:
    exec(compile(code, "README.md", "exec"), {})
