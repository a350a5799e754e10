"""Tables whose id columns are never cut: ids are what users copy into the next command.

On a terminal wide enough, a rich table; piped, or on a terminal too narrow for the ids, one
tab-separated line per row, in the table's column order, without the header.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Column, Table

NARROWEST_OTHER_COLUMN = 5
"""Below this a non-id column shows little but an ellipsis: print lines instead."""


def id_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
             ids: Sequence[str] = ("id",), **kwargs: object) -> Table:
    """A table whose ``ids`` columns are never wrapped nor shortened (the others give way)."""
    columns = []
    for index, header in enumerate(headers):
        if header in ids:
            widest = max((len(row[index]) for row in rows), default=0)
            columns.append(Column(header, no_wrap=True, min_width=max(widest, len(header))))
        else:
            columns.append(Column(header))
    table = Table(*columns, **kwargs)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*row)
    return table


def print_rows(console: Console, headers: Sequence[str], rows: Sequence[Sequence[str]],
               ids: Sequence[str] = ("id",)) -> None:
    """``rows`` as a table when it fits the terminal, else as tab-separated lines."""
    table = id_table(headers, rows, ids)
    if console.is_terminal and _needed_width(table) <= console.width:
        console.print(table)
        return
    for row in rows:  # past rich, which would turn the tabs into spaces
        console.file.write(tsv_line(row))


def _needed_width(table: Table) -> int:
    """Whole ids, a few characters of every other column, the borders and padding."""
    return 1 + sum((column.min_width or NARROWEST_OTHER_COLUMN) + 3 for column in table.columns)


_ONE_LINE = str.maketrans({"\t": " ", "\n": " ", "\r": " "})


def tsv_line(cells: Sequence[str]) -> str:
    """``cells`` as one tab-separated line (tabs and line breaks inside a cell made spaces)."""
    return "\t".join(_plain(cell) for cell in cells) + "\n"


def _plain(cell: str) -> str:
    return cell.translate(_ONE_LINE)
