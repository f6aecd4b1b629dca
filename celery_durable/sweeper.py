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
from typing import Any

from celery import bootsteps, signals

from .dispatch import STEP_HEADER
from .runtime import Runtime

logger = logging.getLogger("celery_durable.sweeper")


class Sweeper:
    """One sweeping pass at a time, on a runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def sweep_once(self, limit: int = 100) -> list[str]:
        """Arm timers coming due, and send a check to each run whose watch time passed
        (lost steps, crashed replays). Returns the ids of the runs it checks."""
        runtime = self.runtime
        now = time.time()
        runtime.timers.arm_due(now)
        due_runs = runtime.store.claim_due_runs(now, now + runtime.settings.step_lease, limit)
        for run_id in due_runs:
            logger.info("run %s: checking for lost work", run_id)
            runtime.dispatcher.wake(run_id, recover=True)
        return due_runs


def _runtime_of(app: Any) -> Runtime | None:
    """The runtime of the Durable registered on a Celery app, if any (no import of app)."""
    durable = getattr(app, "_celery_durable", None)
    return durable.runtime if durable is not None else None


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

    def start(self, parent: Any) -> None:
        runtime = _runtime_of(parent.app)
        if runtime is None or not runtime.settings.sweeper:
            return
        self._runtime = runtime
        self.worker_id = f"{getattr(parent, 'hostname', 'worker')}:{os.getpid()}:" \
                         f"{uuid.uuid4().hex[:8]}"
        try:
            runtime.store.worker_alive(self.worker_id)
        except Exception:  # noqa: BLE001 - Redis may be starting: the loop beats again
            logger.warning("durable sweeper: Redis not reachable yet", exc_info=True)
        signals.task_received.connect(self._received, weak=False)
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
                runtime.store.received(batch, self.worker_id)
            except Exception:  # noqa: BLE001 - unmarked steps are recovered later anyway
                logger.warning("durable: could not mark %d received steps", len(batch),
                               exc_info=True)

    def _loop(self, runtime: Runtime) -> None:
        sweeper = Sweeper(runtime)
        while not self._stop.wait(runtime.settings.sweep_interval):
            try:
                runtime.store.worker_alive(self.worker_id)
                sweeper.sweep_once()
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
