"""A run's history as a timeline: one row per command (step, sleep, webhook, hook), with
its attempts, times and outcome. The CLI's ``show`` and the run viewer draw it.

Pure: events (as the store gives them) in, rows out.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .engine import history as h

#: How many characters of a webhook token are shown (the token is the webhook's
#: credential: whoever reads it whole can fire the webhook).
TOKEN_SHOWN = 6


def mask_token(token: str) -> str:
    """A webhook token cut to its first characters: ``AbCdEf…``."""
    return token[:TOKEN_SHOWN] + "…" if len(token) > TOKEN_SHOWN else token


#: The row kind of each command event.
KINDS = {h.STEP_SCHEDULED: "step", h.TIMER_SCHEDULED: "sleep", h.WEBHOOK_CREATED: "webhook",
         h.HOOK_CREATED: "hook", h.CHILD_SCHEDULED: "child"}


@dataclasses.dataclass
class Attempt:
    """One attempt of a step: when it began, ended, and how."""

    number: int
    started: float
    ended: float | None = None
    #: "running", "retrying" (failed, will retry), "completed", "failed"
    outcome: str = "running"
    error: dict[str, Any] | None = None


@dataclasses.dataclass
class Row:
    """One command of the run."""

    seq: int
    kind: str
    name: str
    #: When the command was committed (scheduled, created).
    start: float
    end: float | None = None
    #: "pending", "running", "completed", "failed", "fired", "waiting", "received", "disposed"
    status: str = "pending"
    attempts: list[Attempt] = dataclasses.field(default_factory=list)
    result: Any = None
    error: dict[str, Any] | None = None
    #: Step arguments, a sleep's due time, requests or payloads received.
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.start


@dataclasses.dataclass
class Timeline:
    """The rows of a run, its start, its end and its outcome."""

    run_id: str
    workflow: str
    status: str
    started: float
    ended: float | None
    rows: list[Row]
    result: Any = None
    error: dict[str, Any] | None = None


def _at(event: dict[str, Any]) -> float:
    at = event.get("at", 0.0)
    return float(at) if isinstance(at, (int, float)) else 0.0


def build(run_id: str, status: str, events: list[dict[str, Any]]) -> Timeline:
    """The timeline of a run from its raw history (``at`` as UNIX seconds)."""
    started = events[0] if events else {}
    timeline = Timeline(run_id, str(started.get("workflow", "")), status, _at(started), None, [])
    rows: dict[int, Row] = {}
    for event in events:
        kind, seq, at = event.get("type"), event.get("seq"), _at(event)
        if kind in KINDS and seq is not None:
            name = str(event.get("name") or event.get("token") or event.get("workflow") or "")
            row = Row(int(seq), KINDS[kind], name, at,
                      status="waiting" if kind != h.STEP_SCHEDULED else "pending")
            if kind == h.STEP_SCHEDULED:
                row.detail = {"args": event.get("args", []), "kwargs": event.get("kwargs", {})}
            elif kind == h.TIMER_SCHEDULED:
                row.detail = {"due": event.get("due")}
                row.name = "sleep"
            elif kind == h.CHILD_SCHEDULED:
                row.detail = {"run_id": h.child_run_id(run_id, row.seq),
                              "args": event.get("args", []), "detached": event.get("detached")}
                row.status = "started" if event.get("detached") else "running"
            rows[row.seq] = row
            timeline.rows.append(row)
        elif kind in h.END_EVENTS:
            timeline.ended = at
            timeline.result = event.get("result")
            timeline.error = event.get("error")
        elif kind == h.RUN_REDRIVEN:
            timeline.ended, timeline.error = None, None
        elif seq is not None and int(seq) in rows:
            _apply(rows[int(seq)], kind, event, at)
        elif kind in (h.WEBHOOK_DISPOSED, h.HOOK_DISPOSED) and int(event.get("target", -1)) \
                in rows:
            target = rows[int(event["target"])]
            target.end, target.status = at, "disposed"
    if timeline.ended is not None:
        # A command still open when its run ended (a race's loser, the sleep of a
        # cancelled run) was left behind: it will never fire or finish.
        for row in timeline.rows:
            if row.end is None and row.status in ("pending", "running", "waiting"):
                row.status = "abandoned"
    return timeline


def _apply(row: Row, kind: Any, event: dict[str, Any], at: float) -> None:
    if kind == h.STEP_STARTED:
        row.attempts.append(Attempt(int(event.get("attempt", len(row.attempts) + 1)), at))
        row.status = "running"
    elif kind in (h.STEP_RETRYING, h.STEP_COMPLETED, h.STEP_FAILED):
        attempt = row.attempts[-1] if row.attempts and row.attempts[-1].ended is None \
            else None
        outcome = {h.STEP_RETRYING: "retrying", h.STEP_COMPLETED: "completed",
                   h.STEP_FAILED: "failed"}[kind]
        if attempt is not None:
            attempt.ended, attempt.outcome, attempt.error = at, outcome, event.get("error")
        if kind != h.STEP_RETRYING:
            row.end, row.status = at, outcome
            row.result, row.error = event.get("result"), event.get("error")
    elif kind == h.TIMER_FIRED:
        row.end, row.status = at, "fired"
    elif kind in (h.CHILD_COMPLETED, h.CHILD_FAILED, h.CHILD_CANCELLED):
        row.end, row.status = at, kind.removeprefix("child_")
        row.result, row.error = event.get("result"), event.get("error")
    elif kind in (h.WEBHOOK_RECEIVED, h.HOOK_RECEIVED):
        row.detail.setdefault("received", []).append(
            event.get("request") if kind == h.WEBHOOK_RECEIVED else event.get("payload"))
        row.status = "received"
        if row.end is None:
            row.detail["first_at"] = at
    elif kind == h.HOOK_CONFLICT:
        row.end, row.status = at, "failed"
        row.error = {"message": f"held by run {event.get('holder')}"}
