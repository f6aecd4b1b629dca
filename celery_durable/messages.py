"""The messages the runtime sends, as a protocol: the orchestrator, the timers and
the step runner know this much of the broker, and :mod:`.dispatch` sends them with
Celery."""

from __future__ import annotations

from typing import Any, Protocol


class Dispatcher(Protocol):
    """Sends the three kinds of message a run needs."""

    def wake(self, run_id: str, *, recover: bool = False) -> None:
        """Have some worker continue the run (``recover``: check it for lost work too)."""

    def send_step(self, run_id: str, seq: int, name: str, args: list[Any],
                  kwargs: dict[str, Any], countdown: float | None = None) -> str:
        """Send step ``seq`` of the run (again), after ``countdown`` seconds; returns
        the queue it went to."""

    def send_timer(self, run_id: str, seq: int, due: float) -> None:
        """Send the message that fires timer ``seq`` of the run at ``due``."""

    def queue_is_empty(self, queue: str) -> bool:
        """True when the broker holds no message in ``queue``; False if it does, or
        cannot say."""

    def queue_of(self, name: str) -> str:
        """The queue a task's messages go to."""
