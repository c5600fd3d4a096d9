"""``zooscope models``: list, show, check and fetch manifest models."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``models`` command group to ``app``."""
