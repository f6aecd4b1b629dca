"""Durable time for tests: fire the earliest timer at once when every live run of the test
waits only on timers, and let a test move time forward by hand.

"At once" means once the runs have been still for ``quiet`` seconds (0.1 s): a test
that hands a webhook a request right after the run created it gets there first, as
the outside world would. A run whose webhook URL the test asked for
(``wait_for_webhook``) waits for the test's request before its timers skip.

A timer fired here is recorded with its *due* time as the event's time, so the
workflow's ``now()`` reads the due time: a ``sleep("1 day")`` ends in milliseconds and
the workflow sees the day pass. This lives in the test kit only: production never
fires a timer early.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..engine import history as h
from ..runtime import Runtime
from ..store.base import RunWaits


class DurableClock:
    """Fires timers of the runs a test started, on its own thread."""

    def __init__(self, runtime: Callable[[], Runtime], interval: float = 0.005,
                 quiet: float = 0.1) -> None:
        self._runtime = runtime
        self._interval = interval
        self.quiet = quiet
        self.skipping = True
        #: Runs the test is about to send a request to: their timers wait.
        self.held: set[str] = set()
        self._still: tuple[Any, float] | None = None
        #: Durable time reached by skips and advances (never behind the real clock).
        self.virtual_now = time.time()
        self.fired = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="durable-test-clock",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def now(self) -> float:
        return max(self.virtual_now, time.time())

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            if self.skipping:
                try:
                    self.skip_once()
                except Exception:  # noqa: BLE001 - the store went away at teardown
                    pass

    def _live(self) -> list[tuple[str, RunWaits]]:
        runtime = self._runtime()
        return [(row.run_id, runtime.store.waits(row.run_id))
                for row in runtime.list_runs("running", None, 1000)]

    def skip_once(self) -> bool:
        """Fire the earliest timer if every live run has waited only on timers for
        ``quiet`` seconds."""
        with self._lock:
            live = self._live()
            if not live or any(w.busy or w.steps or not w.timers or run_id in self.held
                               for run_id, w in live):
                self._still = None
                return False
            signature = tuple((run_id, tuple(w.timers), tuple(w.inboxes)) for run_id, w in live)
            if self._still is None or self._still[0] != signature:
                self._still = (signature, time.monotonic())
                return False
            if time.monotonic() - self._still[1] < self.quiet:
                return False
            due, run_id, seq = min((due, run_id, seq) for run_id, w in live
                                   for seq, due in w.timers)
            self._still = None
            return self._fire(run_id, seq, due)

    def advance(self, seconds: float, settle: float = 10.0) -> int:
        """Move durable time forward by ``seconds``: fire, in due order, every timer due by
        then, also those the workflows create on the way. Returns how many fired."""
        target = self.now() + seconds
        fired = 0
        deadline = time.monotonic() + settle
        with self._lock:
            while True:
                live = self._live()
                moving = any(w.busy or w.steps for _, w in live)
                due = [(d, run_id, seq) for run_id, w in live for seq, d in w.timers
                       if d <= target]
                if due and not moving:
                    d, run_id, seq = min(due)
                    fired += self._fire(run_id, seq, d)
                elif not moving:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"advance({seconds}): the runs did not settle within "
                                       f"{settle}s (steps still running?)")
                time.sleep(self._interval)
            self.virtual_now = max(self.virtual_now, target)
        return fired

    def _fire(self, run_id: str, seq: int, due: float) -> bool:
        runtime = self._runtime()
        # The store keeps due times in ms; the history has the workflow's exact one.
        due = next((float(e["due"]) for e in runtime.store.events(run_id)
                    if e.get("type") == h.TIMER_SCHEDULED and e.get("seq") == seq), due)
        event = {"type": h.TIMER_FIRED, "seq": seq, "at": due, "skipped": True}
        if not runtime.store.record(run_id, seq, event, "", timer_due=due).recorded:
            return False
        self.virtual_now = max(self.virtual_now, due)
        self.fired += 1
        runtime.dispatcher.wake(run_id)
        return True
