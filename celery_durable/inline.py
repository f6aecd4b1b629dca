"""Inline continuation: a worker that continues a run and finds exactly one next step it
could run itself runs it, instead of a broker round trip.

The step is claimed, leased, heart-beaten, retried and recorded exactly as a sent one:
the commit that schedules it also begins it (running until a lease from then, so a
worker that dies before or while running it is found out after a lease), or marks it
"being published" when it keeps the lease for events still unread, and the step is
then begun as a sent one; only the message is saved. A budget (``durable_inline_steps``
steps, and one second) sends the run back through the broker, so one run cannot hold a
pool process. Never inlined: a fan-out (one branch would be favoured), a step with
``inline=False``, a ``rate_limit`` or a time limit (Celery enforces those on messages), a
step routed to a queue this worker does not consume, or anything inside a task that has
a time limit itself.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any

from celery import Celery, signals

from .engine import history as h
from .store.base import StepClaim

#: What each worker consumes, captured at worker_init (before pool processes fork).
_CONSUMED: weakref.WeakKeyDictionary[Any, frozenset[str]] = weakref.WeakKeyDictionary()
#: Seconds of inline work one task may do before the run goes back through the broker.
INLINE_SECONDS = 1.0
_LIMITS = ("rate_limit", "time_limit", "soft_time_limit")


def _remember_queues(sender: Any = None, **kwargs: Any) -> None:
    app = getattr(sender, "app", None)
    queues = getattr(getattr(app, "amqp", None), "queues", None)
    if queues is not None:
        _CONSUMED[app] = frozenset(queues.consume_from or queues)


signals.worker_init.connect(_remember_queues, weak=False)


def consumed_queues(app: Celery) -> frozenset[str] | None:
    """The queues this process's worker consumes (None outside a worker)."""
    return _CONSUMED.get(app)


def limited(app: Celery, task: Any) -> bool:
    """True when Celery enforces a rate or time limit on ``task``'s messages."""
    conf = app.conf
    return any(getattr(task, name, None) for name in _LIMITS) or bool(
        conf.get("task_time_limit") or conf.get("task_soft_time_limit"))


class InlineSlot:
    """The one next step a task may run itself; filled by the orchestrator's commit."""

    def __init__(self, accept: Callable[[h.StepCommand], bool], steps: int,
                 seconds: float = INLINE_SECONDS) -> None:
        self._accept = accept
        self.left = steps
        self.deadline = time.monotonic() + seconds
        self.pending: tuple[str, h.StepCommand, StepClaim | None] | None = None
        self.ran = 0

    def __repr__(self) -> str:
        return f"<InlineSlot left={self.left} ran={self.ran}>"

    def wants(self, command: h.StepCommand) -> bool:
        return (self.pending is None and self.left > 0
                and time.monotonic() < self.deadline and self._accept(command))

    def hand(self, run_id: str, command: h.StepCommand, claim: StepClaim | None) -> None:
        """Take the step a commit scheduled for this task to run next; ``claim`` when
        the commit also began it (else the runner begins it as a sent one)."""
        self.pending = (run_id, command, claim)
        self.left -= 1

    def take(self) -> tuple[str, h.StepCommand, StepClaim | None] | None:
        pending, self.pending = self.pending, None
        if pending is not None:
            self.ran += 1
        return pending


def inline_policy(app: Celery, find_step: Callable[[str], Any],
                  queue_of: Callable[[str], str]) -> Callable[[h.StepCommand], bool]:
    """Which steps this worker may run inline (see the module's docstring)."""

    def accept(command: h.StepCommand) -> bool:
        step = find_step(command.name)
        consumed = consumed_queues(app)
        if step is None or not getattr(step, "inline", True) or consumed is None:
            return False
        return not limited(app, step.task) and queue_of(command.name) in consumed

    return accept
