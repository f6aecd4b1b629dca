"""What runs inside a worker for a step: claim, execute, retry or record, continue.

The step's Celery task calls :meth:`StepRunner.execute`. A message without the
``durable`` header is a plain Celery call (``my_step.delay(x)``) and just runs
the function. Otherwise the attempt is claimed in the store, the function runs
under a heartbeat that keeps its lease alive, and the outcome is recorded once;
the worker that records it takes the run's lease when it is free and continues
the workflow itself, saving a broker round trip per step.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import inspect
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from celery.exceptions import Ignore, WorkerLostError

from . import codec
from .dispatch import STEP_HEADER
from .engine import history as h
from .errors import FatalError, RetryableError
from .inline import InlineSlot, limited
from .messages import Dispatcher
from .orchestrator import ErrorEncoder, Orchestrator
from .store.base import HistoryStore, StepClaim
from .timers import TimerPolicy

logger = logging.getLogger("celery_durable.steps")


@dataclasses.dataclass(frozen=True)
class StepMetadata:
    """What :func:`get_step_metadata` returns inside a running step.

    ``step_id`` is stable across retries and redeliveries: use it as an
    idempotency key with the services the step calls.
    """

    run_id: str
    step_id: str
    name: str
    seq: int
    attempt: int


_current_step: contextvars.ContextVar[StepMetadata | None] = contextvars.ContextVar(
    "celery_durable_step", default=None)


def get_step_metadata() -> StepMetadata:
    """Run id, step id and attempt number of the step running now.

    >>> meta = get_step_metadata()                         # doctest: +SKIP
    >>> payments.charge(amount, idempotency_key=meta.step_id)  # doctest: +SKIP
    """
    meta = _current_step.get()
    if meta is None:
        raise RuntimeError("get_step_metadata() can only be called inside a step that a "
                           "workflow run dispatched")
    return meta


def backoff_delay(attempt: int, base: float = 1.0, maximum: float = 600.0,
                  jitter: bool = True) -> float:
    """Seconds before retry number ``attempt`` (1-based): base·2^(attempt-1), ±25 % jitter."""
    delay = min(maximum, base * (2 ** max(0, attempt - 1)))
    return delay * random.uniform(0.75, 1.25) if jitter else delay


class Heartbeat:
    """One daemon thread per process that keeps running steps' leases alive."""

    def __init__(self, store: HistoryStore, lease: float) -> None:
        self.store = store
        self.lease = lease
        self._active: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, run_id: str, seq: int, running_until: float | None = None) -> None:
        """Keep beating for ``(run_id, seq)``; ``running_until``: when its mark expires
        now, if it was set before this moment (else a lease from now)."""
        began = time.monotonic()
        if running_until is not None:
            began -= max(0.0, self.lease - (running_until - time.time()))
        with self._lock:
            self._active[(run_id, seq)] = began
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._beat, name="durable-heartbeat",
                                                daemon=True)
                self._thread.start()

    def remove(self, run_id: str, seq: int) -> None:
        with self._lock:
            self._active.pop((run_id, seq), None)

    def _beat(self) -> None:
        lease = self.lease
        while True:
            time.sleep(max(0.05, lease / 3))
            with self._lock:
                # Steps that began less than a third of a lease ago are still covered.
                due = [key for key, began in self._active.items()
                       if time.monotonic() - began >= lease / 3]
            if not due:
                continue
            try:
                self.store.heartbeat(due, time.time() + lease)
            except Exception:  # noqa: BLE001 - a missed beat is retried next period
                logger.warning("step heartbeat failed", exc_info=True)


_thread_loops = threading.local()


def run_coroutine(coro: Any) -> Any:
    """Run an ``async def`` step's coroutine on this thread's own event loop."""
    loop = getattr(_thread_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _thread_loops.loop = loop
    return loop.run_until_complete(coro)


class StepRunner:
    """Executes one step function for a Celery task request."""

    def __init__(self, *, store: HistoryStore, orchestrator: Orchestrator,
                 errors: ErrorEncoder, dispatcher: Dispatcher, timers: TimerPolicy,
                 lease: float, max_lost: int, inline_steps: int = 0,
                 find_step: Callable[[str], Any] | None = None,
                 accept_inline: Callable[[h.StepCommand], bool] | None = None) -> None:
        self.store = store
        #: At most this many steps run inline in one task (0: never).
        self.inline_steps = inline_steps
        self.find_step = find_step or (lambda name: None)
        self.accept_inline = accept_inline
        self.max_lost = max_lost
        #: How long an outcome waits for an unreachable store (a Redis restart, a
        #: failover) before it is given up (the step then counts as lost, not failed).
        self.patience = 10 * lease
        self.orchestrator = orchestrator
        self.errors = errors
        self.dispatcher = dispatcher
        self.timers = timers
        self.lease = lease
        self.heartbeat = Heartbeat(store, lease)

    def __repr__(self) -> str:
        return f"<StepRunner lease={self.lease}s>"

    def execute(self, task: Any, name: str, fn: Callable[..., Any], max_retries: float,
                args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        marker = getattr(task.request, STEP_HEADER, None)
        if not marker:
            result = fn(*args, **kwargs)
            return run_coroutine(result) if inspect.iscoroutine(result) else result
        run_id, seq = str(marker[0]), int(marker[1])
        sent = (str(marker[3]), int(marker[2])) if len(marker) >= 4 else None
        slot = self.inline_slot(task)
        outcome = self._run(task, name, fn, max_retries, run_id, seq, args, kwargs, sent, slot)
        self.run_inline(slot)
        if outcome not in (h.STEP_COMPLETED, "skipped"):
            # Logged with its traceback, and recorded: Celery must not report the attempt
            # as "succeeded" (nor log it a second time as its own failure).
            raise Ignore()
        return None

    def inline_slot(self, task: Any) -> InlineSlot | None:
        """Room for the next steps this task may run itself (None: inlining is off, or
        the task has a time limit of its own that they would count against)."""
        if self.inline_steps <= 0 or self.accept_inline is None or limited(task.app, task):
            return None
        return InlineSlot(self.accept_inline, self.inline_steps)

    def run_inline(self, slot: InlineSlot | None) -> None:
        """Run the steps the orchestrator handed to ``slot``, one after the other."""
        while slot is not None:
            pending = slot.take()
            if pending is None:
                return
            run_id, command, claim = pending
            step: Any = self.find_step(command.name)  # accepted: it is registered here
            logger.info("run %s step #%d %s: runs inline", run_id, command.seq, command.name)
            self._run(step.task, command.name, step.fn, step.max_retries, run_id, command.seq,
                      tuple(command.args), dict(command.kwargs), None, slot, claim)

    def _run(self, task: Any, name: str, fn: Callable[..., Any], max_retries: float,
             run_id: str, seq: int, args: tuple[Any, ...], kwargs: dict[str, Any],
             sent: tuple[str, int] | None, slot: InlineSlot | None,
             claim: StepClaim | None = None) -> str:
        """Claim (unless the commit that scheduled it began it: ``claim``), run and
        record one attempt; returns the outcome's event type, or "skipped" when this
        copy must not run."""
        if claim is not None and claim.running_until is not None:
            claim = self._catch_up(run_id, seq, name, claim)
        if claim is None:
            claim = self._persist(run_id, seq, name, "beginning the step",
                                  lambda: self.store.begin_step(run_id, seq,
                                                                time.time() + self.lease,
                                                                sent))
        if not claim.run:
            logger.info("run %s step #%d %s: not running it (%s)", run_id, seq, name,
                        claim.status)
            return "skipped"
        meta = StepMetadata(run_id, f"{run_id}:{seq}", name, seq, claim.attempt)
        if claim.lost > self.max_lost:
            # Earlier attempts began and never finished: their worker died (OOM kill,
            # segfault, hard time limit). A budget of their own, apart from max_retries:
            # a step that kills its worker every time must not go on for ever.
            lost = WorkerLostError(
                f"step {name!r}: its worker was lost {claim.lost} times while running it "
                "(killed, out of memory, or over its hard time limit); "
                f"durable_max_lost_attempts is {self.max_lost}")
            logger.error("run %s step #%d %s: failed: %s", run_id, seq, name, lost)
            self._finish(meta, {"type": h.STEP_FAILED, "seq": seq, "at": time.time(),
                                "attempt": claim.attempt, "error": self.errors.encode(lost)})
            return h.STEP_FAILED
        logger.debug("run %s step #%d %s: attempt %d", run_id, seq, name, claim.attempt)
        reset = _current_step.set(meta)
        self.heartbeat.add(run_id, seq, claim.running_until)
        try:
            try:
                event = self._attempt(task, meta, fn, max_retries, claim.failures)(args, kwargs)
            finally:
                _current_step.reset(reset)
            # The heartbeat goes on while the outcome waits for an unreachable store: the
            # step must not look lost meanwhile (a beat never touches a recorded mark).
            if event["type"] == h.STEP_RETRYING:
                self._schedule_retry(meta, event, args, kwargs)
            else:
                self._finish(meta, event, slot)
        finally:
            self.heartbeat.remove(run_id, seq)
        return str(event["type"])

    def _catch_up(self, run_id: str, seq: int, name: str, claim: StepClaim
                  ) -> StepClaim | None:
        """A claim a commit made ahead of the run: kept as it is while its mark has most
        of a lease to live; else extended at once, if the mark is still the one the
        commit wrote (nobody found it lost and began it again); None when it is not,
        and the step is then claimed as a sent one would be."""
        assert claim.running_until is not None
        if claim.running_until - time.time() >= 2 * self.lease / 3:
            return claim  # the heartbeat thread's first beat comes in time
        extended = self._persist(run_id, seq, name, "extending its claim",
                                 lambda: self.store.extend_claim(
                                     run_id, seq, claim.running_until or 0.0,
                                     time.time() + self.lease))
        return dataclasses.replace(claim, running_until=None) if extended else None

    def _persist(self, run_id: str, seq: int, name: str, what: str,
                 call: Callable[[], Any]) -> Any:
        """``call()``, retried while the store is unreachable, for up to ``patience``."""
        delay, deadline = 0.1, time.monotonic() + self.patience
        while True:
            try:
                return call()
            except self.store.transient_errors as exc:
                if time.monotonic() + delay > deadline:
                    logger.error("run %s step #%d %s: the store stayed unreachable for %.0fs "
                                 "while %s; giving up (the step runs again later)", run_id,
                                 seq, name, self.patience, what)
                    raise
                logger.warning("run %s step #%d %s: the store is unreachable while %s (%s); "
                               "trying again in %.1fs", run_id, seq, name, what, exc, delay)
                time.sleep(delay)
                delay = min(2 * delay, 5.0)

    def _finish(self, meta: StepMetadata, event: dict[str, Any],
                slot: InlineSlot | None = None) -> None:
        """Record the outcome once and, if the run's lease is free, continue the run here
        (``slot``: the next step may be handed back to run inline)."""
        if not self._persist(meta.run_id, meta.seq, meta.name, "recording its outcome",
                             lambda: self.orchestrator.record_and_continue(
                                 meta.run_id, meta.seq, event, inline=slot)):
            logger.info("run %s step #%d %s: outcome already recorded; this one is dropped",
                        meta.run_id, meta.seq, meta.name)

    def _attempt(self, task: Any, meta: StepMetadata, fn: Callable[..., Any],
                 max_retries: float, failures: int
                 ) -> Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]:
        """A call of the step that returns its outcome as an event (completed, failed,
        or retrying with ``retry_at``). ``failures``: earlier attempts that failed (lost
        attempts do not count against ``max_retries``)."""
        failure = failures + 1  # which failure this attempt's would be
        errors = self.errors

        def event(kind: str, **fields: Any) -> dict[str, Any]:
            return {"type": kind, "seq": meta.seq, "at": time.time(), **fields}

        def call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
            try:
                value = fn(*args, **kwargs)
                if inspect.iscoroutine(value):
                    value = run_coroutine(value)
            except FatalError as exc:
                logger.error("run %s step #%d %s: attempt %d raised FatalError (no retry): %s",
                             meta.run_id, meta.seq, meta.name, meta.attempt, exc,
                             exc_info=True)
                return event(h.STEP_FAILED, attempt=meta.attempt, error=errors.encode(exc))
            except Exception as exc:  # noqa: BLE001 - any step error is retried or recorded
                if failure <= max_retries:
                    delay = exc.delay_seconds() if isinstance(exc, RetryableError) else None
                    if delay is None:
                        delay = backoff_delay(
                            failure, base=float(getattr(task, "retry_backoff", 0) or 1.0),
                            maximum=float(getattr(task, "retry_backoff_max", 600)),
                            jitter=bool(getattr(task, "retry_jitter", True)))
                    retrying = event(h.STEP_RETRYING, attempt=meta.attempt,
                                     error=errors.encode(exc))
                    retrying["retry_at"] = retrying["at"] + delay
                    logger.warning("run %s step #%d %s: attempt %d failed (%r); retrying in "
                                   "%.1fs", meta.run_id, meta.seq, meta.name, meta.attempt,
                                   exc, delay, exc_info=True)
                    return retrying
                logger.error("run %s step #%d %s: failed after %d attempt(s): %r",
                             meta.run_id, meta.seq, meta.name, meta.attempt, exc, exc_info=True)
                return event(h.STEP_FAILED, attempt=meta.attempt, error=errors.encode(exc))
            try:
                value = codec.check_value(f"the result of step {meta.name!r}", value)
            except TypeError as exc:
                logger.error("run %s step #%d %s: %s", meta.run_id, meta.seq, meta.name, exc)
                return event(h.STEP_FAILED, attempt=meta.attempt, error=errors.encode(exc))
            return event(h.STEP_COMPLETED, result=value)

        return call

    def _schedule_retry(self, meta: StepMetadata, event: dict[str, Any],
                        args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Record the failed attempt, then send the step again when it is due.

        A short delay is a countdown message. A delay beyond ``durable_timer_horizon``
        holds no message (a worker would keep it in memory, and the Redis transport
        would redeliver it after its visibility timeout): the retry mark's deadline is
        the retry time, and the sweeper sends the step then, as for a lost one.
        """
        retry_at = float(event["retry_at"])
        delay = retry_at - time.time()
        def record(deadline: float) -> bool:
            return bool(self._persist(meta.run_id, meta.seq, meta.name, "recording a retry",
                                      lambda: self.store.record_retry(meta.run_id, meta.seq,
                                                                      event, deadline)))

        if not self.timers.arm_now(retry_at, time.time()):
            if record(retry_at):
                self.store.watch(meta.run_id, retry_at)
            return
        if record(retry_at + self.lease):
            self.dispatcher.send_step(meta.run_id, meta.seq, meta.name, list(args), kwargs,
                                      countdown=max(0.0, delay))
