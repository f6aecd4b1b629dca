"""Durable timers, in one room: the horizon decision, arming, firing and waking up.

A timer (``sleep``, a ``wait_for`` timeout, a long retry) is a ``timer_scheduled``
command with a due time on the workflow's clock. At commit, :meth:`TimerPolicy.plan`
decides for each one: due within ``durable_timer_horizon`` it is *armed* (an ETA
message is sent at once); later, it waits in the store's index with no broker
message and no worker memory, and the sweeper arms it as it comes near
(:meth:`Timers.arm_due`). Firing (:meth:`Timers.fire`) is never early and happens at
most once: the outcome is append-if-absent and checked against the due time the
commit marked in the run. :meth:`Timers.wake_up` fires a run's pending sleeps now.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol

from .engine import history as h
from .messages import Dispatcher
from .store.base import HistoryStore

logger = logging.getLogger("celery_durable.timers")


@dataclasses.dataclass(frozen=True)
class TimerPolicy:
    """When a timer gets a broker message (``horizon``), and how late an armed timer
    may fire before its message counts as lost (``grace``)."""

    horizon: float
    grace: float

    def arm_now(self, due: float, now: float) -> bool:
        """True when a message for ``due`` should be sent now; else the sweeper sends it."""
        return due <= now + self.horizon

    def plan(self, commands: Iterable[h.Command], now: float
             ) -> list[tuple[int, float, bool]]:
        """``(seq, due, armed)`` for each new timer command of one commit."""
        return [(c.seq, c.due, self.arm_now(c.due, now))
                for c in commands if isinstance(c, h.TimerCommand)]


class RunDriver(Protocol):
    """What firing a timer needs of the orchestrator."""

    def record_and_continue(self, run_id: str, seq: int, event: dict[str, Any], *,
                            timer_due: float | None = None) -> bool: ...


class Timers:
    """Arms, fires and wakes up timers; one per runtime."""

    def __init__(self, policy: TimerPolicy, store: HistoryStore, dispatcher: Dispatcher,
                 driver: RunDriver) -> None:
        self.policy = policy
        self.store = store
        self.dispatcher = dispatcher
        self.driver = driver

    def fire(self, run_id: str, seq: int, due: float) -> None:
        """The ``fire_timer`` message arrived: fire it (never early) and continue the run."""
        if time.time() < due:  # a clock behind the sender's, or an early ETA
            self.dispatcher.send_timer(run_id, seq, due)
            return
        event = {"type": h.TIMER_FIRED, "seq": seq, "at": time.time()}
        if not self.driver.record_and_continue(run_id, seq, event, timer_due=due):
            logger.debug("run %s timer #%d: already fired, or no longer pending", run_id, seq)

    def arm_due(self, now: float) -> int:
        """Send ETA messages for timers coming within the horizon (and for armed ones
        whose message seems lost); returns how many were sent."""
        armed = self.store.arm_due_timers(now)
        for run_id, seq, due in armed:
            self.dispatcher.send_timer(run_id, seq, due)
        return len(armed)

    def wake_up(self, run_id: str) -> int:
        """Fire the run's pending sleeps now; returns how many were fired."""
        fired: set[int] = set()
        pending: list[tuple[int, float]] = []
        for event in self.store.events(run_id):
            if event["type"] == h.TIMER_FIRED:
                fired.add(int(event["seq"]))
            elif event["type"] == h.TIMER_SCHEDULED:
                pending.append((int(event["seq"]), float(event["due"])))
        count = 0
        for seq, due in pending:
            if seq in fired:
                continue
            event = {"type": h.TIMER_FIRED, "seq": seq, "at": time.time(), "woken": True}
            # No lease taken here: the caller may be a web app or a shell without the
            # workflow's code; a worker continues the run.
            count += self.store.record(run_id, seq, event, "", timer_due=due).recorded
        if count:
            logger.info("run %s: woke %d pending sleep(s)", run_id, count)
            self.dispatcher.wake(run_id)
        return count
