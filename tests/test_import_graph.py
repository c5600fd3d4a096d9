"""The import graph of zooscope, read from the source with ``ast`` (imports inside functions too).

* No circle among zooscope's modules.
* No arrow back up: each top-level package or module of ``zooscope`` sits on a floor
  (:data:`FLOORS`) and imports only from its own floor or lower ones.
* No module takes another module's private (``_underscore``) names; the package-private
  modules (``zooscope._timing``, ...) are imported as modules or for their public names.
* An import of zooscope inside a function says why (a comment on its block): such imports hide the
  graph, so they are kept for what they buy (import time of the command line, mostly).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "zooscope"

#: Bottom to top. A package or module may import from its own floor and the floors below it.
FLOORS: tuple[frozenset[str], ...] = (
    # tools every layer uses
    frozenset(
        {
            "zooscope",
            "_backend",
            "_gram",
            "_files",
            "_hashing",
            "_timing",
            "errors",
            "logs",
            "runtime",
            "validation",
            "pixels",
            "failure_causes",
        }
    ),
    # libraries: they take plain arguments and know nothing of a survey
    frozenset({"rsa", "zoo", "benchmark", "nsd", "neural", "feature_extraction"}),
    # the run's vocabulary: profiles, the metric registry, ScoringConfig and RunOptions
    frozenset({"profiles", "metrics", "config"}),
    # running a survey and storing its results
    frozenset({"pipeline", "results"}),
    # statistics over a results database
    frozenset({"analyses"}),
    # figures and the HTML report
    frozenset({"report"}),
    # the command line
    frozenset({"cli"}),
)


@dataclass(frozen=True)
class Import:
    """One ``import`` statement's target inside zooscope."""

    source: str  # importing module, e.g. "zooscope.pipeline.scoring"
    target: str  # imported module (the closest one that exists)
    names: tuple[str, ...]  # names taken with ``from target import ...``
    node: ast.stmt
    in_function: bool


def _modules() -> dict[str, Path]:
    base = ROOT.parent
    return {
        ".".join(p.relative_to(base).with_suffix("").parts).removesuffix(".__init__"): p
        for p in ROOT.rglob("*.py")
    }


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module ``name`` is, or lies in (``zooscope.rsa.crsa`` -> ``zooscope.rsa``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports() -> Iterator[Import]:
    for module, path in MODULES.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        inner = {
            id(node)
            for function in ast.walk(tree)
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
            for node in ast.walk(function)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = _resolve(alias.name) if alias.name.startswith("zooscope") else None
                    if target:
                        yield Import(module, target, (), node, id(node) in inner)
            elif isinstance(node, ast.ImportFrom):
                name = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    name = ".".join([*parts, name] if name else parts)
                if not name.startswith("zooscope"):
                    continue
                plain = []
                for alias in node.names:
                    submodule = f"{name}.{alias.name}"
                    if submodule in MODULES:  # ``from package import module``
                        yield Import(module, submodule, (), node, id(node) in inner)
                    else:
                        plain.append(alias.name)
                if plain:
                    yield Import(module, _resolve(name), tuple(plain), node, id(node) in inner)


IMPORTS = list(_imports())


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _floor(module: str) -> int:
    top = _top(module)
    for level, names in enumerate(FLOORS):
        if top in names:
            return level
    raise AssertionError(f"{top} ({module}) is on no floor: add it to FLOORS in {__file__}")


def _edges() -> dict[str, set[str]]:
    """Module -> modules it imports (a module importing its own package does not count)."""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in IMPORTS:
        if imp.target != imp.source and not imp.source.startswith(imp.target + "."):
            edges[imp.source].add(imp.target)
    return edges


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
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
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_package_has_a_floor() -> None:
    for module in MODULES:
        _floor(module)


def test_no_import_circle() -> None:
    assert _circles(_edges()) == []


def test_no_arrow_points_up() -> None:
    upward = sorted(
        f"{imp.source} (floor {_floor(imp.source)}) -> {imp.target} (floor {_floor(imp.target)})"
        for imp in IMPORTS
        if _floor(imp.target) > _floor(imp.source)
    )
    assert upward == []


def test_no_module_takes_another_modules_private_names() -> None:
    private = sorted(
        f"{imp.source}: from {imp.target} import {name}"
        for imp in IMPORTS
        if imp.target != imp.source
        for name in imp.names
        if name.startswith("_") and not name.endswith("__")
    )
    assert private == []


def _import_block(tree: ast.Module, node: ast.stmt) -> list[ast.stmt]:
    """The run of import statements around ``node`` in its function body."""
    for parent in ast.walk(tree):
        for body in (getattr(parent, "body", None), getattr(parent, "orelse", None)):
            if isinstance(body, list) and node in body:
                start = stop = body.index(node)
                while start > 0 and isinstance(body[start - 1], ast.Import | ast.ImportFrom):
                    start -= 1
                while stop + 1 < len(body) and isinstance(
                    body[stop + 1], ast.Import | ast.ImportFrom
                ):
                    stop += 1
                return body[start : stop + 1]
    return [node]


def test_imports_inside_functions_say_why() -> None:
    silent = []
    for path in {MODULES[imp.source] for imp in IMPORTS if imp.in_function}:
        text = path.read_text(encoding="utf-8")
        lines, tree = text.splitlines(), ast.parse(text)
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for stmt in ast.walk(node):
                names = (
                    [stmt.module or ""]
                    if isinstance(stmt, ast.ImportFrom)
                    else [a.name for a in stmt.names]
                    if isinstance(stmt, ast.Import)
                    else []
                )
                if not any(n.startswith("zooscope") for n in names):
                    continue
                block = _import_block(tree, stmt)
                # a comment on the line above the block, or on one of its lines
                span = lines[block[0].lineno - 2 : block[-1].end_lineno]
                if not any("#" in line for line in span):
                    silent.append(f"{path.name}:{stmt.lineno}: {lines[stmt.lineno - 1].strip()}")
    assert sorted(set(silent)) == []


def test_the_reader_sees_every_kind_of_import() -> None:
    edges = _edges()
    assert "zooscope.config" in edges["zooscope.pipeline.scoring"]  # from module import name
    assert (
        "zooscope.analyses.contrasts" in edges["zooscope.report.html"]
    )  # from package import module
    lazy = [i for i in IMPORTS if i.in_function and i.source == "zooscope.cli.survey"]
    assert lazy, "imports inside the command functions are read"
