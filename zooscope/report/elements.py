"""HTML pieces every report section uses: tables, embedded figures and notes."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

__all__ = [
    "MIN_GROUP_MODELS",
    "figure_html",
    "group_sizes",
    "is_left_out",
    "left_out_html",
    "note_html",
    "small_groups_text",
    "table_html",
]

#: Fewest models a group needs for its mean to get a bootstrap CI and enter a test.
MIN_GROUP_MODELS = 2


def table_html(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    """A table of ``df`` (no index; NaN as a dash; floats formatted by ``floatfmt``).

    Wrapped in a block that scrolls sideways, so a wide table never spills past the text column.
    """
    table = df.to_html(index=False, escape=True, na_rep="–", float_format=floatfmt.format, border=0)
    return f'<div class="table">{table}</div>'


_LEFT_OUT = '<p class="note left-out">'


def left_out_html(what: str, why: str) -> str:
    """The one line that stands for an analysis the data cannot support: what, and why not."""
    return f"{_LEFT_OUT}Left out: {html.escape(what)} — {html.escape(why)}.</p>"


def is_left_out(fragment: str) -> bool:
    """Whether ``fragment`` is only :func:`left_out_html` lines (no figure, table or heading)."""
    return bool(fragment) and all(
        line.startswith(_LEFT_OUT)
        for line in fragment.replace("</p>", "</p>\n").split("\n")
        if line
    )


def group_sizes(scores: pd.DataFrame, column: str, model: str = "model_uid") -> pd.Series:
    """Models per level of ``column`` (levels as strings, largest first; missing levels left out)."""
    models = scores.drop_duplicates(model).dropna(subset=[column])
    return models[column].astype(str).value_counts()


def small_groups_text(sizes: pd.Series, minimum: int = MIN_GROUP_MODELS, shown: int = 6) -> str:
    """``"Hybrid, MLP-Mixer have 1 model each (a group needs at least 2)"``: the small levels.

    Levels of one size are listed together, the first ``shown`` of them by name.
    """
    small = sizes[sizes < minimum]
    by_size: dict[int, list[str]] = {}
    for level, n in sorted(small.items()):
        by_size.setdefault(int(n), []).append(str(level))
    parts = []
    for n, levels in sorted(by_size.items()):
        names = ", ".join(levels[:shown])
        if len(levels) > shown:
            names += f" and {len(levels) - shown} more"
        models = f"{n} model{'s' if n != 1 else ''}"
        parts.append(f"{names} {'has' if len(levels) == 1 else 'have'} {models}"
                     + (" each" if len(levels) > 1 else ""))  # fmt: skip
    return "; ".join(parts) + f" (a group needs at least {minimum})"


def figure_html(paths: list[Path], alt: str) -> str:
    """The PNG among ``paths`` embedded in a ``<figure>``, captioned ``alt``, linking the SVG copy."""
    png = next(p for p in paths if p.suffix == ".png")
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    svg = next((p for p in paths if p.suffix == ".svg"), None)
    link = f' <a href="figures/{html.escape(svg.name)}">SVG</a>' if svg else ""
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption class="note">{html.escape(alt)}{link}</figcaption></figure>'


def note_html(text: str) -> str:
    """A paragraph of explanatory text (escaped)."""
    return f'<p class="note">{html.escape(text)}</p>'
