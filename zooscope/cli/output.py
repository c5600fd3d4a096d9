"""How the commands print tables: every value whole, within the terminal's width.

``--format table`` prints a table that fits the terminal (its width, ``COLUMNS``, or 80 columns
when the output is not a terminal). Columns with one value in every row move to a line above
the table; headers wrap at their underscores; text with spaces (display names, errors) wraps;
numbers and identifiers (model uids, run ids) are never cut. A table still too wide is printed
on its side: one column per row of the data, in as many blocks as the width needs.
``--format csv`` prints every column and row as they are.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MISSING",
    "echo_wrapped",
    "emit",
    "emit_mapping",
    "emit_sections",
    "format_value",
    "terminal_width",
]

#: How a missing value is printed in a table.
MISSING = "–"

#: Width between two columns: one space of padding and the (blank) rule.
_GAP = 2


def format_value(value: object) -> str:
    """A table cell: floats to 3 decimals (tiny ones in scientific notation), integers plain."""
    if value is None or (isinstance(value, str) and not value):
        return MISSING
    if isinstance(value, float) and math.isnan(value):
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, datetime.datetime):  # pd.Timestamp too
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        if value != 0 and abs(value) < 0.001:
            return f"{value:.2e}"
        return f"{value:.3f}" if abs(value) < 1e4 else f"{value:.4g}"
    import pandas as pd  # here: `zooscope --help` does not import pandas

    try:
        if pd.isna(value):  # pd.NA, NaT
            return MISSING
    except (TypeError, ValueError):  # array-like values
        pass
    return str(value)


def terminal_width() -> int:
    """The width output must fit: the terminal's, ``COLUMNS``, or 80 when not a terminal."""
    from rich.console import Console

    return Console().width


def _mapping_lines(mapping: dict, indent: int, width: int) -> list[str]:
    import json
    import textwrap

    lines = []
    pad = " " * indent
    for key, value in sorted(mapping.items(), key=lambda kv: str(kv[0])):
        if isinstance(value, dict) and value:
            lines.append(f"{pad}{key}:")
            lines.extend(_mapping_lines(value, indent + 2, width))
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        wrap = textwrap.TextWrapper(
            width, initial_indent=pad, subsequent_indent=pad + "    ", break_on_hyphens=False
        )
        lines.extend(wrap.wrap(f"{key}: {text}"))
    return lines


def echo_wrapped(text: str) -> None:
    """Print a line of prose broken at spaces to the width; continuation lines indented."""
    import textwrap

    width = terminal_width()
    for line in text.splitlines() or [""]:
        typer.echo(
            "\n".join(textwrap.wrap(line, width, subsequent_indent="  ", break_on_hyphens=False))
        )


def emit_mapping(mapping: dict, indent: int = 0) -> None:
    """Print a (nested) mapping as ``key: value`` lines, long values wrapped to the width."""
    for line in _mapping_lines(mapping, indent, terminal_width()):
        typer.echo(line)


def _header(column: object) -> str:
    return str(column).replace("_", " ")


def _constant_columns(df: pd.DataFrame, keep: Sequence[str]) -> list[str]:
    """Columns printed alike in every row (of two or more rows), except those in ``keep``."""
    if len(df) < 2:
        return []
    alike = [c for c in df.columns if c not in keep and len({format_value(v) for v in df[c]}) == 1]
    return alike if len(alike) < len(df.columns) else alike[1:]  # a table keeps one column


def _wrap_words(text: str, width: int, sep: str = " ") -> str:
    """``text`` broken at ``sep`` into lines of at most ``width`` (or one piece)."""
    lines: list[str] = []
    for word in text.split(sep):
        if lines and len(lines[-1]) + len(sep) + len(word) <= width:
            lines[-1] += sep + word
        else:
            lines.append(word)
    return "\n".join(lines)


def _min_width(cells: list[str], header: str, wraps: bool) -> int:
    """The narrowest a column can be: its longest word when it wraps, else its longest cell."""
    pieces = [w for c in cells for w in c.split()] if wraps else cells
    return max([len(p) for p in pieces] + [len(w) for w in header.split()] + [1])


def _numeric(df: pd.DataFrame, column: object) -> bool:
    from pandas.api.types import is_numeric_dtype

    return is_numeric_dtype(df[column])


def _wraps(df: pd.DataFrame, column: object, cells: list[str]) -> bool:
    """Text with spaces wraps; numbers and one-word values (uids, paths) never do."""
    return not _numeric(df, column) and any(" " in c for c in cells)


def _table(**kwargs):
    from rich import box
    from rich.table import Table

    return Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), **kwargs
    )


def _print_horizontal(
    console, df: pd.DataFrame, columns: list[list[str]], wrap_headers: bool
) -> None:
    table = _table(header_style="bold")
    for column, cells in zip(df.columns, columns, strict=True):
        wraps = _wraps(df, column, cells)
        numeric = _numeric(df, column)
        width = _min_width(cells, _header(column), wraps)
        header = _header(column)
        table.add_column(
            _wrap_words(header, width if wrap_headers else len(header)),
            justify="right" if numeric else "left", no_wrap=not wraps, min_width=width,
        )  # fmt: skip
    for row in zip(*columns, strict=True):
        table.add_row(*row)
    console.print(table)


def _print_vertical(console, df: pd.DataFrame, columns: list[list[str]], width: int) -> None:
    """One column per row of ``df``, as many as fit ``width`` side by side in each block."""
    names = [_header(c) for c in df.columns]
    label = max(len(n) for n in names)
    rows = [list(r) for r in zip(*columns, strict=True)]
    widths = [max(len(c) for c in row) for row in rows]
    start = 0
    while start < len(rows):
        used, stop = label, start
        while stop < len(rows) and (stop == start or used + _GAP + widths[stop] <= width):
            used += _GAP + widths[stop]
            stop += 1
        table = _table(show_header=False)
        table.add_column(style="bold", no_wrap=True)
        room = max(width - label - _GAP, 1)  # a value longer than that folds
        for k in range(start, stop):
            table.add_column(
                justify="right", overflow="fold", min_width=min(widths[k], room), max_width=room
            )
        for i, name in enumerate(names):
            table.add_row(name, *[rows[k][i] for k in range(start, stop)])
        if start:
            console.print()
        console.print(table)
        start = stop


def emit(
    df: pd.DataFrame,
    fmt: str,
    *,
    title: str | None = None,
    keep: Sequence[str] = (),
) -> None:
    """Print a table: ``table`` (fits the terminal; see the module docstring) or ``csv``.

    Parameters
    ----------
    df : DataFrame
        The rows to print.
    fmt : {"table", "csv"}
        ``csv`` prints ``df`` whole, with no title.
    title : str, optional
        A line above the table: what the rows are, and by what they are sorted.
    keep : sequence of str
        Columns kept in the table even when every row has the same value.
    """
    if fmt == "csv":
        typer.echo(df.to_csv(index=False), nl=False)
        return
    if fmt != "table":
        raise typer.BadParameter("--format must be table or csv")
    from rich.console import Console

    console = Console(highlight=False, markup=False, emoji=False)
    constant = _constant_columns(df, keep)
    if title:
        console.print(title)
    if constant:
        items = [f"{_header(c)}: {format_value(df[c].iloc[0])}" for c in constant]
        console.print(_wrap_words("  ".join(items), console.width, sep="  "), soft_wrap=True)
        df = df.drop(columns=constant)
    if df.empty or not len(df.columns):
        console.print("(no rows)")
        return
    columns = [[format_value(v) for v in df[c].tolist()] for c in df.columns]
    pairs = list(zip(df.columns, columns, strict=True))
    gaps = _GAP * (len(columns) - 1)
    needed = sum(_min_width(cells, _header(c), _wraps(df, c, cells)) for c, cells in pairs) + gaps
    natural = sum(max(len(_header(c)), *map(len, cells)) for c, cells in pairs) + gaps
    if needed <= console.width:
        _print_horizontal(console, df, columns, wrap_headers=natural > console.width)
    else:
        _print_vertical(console, df, columns, console.width)


def emit_sections(
    df: pd.DataFrame,
    fmt: str,
    by: Sequence[str],
    title: str = "",
    keep: Sequence[str] = (),
) -> None:
    """Like `emit`, one table per value of the ``by`` columns (e.g. metric and ROI).

    Each table's first line names its section (``crsa, EVC``) followed by ``title`` (e.g. how
    the rows are sorted). ``csv`` prints one table with every row.
    """
    by = [b for b in by if b in df.columns]
    if fmt == "csv" or not by or df.empty:
        emit(df, fmt, title=title or None, keep=keep)
        return
    for i, (key, sub) in enumerate(df.groupby(by, sort=False, dropna=False)):
        key = key if isinstance(key, tuple) else (key,)
        heading = ", ".join(format_value(v) for v in key)
        if i:
            typer.echo("")
        emit(
            sub.drop(columns=by), fmt, title=f"{heading}: {title}" if title else heading, keep=keep
        )
