"""Functions read like a table of contents: none has over 80 lines of code without saying why.

Lines of code exclude the docstring (the numpydoc of a public function is documentation, not
length). A function that is longer says why in a ``# long: ...`` comment on one of the two lines
above its ``def`` (or its decorators): e.g. a command whose signature declares its options, or a
schema migration that is one SQL script.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "zooscope"
LIMIT = 80

#: Functions in code owned elsewhere while this rule landed, with the reason.
PENDING: dict[str, str] = {}


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    total = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
        if isinstance(first.value.value, str):
            total -= first.end_lineno - first.lineno + 1
    return total


def _long_functions() -> list[str]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if _code_lines(node) <= LIMIT:
                continue
            top = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            if any("# long:" in line for line in lines[max(top - 2, 0) : top]):
                continue
            name = f"{path.relative_to(ROOT.parent)}:{node.name}"
            if name not in PENDING:
                found.append(f"{name} ({_code_lines(node)} lines)")
    return found


def test_long_functions_say_why() -> None:
    assert _long_functions() == []
