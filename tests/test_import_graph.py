"""The import picture of profiler/: no circles between its modules.

Every `import profiler...` counts, at module level and inside functions (a lazy import is still a
dependency), except under `if TYPE_CHECKING:` (never run) and inside Jupyter's display hooks
(`_repr_html_` and the like: IPython calls them to show a result, the result's own logic never does).
The package root `profiler/__init__.py` is left out: it is the public façade, whose lazy table names
every module and loads none of them.

`KNOWN_CYCLES` are the circles this test found and that are not untangled yet, each with what ties it;
the test fails on any other circle, and on a known one that has gone (so the list only shrinks).
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "profiler"

KNOWN_CYCLES: set[frozenset[str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PKG.rglob("*.py")}


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _is_display_hook(node: ast.AST) -> bool:
    return (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("_repr_")
            and node.name.endswith("_"))


def imports_of(module: str) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                for stmt in child.orelse:
                    visit(stmt)
                continue
            if _is_display_hook(child):
                continue
            if isinstance(child, ast.Import):
                found.update(filter(None, (_resolve(a.name) for a in child.names
                                           if a.name.startswith("profiler."))))
            elif (isinstance(child, ast.ImportFrom) and child.level == 0
                  and (child.module or "").startswith("profiler")):
                for a in child.names:
                    full = f"{child.module}.{a.name}"
                    target = full if full in MODULES else _resolve(child.module or "")
                    if target:
                        found.add(target)
            visit(child)

    visit(ast.parse(MODULES[module].read_text(encoding="utf-8")))
    return found - {module, "profiler"}


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: set[frozenset[str]] = set()
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.add(frozenset(component))
    return out


def test_the_cycle_finder_finds_a_circle_and_nothing_else():
    # GIVEN a graph with one three-module circle and a tail (the oracle is written by hand)
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"a"}}
    assert cycles(graph) == {frozenset("abc")}
    assert cycles({"a": {"b"}, "b": set()}) == set()


def test_profiler_modules_import_each_other_without_circles():
    # GIVEN every module's imports of other profiler modules
    graph = {m: imports_of(m) for m in MODULES if m != "profiler"}
    # WHEN the circles are found
    found = cycles(graph)
    # THEN there are none besides the known ones, and every known one is still there
    assert found - KNOWN_CYCLES == set(), sorted(sorted(c) for c in found - KNOWN_CYCLES)
    assert KNOWN_CYCLES - found == set(), "a known circle is gone: drop it from KNOWN_CYCLES"


def test_the_render_package_sits_above_the_results_it_renders():
    # GIVEN the modules that compute results
    computing = {"profiler.profile", "profiler.analysis", "profiler.diagnose", "profiler.cost",
                 "profiler.cache_sim.providers", "profiler.cache_sim.kv_cache", "profiler.diff"}
    # THEN none of them imports a renderer (outside Jupyter display hooks)
    assert {m: sorted(i for i in imports_of(m) if i.startswith("profiler.render"))
            for m in computing} == {m: [] for m in computing}
