"""Output helpers: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
from typing import Any

import click


def console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def table(title: str | None, columns: list[str], rows: list[list[str]]) -> Any:
    """A table of plain text: cells are data, so ``[azure]`` stays literal (rich would read
    it as a style and print ``pip install ascend``)."""
    from rich.markup import escape
    from rich.table import Table

    result = Table(title=escape(title) if title else None, title_justify="left")
    for column in columns:
        result.add_column(escape(column), overflow="fold")
    for row in rows:
        result.add_row(*(escape(cell) for cell in row))
    return result
