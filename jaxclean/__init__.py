"""jaxclean: find mislabeled examples from training dynamics recorded inside jitted JAX steps.

`jaxclean.find_label_issues(x, labels)` is the one-call API (`jaxclean.api`);
it and `load_result` are imported on first use, so `import jaxclean` stays light.
"""

_API = ("find_label_issues", "load_result", "LabelIssues")


def __getattr__(name):
  if name in _API:
    from jaxclean import api
    return getattr(api, name)
  raise AttributeError(f"module 'jaxclean' has no attribute {name!r}")


def __dir__():
  return [*globals(), *_API]
