"""Tables for people, JSON for programs: every listing command offers both."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    console = Console(width=None if sys.stdout.isatty() else 160)
    if title:
        console.print(title, highlight=False)
    table = Table(header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


def print_lines(lines: Sequence[str]) -> None:
    for line in lines:
        print(line)
