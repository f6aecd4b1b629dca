"""Child runs: starting them from a parent's command, and telling the parent how they
ended.

A child run's id derives from its parent's and the command's position
(:func:`~celery_durable.engine.history.child_run_id`), so starting it again changes
nothing. While the parent awaits it, the parent's in-flight mark for that position is
``k:`` (see :mod:`.store.marks`): the child's end delivers its outcome to the parent,
and should that be lost, the parent's sweeper check delivers it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .engine import history as h
from .messages import Dispatcher
from .store.base import HistoryStore

logger = logging.getLogger("celery_durable.orchestrator")


def child_outcome(seq: int, final: dict[str, Any]) -> dict[str, Any]:
    """The event a parent gets for its child's final event."""
    kind = {h.RUN_COMPLETED: h.CHILD_COMPLETED, h.RUN_FAILED: h.CHILD_FAILED,
            h.RUN_CANCELLED: h.CHILD_CANCELLED}[final["type"]]
    event = {"type": kind, "seq": seq, "at": time.time()}
    if kind == h.CHILD_COMPLETED:
        event["result"] = final.get("result")
    elif kind == h.CHILD_FAILED:
        event["error"] = final.get("error")
    return event


class Children:
    """Starts child runs and hands their outcomes to their parents."""

    def __init__(self, store: HistoryStore, dispatcher: Dispatcher, lease: float) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.lease = lease

    def start(self, run_id: str, command: h.ChildCommand) -> None:
        """Start the child run of ``command`` (idempotent); a child that has ended already
        has its outcome delivered (the backstop for a parent that missed it)."""
        child = h.child_run_id(run_id, command.seq)
        started = h.started_event(command.workflow, command.args, command.kwargs,
                                parent=(run_id, command.seq, command.detached))
        existing = self.store.create_run(child, command.workflow, started,
                                         watch_at=time.time() + self.lease)
        if existing is None:
            logger.info("run %s: child run %s of %s started", run_id, child, command.workflow)
            self.dispatcher.wake(child)
        else:
            state = self.store.state(child)
            if state is not None and not state.running and state.outcome \
                    and not command.detached:
                event = child_outcome(command.seq, state.outcome)
                if self.store.record(run_id, command.seq, event, "").recorded:
                    self.dispatcher.wake(run_id)
        self.store.child_started(run_id, command.seq, command.detached)

    def run_ended(self, run_id: str, started: dict[str, Any], final: dict[str, Any]) -> None:
        """A run ended (``started``: its run_started): tell its parent, cancel its live
        children."""
        parent = started.get("parent")
        if parent and not started.get("detached"):
            event = child_outcome(int(started.get("parent_seq", 0)), final)
            try:
                if self.store.record(str(parent), event["seq"], event, "").recorded:
                    self.dispatcher.wake(str(parent))
            except Exception:  # noqa: BLE001 - the parent's sweeper delivers it later
                logger.warning("run %s: could not tell parent %s it ended", run_id, parent,
                               exc_info=True)
        for child in self.store.live_children(run_id):
            if self.store.request_cancel(child, {"type": h.CANCEL_REQUESTED,
                                                 "at": time.time()}):
                self.dispatcher.wake(child)
