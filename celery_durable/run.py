"""``Run``: a handle on one workflow run, read fresh from the store each time."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from . import codec
from .engine import history as h
from .errors import RunNotFound, WorkflowCancelled

if TYPE_CHECKING:
    from .app import Durable


def _iso(at: Any) -> Any:
    if isinstance(at, (int, float)):
        return dt.datetime.fromtimestamp(at, dt.timezone.utc).isoformat()
    return at


class Run:
    """A workflow run: its id, status, result, history; cancel it.

    >>> run = data_pipeline.start({"name": "ada"})        # doctest: +SKIP
    >>> run.status                                         # doctest: +SKIP
    'running'
    >>> run.result(timeout=30)                             # doctest: +SKIP
    'stored:ada'
    """

    def __init__(self, durable: Durable, run_id: str) -> None:
        self.durable = durable
        self.id = run_id

    def __repr__(self) -> str:
        try:
            status = self.status
        except Exception:  # noqa: BLE001 - a repr must not raise
            status = "?"
        return f"<Run {self.id!r} {status}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def _state(self) -> dict[str, str]:
        state = self.durable.store.state(self.id)
        if state is None:
            raise RunNotFound(f"no run with id {self.id!r} (never started, or past retention)")
        return state

    @property
    def status(self) -> str:
        """``running``, ``completed``, ``failed`` or ``cancelled``."""
        return self._state()["status"]

    @property
    def workflow_name(self) -> str:
        return self._state().get("workflow", "")

    def result(self, timeout: float | None = None) -> Any:
        """Block until the run ends; return its value or raise its error.

        Raises ``TimeoutError`` when ``timeout`` seconds pass first,
        :class:`~celery_durable.WorkflowCancelled` if it was cancelled, and the
        workflow's own exception (or :class:`~celery_durable.WorkflowFailed`).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self._state()
            if state["status"] != "running":
                return self._outcome(state)
            remaining = 5.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"run {self.id!r} is still running after {timeout}s")
            self.durable.store.wait_ended(self.id, min(remaining, 5.0))

    def _outcome(self, state: dict[str, str]) -> Any:
        outcome = codec.loads(state["outcome"]) if state.get("outcome") else {}
        kind = outcome.get("type")
        if kind == h.RUN_COMPLETED:
            return outcome.get("result")
        if kind == h.RUN_CANCELLED:
            raise WorkflowCancelled(f"run {self.id!r} was cancelled")
        raise self.durable.errors.decode_run_error(outcome.get("error") or {}, self.id)

    def cancel(self) -> bool:
        """Ask the run to stop: the workflow sees ``asyncio.CancelledError`` at its await.

        Returns False if the run had already ended.
        """
        self._state()
        event = {"type": h.CANCEL_REQUESTED, "at": time.time()}
        if not self.durable.store.request_cancel(self.id, event):
            return False
        self.durable.wake(self.id)
        return True

    def wake_up(self) -> int:
        """Fire the run's pending sleeps now (an operator's "skip the wait").

        Returns how many timers were fired.
        """
        self._state()
        fired: set[int] = set()
        pending: list[tuple[int, float]] = []
        for event in self.durable.store.events(self.id):
            if event["type"] == h.TIMER_FIRED:
                fired.add(int(event["seq"]))
            elif event["type"] == h.TIMER_SCHEDULED:
                pending.append((int(event["seq"]), float(event["due"])))
        count = 0
        for seq, due in pending:
            if seq in fired:
                continue
            event = {"type": h.TIMER_FIRED, "seq": seq, "at": time.time(), "woken": True}
            count += self.durable.store.record(self.id, seq, event, "", timer_due=due).recorded
        if count:
            self.durable.wake(self.id)
        return count

    def events(self) -> list[dict[str, Any]]:
        """The history: dicts with ``type``, ``at`` (ISO-8601 UTC) and, where it applies,
        ``seq`` and the step ``name``."""
        self._state()
        names: dict[int, str] = {}
        out = []
        for event in self.durable.store.events(self.id):
            event = dict(event)
            seq = event.get("seq")
            if event["type"] == h.STEP_SCHEDULED and seq is not None:
                names[int(seq)] = event.get("name", "")
            elif seq is not None and int(seq) in names and "name" not in event:
                event["name"] = names[int(seq)]
            event["at"] = _iso(event.get("at"))
            for key in ("due", "retry_at"):
                if key in event:
                    event[key] = _iso(event[key])
            event.pop("secret", None)  # webhook tokens derive from it: not for display
            out.append(event)
        return out
