"""History in, commands out: the pure heart of the engine.

A :class:`Replayer` owns one workflow instance on its own
:class:`~.loop.WorkflowEventLoop`. :meth:`Replayer.feed` takes history events
in order: ``run_started`` starts the coroutine; each recorded command is
checked against what the workflow emits at the same ``seq``; each delivery
(step result, timer, cancellation) resolves its future and the loop runs to
idle before the next one. Feeding the whole history to a fresh replayer, or
the tail to a live one, gives the same state: that is what makes the per-process
cache of live instances safe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random as _random
import sys
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from ..errors import (
    ChildWorkflowFailed,
    HookConflictError,
    NonDeterminismError,
    StepFailed,
    WorkflowCancelled,
)
from . import history as h
from .loop import DEFAULT_BLOCK_DEADLINE, WorkflowEventLoop

logger = logging.getLogger("celery_durable.engine")

ErrorDecoder = Callable[[dict[str, Any], str], BaseException]


def _default_error_decoder(error: dict[str, Any], step: str) -> BaseException:
    return StepFailed(str(error.get("type")), str(error.get("message")), step)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How the workflow ended: ``status`` is completed, failed or cancelled."""

    status: str
    value: Any = None
    error: BaseException | None = None


@dataclasses.dataclass(frozen=True)
class WorkflowInfo:
    """What ``get_workflow_metadata()`` returns."""

    run_id: str
    workflow_name: str
    started_at: float
    #: The parent's run id, for a child run.
    parent_run_id: str | None = None


class Replayer:
    """One live workflow instance, advanced by feeding it history events.

    >>> r = Replayer(my_workflow, run_id="r1")          # doctest: +SKIP
    >>> r.feed(events)                                    # doctest: +SKIP
    >>> r.take_new_commands()                             # doctest: +SKIP
    [StepCommand(seq=1, name='proj.validate', ...)]
    """

    def __init__(self, workflow: Callable[..., Coroutine[Any, Any, Any]], *, run_id: str,
                 error_decoder: ErrorDecoder = _default_error_decoder,
                 block_deadline: float = DEFAULT_BLOCK_DEADLINE,
                 webhook_base_url: str = "", voided: set[int] | None = None) -> None:
        self.workflow = workflow
        self.run_id = run_id
        self.webhook_base_url = webhook_base_url
        #: The run's secret (from ``run_started``): webhook tokens derive from it.
        self.secret = run_id
        self._inboxes: dict[int, Any] = {}
        self.error_decoder = error_decoder
        self.loop: WorkflowEventLoop | None = None
        self.info: WorkflowInfo | None = None
        self.random = _random.Random()
        #: Number of history events consumed so far, and the last of them: the store's
        #: history must still hold it there (else Redis lost writes since).
        self.position = 0
        self.last_event: dict[str, Any] | None = None
        #: History positions a redrive voided: skipped, as if never recorded.
        self.voided = set(voided or ())
        #: Patches this run took (recorded markers, and markers emitted now).
        self._patches: set[str] = set()
        #: The highest command position the history holds (among the events applied).
        self._recorded_max = 0
        #: The events of the feed() under way, and the index of the one being applied.
        self._feeding: list[dict[str, Any]] = []
        self._feed_index = 0
        self._new_markers: list[h.PatchMarker] = []
        self.outcome: Outcome | None = None
        self._block_deadline = block_deadline
        self._next_seq = 1
        self._emitted: dict[int, h.Command] = {}
        self._recorded: dict[int, dict[str, Any]] = {}
        self._waiting: dict[int, asyncio.Future[Any] | asyncio.TimerHandle] = {}
        # Emitted commands that no history event has matched yet; whatever is
        # left once the whole available history is fed is new.
        self._unmatched: dict[int, h.Command] = {}
        self._divergence: NonDeterminismError | None = None
        self._recorded_python: str | None = None
        self._main: asyncio.Task[Any] | None = None
        self._discarded = False
        #: Set by the orchestrator: which run (by creation time) this instance replays.
        self.epoch = ""
        self.started: dict[str, Any] | None = None

    def __repr__(self) -> str:
        state = self.outcome.status if self.outcome else "running"
        return (f"<Replayer run={self.run_id!r} position={self.position} "
                f"next_seq={self._next_seq} {state}>")

    # -- feeding history ------------------------------------------------------
    def feed(self, events: Iterable[dict[str, Any]],
             tick: Callable[[], None] | None = None) -> None:
        """Apply history events in order (the whole history, or the next tail).

        ``tick`` is called every few hundred events (the orchestrator renews its
        lease there). Raises :class:`NonDeterminismError` when the workflow's
        commands and the history disagree; the instance must then be discarded.
        """
        events = events if isinstance(events, list) else list(events)
        # patched() looks ahead over what this feed holds (rarely: computed when asked).
        self._feeding = events
        voided = self.voided
        apply = self._apply
        for index, event in enumerate(events):
            self._feed_index = index
            if not voided or self.position not in voided:
                apply(event)
            self.position += 1
            self.last_event = event
            if self._divergence is not None:
                self._feeding = []
                raise self._divergence
            if tick is not None and self.position % 256 == 0:
                tick()
        self._feeding = []
        if self._recorded and self._divergence is None and self._main is not None:
            seq = min(self._recorded)
            state = "ended" if self._main.done() else "is waiting"
            self._diverge(seq, h.describe_event(self._recorded[seq]),
                          f"nothing (the workflow {state} without emitting it)")
        if self._divergence is not None:
            raise self._divergence

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind in h.DELIVERY_EVENTS:
            self._deliver(event)
        elif kind in h.COMMAND_EVENTS:
            self._match_recorded(event)
        elif kind == h.RUN_STARTED:
            self._start(event)
        elif kind == h.PATCH_MARKED:
            self._patches.add(str(event.get("patch")))
        # Informational and end events change nothing in the workflow.

    def _start(self, event: dict[str, Any]) -> None:
        if self._main is not None:
            raise NonDeterminismError("history holds run_started twice", position=0)
        self.info = WorkflowInfo(self.run_id, str(event.get("workflow")), float(event["at"]),
                                 event.get("parent"))
        #: The run_started event (its parent, for a child run).
        self.started = event
        self.random.seed(event.get("seed", self.run_id))
        self.secret = str(event.get("secret") or event.get("seed") or self.run_id)
        self._recorded_python = event.get("python")
        self.loop = WorkflowEventLoop(  # type: ignore[abstract]  # I/O methods left out on purpose
            float(event["at"]), self._on_timer, self._block_deadline)
        self.loop.workflow_context = self
        self._main = self.loop.create_task(
            self._run_workflow(event.get("args", []), event.get("kwargs", {})),
            name=f"workflow:{self.run_id}")
        self._main.add_done_callback(self._finished)
        self.loop.run_until_idle()

    async def _run_workflow(self, args: list[Any], kwargs: dict[str, Any]) -> Any:
        # Called inside the task, so a signature mismatch fails the run like any error.
        return await self.workflow(*args, **kwargs)

    def _match_recorded(self, event: dict[str, Any]) -> None:
        seq = int(event["seq"])
        if seq > self._recorded_max:
            self._recorded_max = seq
        command = self._emitted.get(seq)
        if command is None:
            self._recorded[seq] = event  # emitted later in this replay, matched then
        elif not command.matches(event):
            self._diverge(seq, h.describe_event(event), command.describe())
        else:
            self._unmatched.pop(seq, None)

    def _deliver(self, event: dict[str, Any]) -> None:
        assert self.loop is not None, "history must begin with run_started"
        self.loop.advance_to(float(event["at"]))
        kind = event["type"]
        if kind == h.CANCEL_REQUESTED:
            if self._main is not None and not self._main.done():
                self._main.cancel()
        elif kind in h.INBOX_EVENTS:
            self._deliver_to_inbox(event)
        else:
            seq = int(event["seq"])
            if seq not in self._emitted:
                self._diverge(seq, f"{kind} for #{seq}",
                              f"no command #{seq} (the workflow emitted {self._next_seq - 1})")
                return
            waiter = self._waiting.pop(seq, None)
            if waiter is None:
                return  # delivered twice, or its waiter was dropped: nothing to do
            if kind == h.TIMER_FIRED:
                assert isinstance(waiter, asyncio.TimerHandle)
                self.loop.fire(waiter)
            elif isinstance(waiter, asyncio.Future) and not waiter.done():
                if kind in (h.STEP_COMPLETED, h.CHILD_COMPLETED):
                    waiter.set_result(event.get("result"))
                elif kind in (h.CHILD_FAILED, h.CHILD_CANCELLED):
                    waiter.set_exception(self._child_error(seq, event))
                else:
                    command = self._emitted[seq]
                    name = getattr(command, "name", "?")
                    error = self.error_decoder(event.get("error") or {}, name)
                    if isinstance(error, StopIteration):  # futures refuse StopIteration
                        wrapped = RuntimeError(f"step {name!r} raised StopIteration")
                        wrapped.__cause__ = error
                        error = wrapped
                    waiter.set_exception(error)
        self.loop.run_until_idle()

    def _child_error(self, seq: int, event: dict[str, Any]) -> BaseException:
        """A child's failure as its own exception type, else ChildWorkflowFailed."""
        child = h.child_run_id(self.run_id, seq)
        if event["type"] == h.CHILD_CANCELLED:
            return WorkflowCancelled(f"child run {child!r} was cancelled")
        error = self.error_decoder(event.get("error") or {}, "")
        if isinstance(error, StepFailed):
            return ChildWorkflowFailed(error.type, error.message, child)
        return error

    def _deliver_to_inbox(self, event: dict[str, Any]) -> None:
        seq = int(event["seq"])
        inbox = self._inboxes.get(seq)
        expected_kind = "webhook" if event["type"] == h.WEBHOOK_RECEIVED else "hook"
        if inbox is not None and event["type"] != h.HOOK_CONFLICT and \
                inbox.kind != expected_kind:
            self._diverge(seq, f"{event['type']} for #{seq}",
                          f"a {inbox.kind} at #{seq}, not a {expected_kind}")
            return
        if inbox is None:
            self._diverge(seq, f"{event['type']} for #{seq}",
                          f"no webhook or hook #{seq} (the workflow emitted {self._next_seq - 1})")
            return
        kind = event["type"]
        if kind == h.WEBHOOK_RECEIVED:
            inbox.deliver(event.get("request") or {})
        elif kind == h.HOOK_RECEIVED:
            inbox.deliver(event.get("payload"))
        else:
            inbox.fail(HookConflictError.held_by(inbox.token, str(event.get("holder"))))

    def _finished(self, task: asyncio.Task[Any]) -> None:
        if self._discarded or self.outcome is not None:
            return
        if task.cancelled():
            self.outcome = Outcome("cancelled")
        elif task.exception() is not None:
            self.outcome = Outcome("failed", error=task.exception())
        else:
            self.outcome = Outcome("completed", value=task.result())

    # -- what workflow code calls (through the primitives) ------------------------
    def patched(self, patch: str) -> bool:
        """True where this run runs code that has ``patch``: a history that holds its
        marker, or a point beyond every command the history holds (recorded now); False
        where the history was recorded without it (commands at or after this point)."""
        if patch in self._patches:
            return True
        # The rest of what is being fed: a marker, or commands at or after this point.
        for event in self._feeding[self._feed_index + 1:]:
            kind = event.get("type")
            if kind == h.PATCH_MARKED and event.get("patch") == patch:
                self._patches.add(patch)
                return True
            if kind in h.COMMAND_EVENTS and int(event.get("seq") or 0) >= self._next_seq:
                return False
        if self._recorded_max >= self._next_seq or self._discarded:
            return False
        self._patches.add(patch)
        self._new_markers.append(h.PatchMarker(patch=patch, at_seq=self._next_seq))
        return True

    def reserve_seq(self) -> int:
        """Number a command now, at the call site, to be emitted later.

        Steps take their number when called, not when their coroutine first runs,
        so coroutines wrapped into tasks in an unstable order (``asyncio.as_completed``
        builds its tasks from a set) still get the same numbers on every replay.
        """
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def schedule(self, command: h.Command, seq: int | None = None) -> asyncio.Future[Any]:
        """Emit ``command``; the returned future settles when its outcome is delivered."""
        assert self.loop is not None
        future = self.loop.create_future()
        if self._discarded:
            future.cancel()  # an instance being discarded waits for nothing
            return future
        self._emit(command, seq)
        if self._divergence is None:
            self._waiting[command.seq] = future
        return future

    def emit_now(self, command: h.Command, seq: int | None = None, inbox: Any = None) -> None:
        """Emit a command that needs no outcome future (webhooks, hooks, responses)."""
        self._emit(command, seq)
        if inbox is not None and self._divergence is None and command.seq > 0:
            self._inboxes[command.seq] = inbox

    def token_of(self, seq: int) -> str | None:
        """The token of the webhook or hook created at ``seq``."""
        inbox = self._inboxes.get(seq)
        return inbox.token if inbox is not None else None

    def live_tokens(self) -> list[tuple[str, str]]:
        """(kind, token) of webhooks and hooks not disposed: released when the run ends."""
        return [(inbox.kind, inbox.token) for inbox in self._inboxes.values()
                if not inbox.disposed]

    def _on_timer(self, handle: asyncio.TimerHandle) -> None:
        command = h.TimerCommand(due=handle.when())
        self._emit(command)
        if self._divergence is None:
            self._waiting[command.seq] = handle

    def _emit(self, command: h.Command, seq: int | None = None) -> None:
        if self._discarded or self._divergence is not None:
            command.seq = -1
            return
        if seq is None:
            seq = self.reserve_seq()
        command.seq = seq
        self._emitted[command.seq] = command
        recorded = self._recorded.pop(command.seq, None)
        if recorded is None:
            self._unmatched[command.seq] = command
        elif not command.matches(recorded):
            self._diverge(command.seq, h.describe_event(recorded), command.describe())

    def _diverge(self, seq: int, expected: str, actual: str) -> None:
        if self._divergence is not None:
            return
        note = ""
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        if self._recorded_python and self._recorded_python != here:
            note = (f" (the history was recorded on Python {self._recorded_python}, "
                    f"this replay runs on {here}; asyncio's ordering differs between them)")
        self._divergence = NonDeterminismError(
            f"run {self.run_id!r} diverged from its history at position #{seq}: "
            f"the history holds {expected}, the workflow code now produced {actual}{note}. "
            "Workflow code must replay the same way: deploy a compatible version, or start "
            "a new run.", position=seq, expected=expected, actual=actual)

    # -- what the orchestrator reads after feeding -------------------------------
    def take_new_commands(self) -> list[h.Command]:
        """Commands emitted since the last call that the history does not hold yet."""
        new: list[h.Command] = list(self._new_markers)
        new += [self._unmatched[seq] for seq in sorted(self._unmatched)]
        self._unmatched.clear()
        self._new_markers.clear()
        return new

    def command(self, seq: int) -> h.Command | None:
        """The command this instance emitted at ``seq``, if any."""
        return self._emitted.get(seq)

    def pending_steps(self) -> list[int]:
        """Seqs of steps whose outcome has not been delivered yet."""
        return sorted(seq for seq, w in self._waiting.items() if isinstance(w, asyncio.Future))

    @property
    def waiting_on(self) -> list[int]:
        """Seqs of commands whose outcome the workflow still waits for."""
        return sorted(self._waiting)

    def now(self) -> float:
        assert self.loop is not None
        return self.loop.time()

    def discard(self) -> None:
        """Stop this instance: cancel its tasks and drain them on this thread.

        Commands emitted while unwinding are dropped; nothing is committed.
        """
        if self._discarded or self.loop is None:
            self._discarded = True
            return
        self._discarded = True
        loop = self.loop
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        try:
            for _ in range(10):
                # Cancel again each round: cleanup code may await after a cancel.
                for task in tasks:
                    if not task.done():
                        task.cancel()
                loop.run_until_idle()
                if all(t.done() for t in tasks):
                    break
        except Exception:  # noqa: BLE001 - unwinding a discarded instance
            logger.debug("error while discarding run %s", self.run_id, exc_info=True)
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: no "never retrieved" warning
        loop.close()
