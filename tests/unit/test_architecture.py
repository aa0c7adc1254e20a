"""The package structure drawn in docs/architecture.md, checked against the code's imports.

Every ``import cheaptokens.…`` (including those inside functions) is an arrow. Arrows may
only point down the layers below; a package may not reach a sibling of its layer; no files
or packages import each other in a circle; the Venice emulator is reached only from the
command line; the web layer and the CLI run no SQL; and only ``orders/transitions.py``
writes an order's status.
"""

from __future__ import annotations

import ast
import pathlib
from collections import defaultdict

import pytest

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "cheaptokens"

#: Layer of each top-level module or package, from the bottom (0) up.
LAYERS: dict[str, int] = {
    **dict.fromkeys(
        (
            "config",
            "errors",
            "money",
            "times",
            "failpoints",
            "secretbox",
            "passwords",
            "metrics",
            "__init__",
        ),
        0,
    ),
    **dict.fromkeys(("db", "models", "migrate", "migrations"), 1),
    **dict.fromkeys(("ledger", "alerts", "jobs", "operators"), 2),
    **dict.fromkeys(("pricing", "payments", "venice"), 3),
    "sandbox": 4,  # the emulators users run offline: above venice, imported only by cli
    "inventory": 4,
    "orders": 5,
    "shop": 6,
    **dict.fromkeys(("web", "worker"), 7),
    "cli": 8,
    "__main__": 9,
}
#: Single-file modules of one layer may use each other (db ← models ← migrate, …).
SHARED_LAYERS = {0, 1, 2}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: pathlib.Path, modules: set[str]) -> set[str]:
    """The project's modules that ``path`` imports (``from pkg import mod`` names ``pkg.mod``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("cheaptokens")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if not target.startswith("cheaptokens"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for target in imports_of(path, set(modules)):
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target != name:
                edges[name].add(target)
    return {name: edges.get(name, set()) for name in modules}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


EDGES = graph()


def test_every_module_has_a_layer() -> None:
    assert {top(m) for m in EDGES} <= set(LAYERS)


def test_imports_only_point_down() -> None:
    wrong = []
    for src, targets in EDGES.items():
        for dst in targets:
            a, b = top(src), top(dst)
            if a == b:
                continue
            la, lb = LAYERS[a], LAYERS[b]
            if lb < la or (lb == la and la in SHARED_LAYERS):
                continue
            wrong.append(f"{src} -> {dst}")
    assert wrong == []


def test_no_circle_of_files_or_packages() -> None:
    assert cycles(EDGES) == []
    packages: dict[str, set[str]] = defaultdict(set)
    for src, targets in EDGES.items():
        packages[top(src)] |= {top(t) for t in targets if top(t) != top(src)}
    assert cycles(dict(packages)) == []


def test_the_emulator_is_reached_only_from_the_command_line() -> None:
    users = {top(s) for s, ts in EDGES.items() for t in ts if top(t) == "sandbox"}
    assert users <= {"cli", "sandbox"}


@pytest.mark.parametrize("package", ["web", "cli"])
def test_no_sql_in_the_transport_layers(package: str) -> None:
    for path in (SRC / package).rglob("*.py"):
        assert "sqlalchemy" not in path.read_text(encoding="utf-8"), path


def test_only_transitions_write_an_orders_status() -> None:
    writers = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for t in targets:
                if (
                    isinstance(t, ast.Attribute)
                    and t.attr == "status"
                    and isinstance(t.value, ast.Name)
                    and t.value.id in ("order", "o")
                ):
                    writers.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert len(writers) == 1 and writers[0].startswith("orders/transitions.py:"), writers


def test_the_circle_finder_finds_circles() -> None:
    """The checks above can fail: a circle is found when there is one."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
