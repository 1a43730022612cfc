"""The package's import graph: no circle anywhere, the runtime's arrows one way, and a client
that needs nothing of the server side. Read from the source (every import, including those
under ``TYPE_CHECKING`` and inside functions), so a circle cannot hide behind a lazy import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in (SRC / "gymlab").rglob("*.py")}


def _imports(name: str, path: Path) -> set[str]:
    """The gymlab modules ``name`` imports (a ``from pkg import sub`` counts as ``pkg.sub``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


def _reaches(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for w in GRAPH[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen


def test_the_import_graph_is_read() -> None:
    assert "gymlab.runtime.config" in GRAPH["gymlab.runtime.backend"]
    assert "gymlab.rewarder.protocol.events" in GRAPH["gymlab.rewarder.protocol.rules"]


def test_no_import_circle_in_the_package() -> None:
    assert _circles(GRAPH) == []


def test_the_circle_finder_finds_one() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    ("module", "must_not_reach"),
    [
        ("gymlab.runtime.config", "gymlab.runtime.backend"),
        ("gymlab.runtime.backend", "gymlab.runtime.env_backend"),
        ("gymlab.runtime.backend", "gymlab.runtime.browser"),
        ("gymlab.runtime.backend", "gymlab.runtime.core"),
        ("gymlab.runtime.env_backend", "gymlab.runtime.core"),
        ("gymlab.runtime.browser", "gymlab.runtime.core"),
        ("gymlab.runtime.env_backend", "gymlab.runtime.browser"),
        ("gymlab.runtime.browser", "gymlab.runtime.env_backend"),
        ("gymlab.rewarder.server", "gymlab.runtime.backend"),
    ],
)
def test_runtime_arrows_point_one_way(module: str, must_not_reach: str) -> None:
    """core -> backends -> backend base -> config; the rewarder knows no runtime."""
    assert must_not_reach not in _reaches(module)


def test_the_client_imports_nothing_of_the_runtime() -> None:
    client = [m for m in GRAPH if m == "gymlab.client" or m.startswith("gymlab.client.")]
    reached = set().union(*(_reaches(m) for m in client))
    assert sorted(m for m in reached if m.startswith("gymlab.runtime")) == []
