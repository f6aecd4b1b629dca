"""Terminal output for the CLI: aligned tables, relative times, status colours (click
drops the colours when the output is not a terminal), JSON lines."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence
from typing import Any

import click

STATUS_COLOURS = {"running": "cyan", "completed": "green", "failed": "red",
                  "cancelled": "yellow", "retrying": "yellow", "pending": "white",
                  "waiting": "blue", "fired": "green", "received": "green",
                  "disposed": "white"}


def status(text: str) -> str:
    return click.style(text, fg=STATUS_COLOURS.get(text, "white"), bold=text == "failed")


def iso(at: float | None) -> str:
    if at is None:
        return "-"
    return dt.datetime.fromtimestamp(at, dt.timezone.utc).isoformat(timespec="seconds")


def ago(at: float | None, now: float | None = None) -> str:
    """``3s ago``, ``5m ago``, ``2h ago``, ``4d ago``."""
    if at is None:
        return "-"
    seconds = max(0.0, (now or time.time()) - at)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns aligned on the visible width (styles do not count)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(click.unstyle(cell)))

    def line(cells: Sequence[str]) -> str:
        padded = [cell + " " * (widths[i] - len(click.unstyle(cell)))
                  for i, cell in enumerate(cells)]
        return "  ".join(padded).rstrip()

    out = [line([click.style(h, bold=True) for h in headers])]
    out += [line(row) for row in rows]
    return "\n".join(out)


def json_line(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def fail(message: str, code: int = 2) -> None:
    """Print an error (to stderr) and exit with ``code``."""
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    raise click.exceptions.Exit(code)
