"""Output helpers: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any, Literal

import click


def console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def table(
    title: str | None,
    columns: list[str],
    rows: list[list[str]],
    *,
    whole: Collection[str] | None = None,
    min_widths: Mapping[str, int] | None = None,
    width: int | None = None,
) -> Any:
    """A table of plain text: cells are data, so ``[azure]`` stays literal (rich would read
    it as a style and print ``pip install ascend``).

    Without ``whole``, long cells fold onto more lines. With ``whole``, those columns (ids a
    person copies: a folded id cannot be) are never wrapped nor cut, and every other cell stays
    on one line, cut with an ellipsis to fit ``width`` (the console's); ``min_widths`` keeps
    short but vital columns (a status) readable, cutting the others first.
    """
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    result = Table(title=escape(title) if title else None, title_justify="left")
    if whole is None:
        for column in columns:
            result.add_column(escape(column), overflow="fold")
        for row in rows:
            result.add_row(*(escape(cell) for cell in row))
        return result
    naturals = [
        max([len(column), *(len(row[i]) for row in rows)]) for i, column in enumerate(columns)
    ]
    cut = [i for i, column in enumerate(columns) if column not in whole]
    fitted = dict(zip(cut, (naturals[i] for i in cut), strict=True))
    if width is not None:
        borders = len(columns) + 1 + 2 * len(columns)  # rich's default box and padding
        room = width - borders - sum(naturals[i] for i in range(len(columns)) if i not in fitted)
        floors = {i: min(naturals[i], (min_widths or {}).get(columns[i], 1)) for i in cut}
        fitted = _fit(fitted, floors, room)
    for index, column in enumerate(columns):
        overflow: Literal["ellipsis", "ignore"] = "ellipsis" if index in fitted else "ignore"
        result.add_column(
            Text(column, no_wrap=True, overflow=overflow),
            no_wrap=True,
            overflow=overflow,
            width=fitted.get(index, naturals[index]),
        )
    for row in rows:
        result.add_row(
            *(
                Text(cell, no_wrap=True, overflow="ellipsis" if index in fitted else "ignore")
                for index, cell in enumerate(row)
            )
        )
    return result


def _fit(widths: dict[int, int], floors: dict[int, int], room: int) -> dict[int, int]:
    """Narrow the widest columns first, one character at a time, none below its floor; if that
    is not enough, below the floors down to one character (an ellipsis): ids stay whole."""
    widths = dict(widths)
    for lowest in (floors, dict.fromkeys(floors, 1)):
        while sum(widths.values()) > room:
            narrowable = [i for i in widths if widths[i] > lowest[i]]
            if not narrowable:
                break
            widths[max(narrowable, key=lambda i: widths[i])] -= 1
    return widths


def size_text(size: int | None) -> str:
    """Bytes for people, in decimal units as storage consoles show them."""
    if size is None:
        return "size unknown"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
