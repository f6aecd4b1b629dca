"""One run as the viewer shows it: its header, its chart, the detail of each command,
its events as a table, and the same as JSON.

Framework-free: the run's state and history in, plain values out. The history passes
through :func:`~.viewer_model.public_event` first, so the run's secret never reaches
a page or the API, and webhook tokens arrive cut.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from .. import timeline as tl
from ..engine import history as h
from ..store.base import RunState
from . import viewer_chart as chart
from . import viewer_model as vm

#: Events listed on the page (the JSON API, and ``?events=all``, have every one).
EVENTS_SHOWN = 500
#: Up to this many commands, the page holds every command's panel; a bigger run's
#: panels load when clicked (a gather of 500 would otherwise weigh half a megabyte).
INLINE_DETAILS = 60


class History:
    """The run's history, cleaned, and indexed by what the page asks of it."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = [vm.public_event(e) for e in events]
        self.started: dict[str, Any] = next(
            (e for e in self.events if e.get("type") == h.RUN_STARTED), {})
        self.created: dict[int, dict[str, Any]] = {}
        self.fired: dict[int, dict[str, Any]] = {}
        self.received: dict[int, list[tuple[float, Any]]] = defaultdict(list)
        self.redrives = 0
        self.cancel_requested = False
        for event in self.events:
            kind, seq = event.get("type"), event.get("seq")
            at = float(event["at"]) if isinstance(event.get("at"), (int, float)) else 0.0
            if kind == h.RUN_REDRIVEN:
                self.redrives += 1
            elif kind == h.CANCEL_REQUESTED:
                self.cancel_requested = True
            if seq is None or not isinstance(seq, int):
                continue
            if kind in (h.STEP_SCHEDULED, h.TIMER_SCHEDULED, h.WEBHOOK_CREATED, h.HOOK_CREATED):
                self.created[seq] = event
            elif kind == h.TIMER_FIRED:
                self.fired[seq] = event
            elif kind == h.WEBHOOK_RECEIVED:
                self.received[seq].append((at, event.get("request")))
            elif kind == h.HOOK_RECEIVED:
                self.received[seq].append((at, event.get("payload")))

    def arrival_times(self) -> dict[int, list[float]]:
        return {seq: [at for at, _ in items] for seq, items in self.received.items()}


def page(run_id: str, state: RunState, events: list[dict[str, Any]], now: float,
         all_events: bool = False) -> dict[str, Any]:
    """Everything the run page draws."""
    history = History(events)
    timeline = tl.build(run_id, state.status, events)
    drawn = chart.layout(timeline, history.arrival_times(), now)
    running = state.status == "running"
    inline = len(timeline.rows) <= INLINE_DETAILS
    details = [detail(row, history, timeline.started, running) for row in timeline.rows
               if inline or row.kind == "hook"]
    shown = history.events if all_events else history.events[:EVENTS_SHOWN]
    return {"run": header(run_id, state, history, timeline, now), "chart": drawn,
            "details": details if inline else [], "lazy_details": not inline,
            "events": [event_row(i, e, timeline.started) for i, e in enumerate(shown)],
            "events_total": len(history.events), "events_hidden": len(history.events)
            - len(shown), "live_hooks": [d for d in details if d.get("live")],
            "pending_sleeps": sum(1 for r in timeline.rows
                                  if r.kind == "sleep" and r.status == "waiting"),
            "events_count": len(events)}


def command(run_id: str, state: RunState, events: list[dict[str, Any]], seq: int
            ) -> dict[str, Any] | None:
    """The panel of one command (None if the run has no command ``seq``)."""
    timeline = tl.build(run_id, state.status, events)
    row = next((r for r in timeline.rows if r.seq == seq), None)
    if row is None:
        return None
    return detail(row, History(events), timeline.started, state.status == "running")


def header(run_id: str, state: RunState, history: History, timeline: tl.Timeline,
           now: float) -> dict[str, Any]:
    end = state.ended_at if state.ended_at is not None else now
    started = history.started
    kwargs = started.get("kwargs") or {}
    return {"run_id": run_id, "workflow": state.workflow,
            "workflow_short": vm.short_name(state.workflow), "status": state.status,
            "running": state.status == "running", "created_at": state.created_at,
            "started_iso": vm.iso(state.created_at), "started_ago": vm.ago(state.created_at, now),
            "ended_iso": vm.iso(state.ended_at), "duration": vm.duration(end - state.created_at),
            "args": vm.pretty(started.get("args", [])),
            "kwargs": vm.pretty(kwargs) if kwargs else None,
            "result": vm.pretty(timeline.result) if state.status == "completed" else None,
            "error": vm.error_view(timeline.error) if state.status == "failed" else None,
            "cancel_requested": history.cancel_requested and state.status == "running",
            "redrives": history.redrives, "steps": sum(1 for r in timeline.rows
                                                       if r.kind == "step")}


def detail(row: tl.Row, history: History, started: float, running: bool) -> dict[str, Any]:
    """The panel of one command: what it was given, each attempt, what it gave back."""
    out: dict[str, Any] = {
        "seq": row.seq, "kind": row.kind, "status": row.status,
        "name": vm.mask_token(row.name) if row.kind == "webhook" else row.name,
        "short": vm.short_name(row.name) if row.kind == "step" else row.kind,
        "scheduled": vm.iso(row.start, ms=True), "offset": f"+{vm.duration(row.start - started)}",
        "ended": vm.iso(row.end, ms=True) if row.end is not None or running
        else "- (still open when the run ended)", "took": vm.duration(row.duration),
        "error": vm.error_view(row.error), "live": False}
    if row.kind == "step":
        kwargs = row.detail.get("kwargs") or {}
        out.update(args=vm.pretty(row.detail.get("args", [])),
                   kwargs=vm.pretty(kwargs) if kwargs else None,
                   result=vm.pretty(row.result) if row.status == "completed" else None,
                   attempts=[_attempt(a) for a in row.attempts])
    elif row.kind == "sleep":
        due = row.detail.get("due")
        out.update(due=vm.iso(due if isinstance(due, (int, float)) else None, ms=True),
                   woken=bool(history.fired.get(row.seq, {}).get("woken")))
    elif row.kind not in ("webhook", "hook"):  # a child run (or a kind not known here)
        out.update(child_run=row.detail.get("run_id"),
                   args=vm.pretty(row.detail["args"]) if "args" in row.detail else None,
                   result=vm.pretty(row.result) if row.status == "completed" else None)
    else:
        created = history.created.get(row.seq, {})
        out.update(method=created.get("method"),
                   received=[_received(row.kind, at, value, started)
                             for at, value in history.received.get(row.seq, [])],
                   live=row.kind == "hook" and running and row.end is None)
    return out


def _attempt(attempt: tl.Attempt) -> dict[str, Any]:
    took = None if attempt.ended is None else attempt.ended - attempt.started
    return {"number": attempt.number, "started": vm.clock(attempt.started),
            "ended": vm.clock(attempt.ended), "took": vm.duration(took),
            "outcome": attempt.outcome, "error": vm.error_view(attempt.error)}


def _received(kind: str, at: float, value: Any, started: float) -> dict[str, Any]:
    out: dict[str, Any] = {"at": vm.clock(at), "offset": f"+{vm.duration(at - started)}"}
    if kind == "hook":
        out["payload"] = vm.pretty(value)
    elif isinstance(value, dict):
        out.update(method=str(value.get("method", "")), path=str(value.get("path", "")),
                   headers=[(str(k), str(v)) for k, v in _pairs(value.get("headers"))],
                   args=[(str(k), str(v)) for k, v in _pairs(value.get("args"))],
                   body=vm.request_body(value))
    return out


def _pairs(value: Any) -> list[tuple[Any, Any]]:
    if not isinstance(value, list):
        return []
    return [(p[0], p[1]) for p in value if isinstance(p, (list, tuple)) and len(p) == 2]


def event_row(index: int, event: dict[str, Any], started: float) -> dict[str, Any]:
    at = event.get("at")
    at = float(at) if isinstance(at, (int, float)) else None
    kind = str(event.get("type", "?"))
    return {"index": index, "type": kind, "seq": event.get("seq"),
            "offset": "-" if at is None else f"+{vm.duration(at - started)}",
            "clock": vm.clock(at), "fields": vm.event_fields(event),
            "family": _family(kind)}


def _family(kind: str) -> str:
    if kind in (h.STEP_FAILED, h.RUN_FAILED, h.HOOK_CONFLICT, "unreadable"):
        return "bad"
    if kind == h.STEP_RETRYING:
        return "warn"
    if kind in h.END_EVENTS or kind in (h.STEP_COMPLETED, h.TIMER_FIRED):
        return "good"
    return "plain"


# -- JSON ----------------------------------------------------------------------------
def as_json(run_id: str, state: RunState, events: list[dict[str, Any]],
            brief: bool = False) -> dict[str, Any]:
    """The run for ``/api/runs/<id>``: state, outcome, the timeline's rows and events
    (``brief``: state and the number of events only, what a page polls)."""
    out: dict[str, Any] = {
        "run_id": run_id, "workflow": state.workflow, "status": state.status,
        "created_at": state.created_at, "ended_at": state.ended_at,
        "duration": None if state.ended_at is None else state.ended_at - state.created_at,
        "events_count": len(events)}
    if brief:
        return out
    history = History(events)
    timeline = tl.build(run_id, state.status, events)
    out.update(args=history.started.get("args", []), kwargs=history.started.get("kwargs", {}),
               result=timeline.result if state.status == "completed" else None,
               error=timeline.error, rows=[_row_json(r) for r in timeline.rows],
               events=history.events)
    return out


def _row_json(row: tl.Row) -> dict[str, Any]:
    out = dataclasses.asdict(row)
    out["duration"] = row.duration
    if row.kind == "webhook":
        out["name"] = vm.mask_token(row.name)
        out["detail"]["received"] = [vm.public_request(r)
                                     for r in row.detail.get("received", [])]
    return out
