"""No import circle in the package, lazy imports inside functions included: each module's
imports of jaxclean modules (`from a import b` counts as a.b when that is a module) as a
graph, and a depth-first search for a cycle."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _modules() -> dict[str, pathlib.Path]:
  out = {}
  for path in (ROOT / "jaxclean").rglob("*.py"):
    parts = path.relative_to(ROOT).with_suffix("").parts
    out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
  return out


def _imports(path: pathlib.Path, modules) -> set[str]:
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                else node.module for a in node.names}
  return found & set(modules)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One cycle of `graph` as a path that ends where it starts, or None."""
  state, path = {}, []

  def visit(m):
    state[m] = "open"
    path.append(m)
    for n in sorted(graph[m]):
      if state.get(n) == "open":
        return path[path.index(n):] + [n]
      if n not in state and (found := visit(n)):
        return found
    state[m] = "done"
    path.pop()

  return next((c for m in sorted(graph) if m not in state and (c := visit(m))), None)


def test_no_import_cycle():
  modules = _modules()
  graph = {m: _imports(p, modules) - {m} for m, p in modules.items()}
  assert "jaxclean.errors" in graph["jaxclean.noise"]  # the graph sees imports
  assert "jaxclean.data.sources" in graph["jaxclean.checks"]  # ... inside functions too
  assert _cycle(graph) is None, " -> ".join(_cycle(graph))
  assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
