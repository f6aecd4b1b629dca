"""The history's vocabulary: event types, and the commands a workflow emits.

An event is a plain ``dict`` (it crosses Redis as JSON) with at least ``type``
and ``at`` (UNIX seconds, UTC); events about a command carry its ``seq``.
Commands are what replay produces; each one turns into exactly one event when
it is committed, and is matched against that event on every later replay.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import sys
import time
import uuid
from typing import Any


def canonical(value: Any) -> str:
    """A stable text form of a JSON-normalised value, for comparing commands."""
    return json.dumps(value, sort_keys=True, default=repr)


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values, types included (``1``, ``1.0`` and ``True`` differ, as they
    do in the history); what comparing :func:`canonical` forms says, without encoding."""
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is str or kind is int or kind is bool or a is None:
        return bool(a == b)
    if kind is dict:
        if a.keys() != b.keys():
            return False
        for key, value in a.items():
            if not same(value, b[key]):
                return False
        return True
    if kind is list:
        if len(a) != len(b):
            return False
        for x, y in zip(a, b, strict=True):
            if not same(x, y):
                return False
        return True
    return bool(a == b) or a != a and b != b  # NaN matches NaN, as canonical() did

# Written once per run.
RUN_STARTED = "run_started"
RUN_COMPLETED = "run_completed"
RUN_FAILED = "run_failed"
RUN_CANCELLED = "run_cancelled"

# Commands: emitted by the workflow, numbered by ``seq``, matched on replay.
STEP_SCHEDULED = "step_scheduled"
TIMER_SCHEDULED = "timer_scheduled"
WEBHOOK_CREATED = "webhook_created"
HOOK_CREATED = "hook_created"
WEBHOOK_DISPOSED = "webhook_disposed"
HOOK_DISPOSED = "hook_disposed"
WEBHOOK_RESPONDED = "webhook_responded"
CHILD_SCHEDULED = "child_scheduled"

# Deliveries: outcomes fed back into the workflow, one at a time, in history order.
STEP_COMPLETED = "step_completed"
STEP_FAILED = "step_failed"
TIMER_FIRED = "timer_fired"
CANCEL_REQUESTED = "cancel_requested"
WEBHOOK_RECEIVED = "webhook_received"
HOOK_RECEIVED = "hook_received"
HOOK_CONFLICT = "hook_conflict"
CHILD_COMPLETED = "child_completed"
CHILD_FAILED = "child_failed"
CHILD_CANCELLED = "child_cancelled"

# Informational: recorded for people and tools, ignored by replay.
STEP_STARTED = "step_started"
STEP_RETRYING = "step_retrying"
#: A failed run continued: its ``voided`` history positions (the step failures that
#: ended it) are not delivered by any replay after it.
RUN_REDRIVEN = "run_redriven"
#: ``patched(patch)`` said True here: this run runs the patched code from this point.
PATCH_MARKED = "patch_marked"

COMMAND_EVENTS = frozenset({STEP_SCHEDULED, TIMER_SCHEDULED, WEBHOOK_CREATED, HOOK_CREATED,
                            CHILD_SCHEDULED,
                            WEBHOOK_DISPOSED, HOOK_DISPOSED, WEBHOOK_RESPONDED})
DELIVERY_EVENTS = frozenset({STEP_COMPLETED, STEP_FAILED, TIMER_FIRED, CANCEL_REQUESTED,
                             CHILD_COMPLETED, CHILD_FAILED, CHILD_CANCELLED,
                             WEBHOOK_RECEIVED, HOOK_RECEIVED, HOOK_CONFLICT})
#: Deliveries that may come many times for one command (each request, each resume).
INBOX_EVENTS = frozenset({WEBHOOK_RECEIVED, HOOK_RECEIVED, HOOK_CONFLICT})
END_EVENTS = frozenset({RUN_COMPLETED, RUN_FAILED, RUN_CANCELLED})

#: Bumped whenever a change to the engine could make an old history replay
#: differently; recorded in ``run_started`` and named in divergence errors.
ENGINE_VERSION = 1


@dataclasses.dataclass
class Command:
    """Something the workflow asked for; ``seq`` is its position in emission order."""

    seq: int = dataclasses.field(default=0, init=False)

    event_type = ""

    def to_event(self, at: float) -> dict[str, Any]:
        event = {"type": self.event_type, "at": at, "seq": self.seq}
        event.update(self._fields())
        return event

    def _fields(self) -> dict[str, Any]:
        return {}

    def matches(self, event: dict[str, Any]) -> bool:
        """True when ``event`` records this very command.

        Values are compared as canonical JSON, so ``1``, ``1.0`` and ``True`` differ
        as they do in the history.
        """
        if event.get("type") != self.event_type:
            return False
        return all(same(event.get(key), value) for key, value in self._fields().items())

    def describe(self) -> str:
        return f"{self.event_type} #{self.seq}"


@dataclasses.dataclass
class StepCommand(Command):
    """Run step ``name`` with JSON-normalised ``args``/``kwargs``."""

    name: str = ""
    args: list[Any] = dataclasses.field(default_factory=list)
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    event_type = STEP_SCHEDULED

    def _fields(self) -> dict[str, Any]:
        return {"name": self.name, "args": self.args, "kwargs": self.kwargs}

    def matches(self, event: dict[str, Any]) -> bool:  # the hot one: no dict built
        return (event.get("type") == STEP_SCHEDULED and event.get("name") == self.name
                and same(event.get("args"), self.args) and same(event.get("kwargs"), self.kwargs))

    def describe(self) -> str:
        return f"step {self.name}(args={self.args!r}, kwargs={self.kwargs!r}) at #{self.seq}"


def child_run_id(parent: str, seq: int) -> str:
    """The run id of the child a parent started at ``seq``: the same on every replay.
    ``~`` never appears in an id a user chooses, so a child's id cannot be taken."""
    child = f"{parent}~{seq}"
    if len(child) <= 200:
        return child
    import hashlib  # deep nesting: keep ids bounded

    root = parent.split("~", 1)[0][:80]
    return f"{root}~{hashlib.sha256(child.encode()).hexdigest()[:32]}"


@dataclasses.dataclass
class ChildCommand(Command):
    """Start workflow ``workflow`` as a child run (``detached``: it outlives the parent
    and the parent does not wait for it)."""

    workflow: str = ""
    args: list[Any] = dataclasses.field(default_factory=list)
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    detached: bool = False

    event_type = CHILD_SCHEDULED

    def _fields(self) -> dict[str, Any]:
        return {"workflow": self.workflow, "args": self.args, "kwargs": self.kwargs,
                "detached": self.detached}

    def describe(self) -> str:
        kind = "detached run" if self.detached else "child run"
        return f"{kind} of {self.workflow}(args={self.args!r}, kwargs={self.kwargs!r}) " \
               f"at #{self.seq}"


@dataclasses.dataclass
class TimerCommand(Command):
    """Wake the workflow at ``due`` (UNIX seconds) on its durable clock."""

    due: float = 0.0

    event_type = TIMER_SCHEDULED

    def _fields(self) -> dict[str, Any]:
        return {"due": self.due}

    def matches(self, event: dict[str, Any]) -> bool:
        # Float due times round-trip through JSON exactly; compare with a hair of
        # tolerance anyway so a history written by another platform still matches.
        return (event.get("type") == self.event_type
                and abs(float(event.get("due", 0.0)) - self.due) < 1e-6)

    def describe(self) -> str:
        return f"timer due at {self.due:.3f} at #{self.seq}"


@dataclasses.dataclass
class WebhookCommand(Command):
    """Register a webhook token for this run (``kind`` "webhook") or a hook ("hook")."""

    token: str = ""
    kind: str = "webhook"
    method: str | None = None
    respond_with: Any = None

    @property
    def event_type(self) -> str:  # type: ignore[override]
        return WEBHOOK_CREATED if self.kind == "webhook" else HOOK_CREATED

    def _fields(self) -> dict[str, Any]:
        if self.kind == "webhook":
            return {"token": self.token, "method": self.method, "respond_with": self.respond_with}
        return {"token": self.token}

    def describe(self) -> str:
        return f"{self.kind} created at #{self.seq}"


@dataclasses.dataclass
class DisposeCommand(Command):
    """Stop accepting requests/resumes for the webhook or hook created at ``target``."""

    target: int = 0
    kind: str = "webhook"

    @property
    def event_type(self) -> str:  # type: ignore[override]
        return WEBHOOK_DISPOSED if self.kind == "webhook" else HOOK_DISPOSED

    def _fields(self) -> dict[str, Any]:
        return {"target": self.target}

    def describe(self) -> str:
        return f"{self.kind} #{self.target} disposed at #{self.seq}"


@dataclasses.dataclass
class RespondCommand(Command):
    """Answer a webhook request held open by ``respond_with="manual"``."""

    request_id: str = ""
    status: int = 200
    body: str = ""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    #: ``body`` holds base64 of bytes.
    base64: bool = False

    event_type = WEBHOOK_RESPONDED

    def _fields(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "status": self.status, "body": self.body,
                "headers": self.headers, "base64": self.base64}

    def describe(self) -> str:
        return f"response {self.status} to request {self.request_id} at #{self.seq}"


@dataclasses.dataclass
class PatchMarker(Command):
    """``patched(patch)`` took the new branch: recorded, but takes no position (``seq`` 0),
    so the commands after it keep the positions an unpatched history gave them."""

    patch: str = ""
    #: The position of the next command when the patch was reached.
    at_seq: int = 0

    event_type = PATCH_MARKED

    def to_event(self, at: float) -> dict[str, Any]:
        return {"type": self.event_type, "at": at, "patch": self.patch, "at_seq": self.at_seq}

    def describe(self) -> str:
        return f"patch {self.patch!r} before #{self.at_seq}"


def describe_event(event: dict[str, Any]) -> str:
    """A one-line description of a recorded command event, for error messages."""
    kind = event.get("type")
    if kind == STEP_SCHEDULED:
        return (f"step {event.get('name')}(args={event.get('args')!r}, "
                f"kwargs={event.get('kwargs')!r}) at #{event.get('seq')}")
    if kind == TIMER_SCHEDULED:
        return f"timer due at {float(event.get('due', 0.0)):.3f} at #{event.get('seq')}"
    if kind in (WEBHOOK_CREATED, HOOK_CREATED):
        return f"{kind.split('_')[0]} created at #{event.get('seq')}"
    if kind == CHILD_SCHEDULED:
        return (f"{'detached run' if event.get('detached') else 'child run'} of "
                f"{event.get('workflow')}(args={event.get('args')!r}, "
                f"kwargs={event.get('kwargs')!r}) at #{event.get('seq')}")
    return f"{kind} at #{event.get('seq')}"


def failures_that_ended(events: list[dict[str, Any]]) -> list[int]:
    """History positions of the step failures that ended a failed run: those delivered
    after its last command, before its ``run_failed`` (what a redrive runs again).

    A failure the workflow caught and went on from is followed by new commands, so it
    is not among them; a workflow that failed in its own code has none.
    """
    end = max((i for i, e in enumerate(events) if e.get("type") == RUN_FAILED), default=-1)
    positions = []
    for index in range(end - 1, -1, -1):
        kind = events[index].get("type")
        if kind in COMMAND_EVENTS or kind == RUN_REDRIVEN:
            break
        if kind == STEP_FAILED:
            positions.append(index)
    return sorted(positions)


def redriven_positions(events: list[dict[str, Any]]) -> set[int]:
    """Every position a ``run_redriven`` event of this history voided."""
    return {int(i) for e in events if e.get("type") == RUN_REDRIVEN
            for i in e.get("voided", [])}


def started_event(workflow: str, args: list[Any], kwargs: dict[str, Any],
                  at: float | None = None, parent: tuple[str, int, bool] | None = None
                  ) -> dict[str, Any]:
    """The ``run_started`` event: arguments plus what replay must reproduce (and, for a
    child run, its parent: (run id, seq of the command, detached))."""
    event = {"type": RUN_STARTED, "at": time.time() if at is None else at,
             "workflow": workflow, "args": args, "kwargs": kwargs,
             "seed": uuid.uuid4().int >> 64,
             "secret": secrets.token_hex(32),
             "python": f"{sys.version_info.major}.{sys.version_info.minor}",
             "engine": ENGINE_VERSION}
    if parent is not None:
        event.update(parent=parent[0], parent_seq=parent[1], detached=parent[2])
    return event
