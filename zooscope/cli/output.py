"""How the commands print tables."""

from __future__ import annotations

import typer


def emit(df, fmt: str) -> None:
    """Print a table: ``table`` (a rich table, floats to 4 significant digits) or ``csv``."""
    if fmt == "csv":
        typer.echo(df.to_csv(index=False), nl=False)
    elif fmt == "table":
        from rich.console import Console
        from rich.table import Table

        table = Table()
        for column in df.columns:
            table.add_column(str(column))
        for row in df.itertuples(index=False):
            table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
        Console().print(table)
    else:
        raise typer.BadParameter("--format must be table or csv")
