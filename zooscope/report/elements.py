"""HTML pieces every report section uses: tables and embedded figures."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd


def _table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    return df.to_html(index=False, escape=True, na_rep="–", float_format=floatfmt.format, border=0)


def _img(paths: list[Path], alt: str) -> str:
    png = next(p for p in paths if p.suffix == ".png")
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    svg = next((p for p in paths if p.suffix == ".svg"), None)
    link = f' <a href="figures/{html.escape(svg.name)}">SVG</a>' if svg else ""
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption class="note">{html.escape(alt)}{link}</figcaption></figure>'
