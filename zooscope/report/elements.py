"""HTML pieces every report section uses: tables, embedded figures and notes."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

__all__ = ["figure_html", "note_html", "table_html"]


def table_html(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    """A table of ``df`` (no index; NaN as a dash; floats formatted by ``floatfmt``)."""
    return df.to_html(index=False, escape=True, na_rep="–", float_format=floatfmt.format, border=0)


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
