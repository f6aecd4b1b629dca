"""History entries as the scripts return them, decoded: JSON to events, with the
unreadable ones named."""

from __future__ import annotations

from typing import Any

from .. import codec
from ..errors import CorruptHistory
from .base import Loaded

#: Entries replay ignores (informational), by how the engine writes them: a replay
#: keeps their place and their text, and parses them not.
_SKIPPED = ('{"type": "step_started"', '{"type": "step_retrying"')


def decode(run_id: str, items: list[str], start: int, replay: bool = False
           ) -> list[dict[str, Any]]:
    """History entries from JSON; :class:`CorruptHistory` naming the first bad one.

    ``replay``: entries replay ignores come as ``{"type": ..., "raw": <text>}``.
    """
    events = []
    for index, item in enumerate(items, start):
        if replay and item.startswith(_SKIPPED):
            events.append({"type": item[10:item.index('"', 10)], "raw": item})
            continue
        try:
            event = codec.loads(item)
        except ValueError as exc:
            raise CorruptHistory(f"run {run_id!r}: history entry #{index} is not valid JSON "
                                 f"({exc}): {item[:80]!r}", index) from None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise CorruptHistory(f"run {run_id!r}: history entry #{index} is not an event "
                                 f"(a JSON object with a type): {item[:80]!r}", index)
        events.append(event)
    return events


def loaded(run_id: str, status: str, raw: list[str], created_at: Any, start: int,
            length: int) -> Loaded:
    """What the scripts read from ``start`` (with the entry before it, if any)."""
    if status != "running" or not raw and start == 0:
        return Loaded(status, [], str(created_at or ""), start, length)
    overlap = 1 if start > 0 else 0
    events = decode(run_id, raw, start - overlap, replay=True)
    before = events[0] if overlap and events else None
    return Loaded(status, events[overlap:], str(created_at or ""), start, length, before)
