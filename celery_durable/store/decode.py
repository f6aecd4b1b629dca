"""History entries as the scripts return them, decoded: JSON to events, with the
unreadable ones named."""

from __future__ import annotations

import json
from typing import Any

from .. import codec
from ..errors import CorruptHistory
from .base import Loaded


def decode(run_id: str, items: list[str], start: int) -> list[dict[str, Any]]:
    """History entries from JSON; :class:`CorruptHistory` naming the first bad one.

    The common case (no kombu-typed value in any entry) is one C parse of all of them:
    a replay decodes every event of a history.
    """
    if not items:
        return []
    joined = ",".join(items)
    if '"__type__"' not in joined:
        try:
            events = json.loads(f"[{joined}]")
        except ValueError:
            events = None  # name the bad entry below
        if events is not None and len(events) == len(items) and all(
                type(e) is dict and type(e.get("type")) is str for e in events):
            return events
    return [_one(run_id, item, index) for index, item in enumerate(items, start)]


def _one(run_id: str, item: str, index: int) -> dict[str, Any]:
    try:
        event = codec.loads(item)
    except ValueError as exc:
        raise CorruptHistory(f"run {run_id!r}: history entry #{index} is not valid JSON "
                             f"({exc}): {item[:80]!r}", index) from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise CorruptHistory(f"run {run_id!r}: history entry #{index} is not an event "
                             f"(a JSON object with a type): {item[:80]!r}", index)
    return event


def loaded(run_id: str, status: str, raw: list[str], created_at: Any, start: int,
            length: int) -> Loaded:
    """What the scripts read from ``start`` (with the entry before it, if any)."""
    if status != "running" or not raw and start == 0:
        return Loaded(status, [], str(created_at or ""), start, length)
    overlap = 1 if start > 0 else 0
    events = decode(run_id, raw, start - overlap)
    before = events[0] if overlap and events else None
    return Loaded(status, events[overlap:], str(created_at or ""), start, length, before)
