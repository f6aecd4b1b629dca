"""The sweeper: what keeps runs moving when a worker or a message is lost.

Each worker runs a :class:`SweeperStep` (a Celery bootstep): a thread that, every
``durable_sweep_interval``, arms timers coming due and claims the runs whose watch
time passed, sending each a check (``orchestrate(run_id, recover=True)``); and the
received marks that tie the step messages this worker took (prefetched ones too)
to its liveness key, so that a SIGKILLed worker's steps come back after a lease, not
after the broker's visibility timeout. Several sweepers at once are safe: each due
run is claimed atomically. ``durable_sweeper = False`` turns it off in workers;
:meth:`Sweeper.sweep_once` (``durable.sweep_once()``) then runs it elsewhere.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
import weakref
from typing import Any

from celery import bootsteps, signals

from .dispatch import STEP_HEADER
from .kombu_fix import guard_restore_unacked
from .runtime import Runtime

logger = logging.getLogger("celery_durable.sweeper")


class Sweeper:
    """One sweeping pass at a time, on a runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def sweep_once(self, limit: int = 100) -> list[str]:
        """Arm timers coming due, and look at each run whose watch time passed: one
        with lost steps, a crashed replay or unseen events is sent to a worker to drive.
        Returns the ids of the runs it sent."""
        runtime = self.runtime
        now = time.time()
        runtime.timers.arm_due(now)
        runtime.store.trim_ended(now)
        lease = runtime.settings.step_lease
        due_runs = runtime.store.claim_due_runs(now, now + lease, limit)
        driven = []
        for run_id in due_runs:
            # Looked at here, without a message: only a run that needs a replay gets one,
            # and one at a time (a check waiting behind a backlog is not sent again
            # before ten leases), so checks never pile up in a long queue.
            if runtime.orchestrator.triage(run_id) != "drive":
                continue
            if runtime.store.claim_check(run_id, now, stale_after=10 * lease):
                logger.info("run %s: lost work or unseen events; sending it to a worker", run_id)
                runtime.dispatcher.wake(run_id, recover=True)
                driven.append(run_id)
        return driven


def _runtime_of(app: Any) -> Runtime | None:
    """The runtime of the Durable registered on a Celery app, if any (no import of app)."""
    durable = getattr(app, "_celery_durable", None)
    return durable.runtime if durable is not None else None


#: The SweeperStep of each app's worker, for the consumer step to reach it.
_WORKER_STEPS: weakref.WeakKeyDictionary[Any, SweeperStep] = weakref.WeakKeyDictionary()


class SweeperStep(bootsteps.StartStopStep):
    """Worker bootstep: the sweeper thread, the worker's liveness key, and the marks
    that tie prefetched step messages to this worker."""

    label = "celery_durable sweeper"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._runtime: Runtime | None = None
        self._marks: queue.SimpleQueue[tuple[str, int]] = queue.SimpleQueue()
        self.worker_id = ""
        self._hostname = str(getattr(parent, "hostname", "worker"))
        self._consumer_starts = 0
        self._app = parent.app
        _WORKER_STEPS[parent.app] = self

    def consumer_started(self) -> None:
        """The consumer (re)connected; from the second time on, that is a reconnection."""
        self._consumer_starts += 1
        if self._consumer_starts > 1:
            self.rotate()

    def rotate(self) -> None:
        """A new identity for the marks of the messages this worker takes from now on.

        Called each time the consumer (re)connects: on a lost broker connection kombu
        drops the messages it had prefetched (they wait in its ``unacked`` hash for
        the visibility timeout), so marks under the old identity must count as lost.
        """
        old = self.worker_id
        self.worker_id = f"{self._hostname}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        if self._runtime is None:
            return
        try:
            self._runtime.store.worker_alive(self.worker_id)
            if old:
                self._runtime.store.worker_gone(old)
                logger.info("durable: the consumer reconnected; steps it had prefetched "
                            "are sent again")
        except Exception:  # noqa: BLE001 - the old key expires by itself within a lease
            logger.warning("durable: could not renew this worker's presence", exc_info=True)

    def start(self, parent: Any) -> None:
        runtime = _runtime_of(parent.app)
        if runtime is None:
            return
        guard_restore_unacked()
        self._runtime = runtime
        if not self.worker_id:
            self.rotate()
        signals.task_received.connect(self._received, weak=False)
        # The liveness key and the received marks are needed with or without sweeping
        # here (``durable_sweeper = False``: another process sweeps).
        self._thread = threading.Thread(target=self._loop, args=(runtime,),
                                        name="durable-sweeper", daemon=True)
        self._thread.start()
        threading.Thread(target=self._send_marks, args=(runtime,),
                         name="durable-received", daemon=True).start()

    def _received(self, sender: Any = None, request: Any = None, **kwargs: Any) -> None:
        # On the consumer, for every message it takes (prefetched ones too): only queue
        # it, so that a slow Redis never holds up the consumer.
        marker = (getattr(request, "request_dict", None) or {}).get(STEP_HEADER)
        if marker:
            self._marks.put((str(marker[0]), int(marker[1])))

    def _send_marks(self, runtime: Runtime) -> None:
        # The marks name the identity current when they are sent: one taken before a
        # reconnection and sent after it is lost with the old one, as it should be.
        runtime = self._runtime or runtime
        while not self._stop.is_set():
            try:
                first = self._marks.get(timeout=0.5)
            except queue.Empty:
                continue
            batch = [first]
            while True:
                try:
                    batch.append(self._marks.get_nowait())
                except queue.Empty:
                    break
            try:
                (self._runtime or runtime).store.received(batch, self.worker_id)
            except Exception:  # noqa: BLE001 - unmarked steps are recovered later anyway
                logger.warning("durable: could not mark %d received steps", len(batch),
                               exc_info=True)

    def _loop(self, runtime: Runtime) -> None:
        while not self._stop.wait(runtime.settings.sweep_interval):
            # Looked up each time: a test kit may give the app another runtime.
            runtime = _runtime_of(self._app) or runtime
            self._runtime = runtime
            try:
                runtime.store.worker_alive(self.worker_id)
                if runtime.settings.sweeper:
                    Sweeper(runtime).sweep_once()
            except Exception:  # noqa: BLE001 - Redis may be restarting: try again later
                logger.warning("durable sweeper: sweep failed", exc_info=True)

    def stop(self, parent: Any) -> None:
        self._stop.set()
        signals.task_received.disconnect(self._received)
        if self._runtime is not None and self.worker_id:
            try:
                self._runtime.store.worker_gone(self.worker_id)
            except Exception:  # noqa: BLE001 - its key expires by itself
                pass


class ConsumerPresenceStep(bootsteps.StartStopStep):
    """Consumer bootstep: each (re)start of the consumer gives the worker's marks a new
    identity (see :meth:`SweeperStep.rotate`)."""

    label = "celery_durable presence"
    requires = ("celery.worker.consumer.connection:Connection",)

    def start(self, parent: Any) -> None:
        step = _WORKER_STEPS.get(parent.app)
        if step is not None and step._runtime is not None:
            step.consumer_started()
