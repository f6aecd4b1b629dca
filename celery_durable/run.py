"""``Run``: a handle on one workflow run, read fresh from the store each time."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from .engine import history as h
from .errors import WorkflowCancelled
from .runtime import Runtime
from .store.base import RunState


def _iso(at: Any) -> Any:
    if isinstance(at, (int, float)):
        return dt.datetime.fromtimestamp(at, dt.timezone.utc).isoformat()
    return at


def _unstarted(queue: str, steps: list[str]) -> str:
    """Steps queued on ``queue`` that no worker has started, with what to check."""
    shown = ", ".join(steps[:5]) + (f" and {len(steps) - 5} more" if len(steps) > 5 else "")
    one = len(steps) == 1
    return (f"step{'' if one else 's'} {shown} {'is' if one else 'are'} queued on {queue!r} "
            f"and no worker has started {'it' if one else 'them'}: does a worker consume "
            f"{queue!r} (celery ... worker -Q ...,{queue})?")


class Run:
    """A workflow run: its id, status, result, history; cancel it.

    >>> run = data_pipeline.start({"name": "ada"})        # doctest: +SKIP
    >>> run.status                                         # doctest: +SKIP
    'running'
    >>> run.result(timeout=30)                             # doctest: +SKIP
    'stored:ada'
    """

    def __init__(self, runtime: Runtime, run_id: str) -> None:
        self.runtime = runtime
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

    def _state(self) -> RunState:
        return self.runtime.run_state(self.id)

    @property
    def status(self) -> str:
        """``running``, ``completed``, ``failed`` or ``cancelled``."""
        return self._state().status

    @property
    def workflow_name(self) -> str:
        """The name of the run's workflow."""
        return self._state().workflow

    def result(self, timeout: float | None = None) -> Any:
        """Block until the run ends; return its value or raise its error.

        Raises ``TimeoutError`` when ``timeout`` seconds pass first,
        :class:`~celery_durable.WorkflowCancelled` if it was cancelled, and the
        workflow's own exception (or :class:`~celery_durable.WorkflowFailed`).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self._state()
            if not state.running:
                return self._outcome(state)
            remaining = 5.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"run {self.id!r} is still running after {timeout}s; "
                                   f"{self.waiting_on()}")
            self.runtime.store.wait_ended(self.id, min(remaining, 5.0))

    def waiting_on(self) -> str:
        """What the run waits for now, in words (for a timeout's message).

        >>> run.waiting_on()                                       # doctest: +SKIP
        "step proj.app.fetch_user (#2) is queued on 'io' and no worker has started it..."
        """
        events = self.runtime.store.events(self.id)
        if len(events) <= 1:
            queue = self.runtime.queue_of(None)
            return (f"no worker has picked it up yet: is a worker running for this app "
                    f"(celery -A <your app module> worker) and consuming the queue {queue!r}?")
        scheduled: dict[int, dict[str, Any]] = {}
        started: set[int] = set()
        settled: set[int] = set()
        for event in events:
            kind, seq = event["type"], event.get("seq")
            if seq is None:
                continue
            if kind in h.COMMAND_EVENTS:
                scheduled[int(seq)] = event
            elif kind == h.STEP_STARTED:
                started.add(int(seq))
            elif kind in (h.STEP_COMPLETED, h.STEP_FAILED, h.TIMER_FIRED):
                settled.add(int(seq))
        waits: list[str | tuple[str, list[str]]] = []
        queued: dict[str, list[str]] = {}  # queue -> its unstarted steps: one hint each
        for seq, event in sorted(scheduled.items()):
            if seq in settled:
                continue
            if event["type"] == h.STEP_SCHEDULED and seq not in started:
                queue = self.runtime.queue_of(event["name"])
                if queue not in queued:
                    waits.append((queue, queued.setdefault(queue, [])))  # worded below
                queued[queue].append(f"{event['name']} (#{seq})")
            elif event["type"] == h.STEP_SCHEDULED:
                waits.append(f"step {event['name']} (#{seq}) is running or waiting to retry")
            elif event["type"] == h.TIMER_SCHEDULED:
                waits.append(f"a sleep (#{seq}) until {_iso(event['due'])}")
            elif event["type"] in (h.WEBHOOK_CREATED, h.HOOK_CREATED):
                waits.append(f"a {event['type'].split('_')[0]} (#{seq})")
        words = [wait if isinstance(wait, str) else _unstarted(*wait) for wait in waits]
        return "it waits on: " + "; ".join(words[:5]) if words else \
            "it waits on nothing it has scheduled (see run.events())"

    def _outcome(self, state: RunState) -> Any:
        outcome = state.outcome or {}
        kind = outcome.get("type")
        if kind == h.RUN_COMPLETED:
            return outcome.get("result")
        if kind == h.RUN_CANCELLED:
            raise WorkflowCancelled(f"run {self.id!r} was cancelled")
        raise self.runtime.errors.decode_run_error(outcome.get("error") or {}, self.id)

    def cancel(self) -> bool:
        """Ask the run to stop: the workflow sees ``asyncio.CancelledError`` at its await.

        Returns False if the run had already ended.
        """
        return self.runtime.cancel(self.id)

    def redrive(self) -> list[int]:
        """Continue a failed run from its intact history under the code deployed now.

        Recorded step results are kept and not run again; the steps whose failure ended
        the run run again with fresh attempts; a workflow error or a
        ``NonDeterminismError`` is re-evaluated by replaying the current code. Returns
        the seqs of the steps that run again; ``ValueError`` if the run is not failed.

        >>> durable.get_run("order-42").redrive()              # doctest: +SKIP
        [3]
        """
        return self.runtime.redrive(self.id)

    def wake_up(self) -> int:
        """Fire the run's pending sleeps now (an operator's "skip the wait").

        Returns how many timers were fired.
        """
        self._state()
        return self.runtime.timers.wake_up(self.id)

    def events(self) -> list[dict[str, Any]]:
        """The history: dicts with ``type``, ``at`` (ISO-8601 UTC) and, where it applies,
        ``seq`` and the step ``name``."""
        self._state()
        names: dict[int, str] = {}
        out = []
        for event in self.runtime.store.events(self.id):
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
