"""Lease, replay, commit, dispatch: the one place the engine meets the store.

``Orchestrator.drive(run_id)`` takes the run's lease, feeds the history tail to
the run's live instance (from the per-process cache, else a fresh replay),
commits the new commands in one script, dispatches them, and releases the
lease -- or, when outcomes arrived meanwhile, keeps it and goes round again, so
wake-ups that arrive during a replay are coalesced and never lost.
``record_and_continue`` is how an outcome enters a run (a step's result, a fired
timer): recorded once, and the run continued by the process that recorded it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from . import codec
from .children import Children
from .engine import history as h
from .engine.cache import InstanceCache
from .engine.replay import Outcome, Replayer
from .errors import CorruptHistory, LeaseLost, NonDeterminismError, WorkflowBlockedError
from .messages import Dispatcher
from .store.base import Commit, HistoryStore, Loaded, StepClaim, TokenClaim
from .timers import TimerPolicy

logger = logging.getLogger("celery_durable.orchestrator")

WorkflowFn = Callable[..., Coroutine[Any, Any, Any]]
#: The run_started event's builder, where the bench and older code look for it.
started_event = h.started_event


class InlineSink(Protocol):
    """Where a commit may hand its one next step instead of sending it (see inline.py)."""

    def wants(self, command: h.StepCommand) -> bool: ...

    def hand(self, run_id: str, command: h.StepCommand, claim: StepClaim | None) -> None: ...


class ErrorEncoder(Protocol):
    """Exceptions to JSON-safe dicts and back (:class:`~.error_codec.ErrorCodec`)."""

    def encode(self, exc: BaseException) -> dict[str, Any]: ...

    def decode(self, error: dict[str, Any], step: str | None = None) -> BaseException: ...


def new_token() -> str:
    """A fresh lease token (one per drive of a run)."""
    return uuid.uuid4().hex


@dataclasses.dataclass
class Orchestrator:
    """Drives runs; one per :class:`~celery_durable.Durable` and process."""

    store: HistoryStore
    #: The function of a registered workflow, by name (None if this process lacks it).
    find_workflow: Callable[[str], WorkflowFn | None]
    dispatcher: Dispatcher
    errors: ErrorEncoder
    cache: InstanceCache
    timers: TimerPolicy
    lease: float
    block_deadline: float
    webhook_base_url: str

    def __post_init__(self) -> None:
        self.children = Children(self.store, self.dispatcher, self.lease)

    def record_and_continue(self, run_id: str, seq: int, event: dict[str, Any], *,
                            timer_due: float | None = None,
                            inline: InlineSink | None = None) -> bool:
        """Record command ``seq``'s outcome once; if the run's lease is free, continue
        the run here, in this process (saving a broker round trip).

        For a timer, ``timer_due`` is the due time its commit marked. Returns False
        when the outcome was not recorded: another copy recorded one first, the run
        ended, or the timer does not match a committed one.
        """
        token = new_token()
        # Read the history tail in the same round trip, from where this process's live
        # instance of the run stands, in case the lease comes with the outcome.
        recorded = self.store.record(run_id, seq, event, token, timer_due=timer_due,
                                     read_from=self.position(run_id))
        if recorded.recorded and recorded.leased and self.drive(
                run_id, token, loaded=recorded.loaded, inline=inline) == "unknown-workflow":
            self.dispatcher.wake(run_id)  # this worker lacks the workflow: hand it on
        return recorded.recorded

    def send(self, run_id: str, command: h.Command) -> str | None:
        """Carry out what a committed command needs: a step's message (returns its
        queue), a timer's, or a child run's start."""
        if isinstance(command, h.StepCommand):
            return self.dispatcher.send_step(run_id, command.seq, command.name, command.args,
                                             command.kwargs)
        if isinstance(command, h.TimerCommand):
            self.dispatcher.send_timer(run_id, command.seq, command.due)
        elif isinstance(command, h.ChildCommand):
            self.children.start(run_id, command)
        return None

    @staticmethod
    def _inline_choice(commands: list[h.Command], inline: InlineSink | None
                       ) -> h.StepCommand | None:
        """The one new step to hand to ``inline``: only when it is the only new step or
        child (a fan-out goes through the broker, no branch favoured)."""
        if inline is None:
            return None
        steps = [c for c in commands if isinstance(c, (h.StepCommand, h.ChildCommand))]
        if len(steps) == 1 and isinstance(steps[0], h.StepCommand) and inline.wants(steps[0]):
            return steps[0]
        return None

    def _queue_of(self, command: h.Command | None) -> str:
        """Where a step's message goes ("" for a child run's start: no message)."""
        if isinstance(command, h.StepCommand):
            return self.dispatcher.queue_of(command.name)
        return ""

    def position(self, run_id: str) -> int:
        """Where this process's live instance of the run stands (0 without one): the
        history index to read from when this process takes the lease."""
        return self.cache.position(run_id)

    def drive(self, run_id: str, token: str | None = None, recover: bool = False,
              loaded: Loaded | None = None, inline: InlineSink | None = None) -> str:
        """Advance ``run_id`` as far as its history allows; return what happened.

        With ``token`` the caller already holds the lease (it took it when it
        recorded an outcome), and ``loaded`` may be what it read then. ``recover``
        also re-dispatches steps whose worker stopped answering. Returns ``"busy"``
        (someone else holds the lease), ``"waiting"``, ``"lease-lost"``,
        ``"unknown-workflow"`` or the run's final status.
        """
        token = token or new_token()
        while True:
            replayer = self.cache.take(run_id)
            start = replayer.position if replayer else 0
            try:
                if loaded is None or loaded.start != start:
                    loaded = self.store.load(run_id, token, start)
                if loaded is not None and loaded.status == "running" and replayer is None:
                    check_started(run_id, loaded.events)
            except CorruptHistory as exc:
                if replayer is not None:
                    replayer.discard()
                return self._fail_unreadable(run_id, token, exc)
            if loaded is None:
                if replayer is not None:
                    self.cache.put(replayer)
                return "busy"
            if replayer is not None and loaded.status == "running" and (
                    replayer.epoch != loaded.created_at or loaded.length < replayer.position
                    or loaded.before != replayer.last_event
                    # A redrive voids events this instance may have been fed already.
                    or any(e.get("type") == h.RUN_REDRIVEN for e in loaded.events)):
                if replayer.epoch == loaded.created_at:
                    logger.warning(
                        "run %s: its history (%d events) no longer holds what this worker's "
                        "live instance had seen at #%d: Redis lost writes (a restart "
                        "without AOF, a failover); replaying it from the start", run_id,
                        loaded.length, replayer.position - 1)
                replayer.discard()  # an older run that had the same id, or a rollback
                loaded = None
                continue
            if loaded.status != "running":
                if replayer is not None:
                    replayer.discard()
                return loaded.status or "missing"
            if replayer is None:
                replayer = self._new_replayer(run_id, loaded.events)
                if replayer is None:
                    self.store.release(run_id, token)
                    return "unknown-workflow"
                replayer.epoch = loaded.created_at
            outcome = self._advance(run_id, token, replayer, loaded.events, recover, inline)
            recover, loaded = False, None
            if outcome != "again":
                return outcome

    def _advance(self, run_id: str, token: str, replayer: Replayer,
                 events: list[dict[str, Any]], recover: bool,
                 inline: InlineSink | None = None) -> str:
        """Feed, commit, dispatch once; "again" when unseen outcomes arrived meanwhile."""
        renew = _LeaseRenewer(self.store, run_id, token, self.lease)
        final: dict[str, Any] | None = None
        commands: list[h.Command] = []
        try:
            replayer.feed(events, tick=renew)
            commands = replayer.take_new_commands()
        except LeaseLost:
            replayer.discard()
            return "lease-lost"
        except _StoreFailed as failure:  # Redis unreachable: not the workflow's fault
            replayer.discard()
            raise failure.__cause__ from None  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - divergence, blocking code, engine faults
            log = logger.error if isinstance(exc, (NonDeterminismError, WorkflowBlockedError)) \
                else logger.exception
            log("run %s: replay failed, the run fails: %s", run_id, exc)
            final = {"type": h.RUN_FAILED, "at": time.time(), "error": self.errors.encode(exc)}
        now = time.time()
        if final is None and replayer.outcome is not None:
            final = self._final_event(run_id, replayer, replayer.outcome, now)
        lost = []
        if recover and final is None:
            lost = self.store.check_inflight(run_id, now, self.dispatcher.queue_is_empty)[0]
        inlined = self._inline_choice(commands, inline) if final is None and not lost \
            else None
        # Steps are marked queued on the queue their message goes to, in the commit itself
        # (a message that never gets there is found lost: see store/marks.py); the one run
        # inline is begun by the commit if it releases the lease (its first attempt,
        # running until a lease from now: lost like any running step if this process
        # dies before it ends), else marked being published.
        queued = [(c.seq, self._queue_of(c)) for c in commands
                  if isinstance(c, (h.StepCommand, h.ChildCommand)) and c is not inlined]
        queued += [(seq, self._queue_of(replayer.command(seq))) for seq in lost]
        begin = None if inlined is None else (inlined.seq, now + self.lease)
        commit = Commit(
            events=[command.to_event(now) for command in commands], queued=queued, final=final,
            watch_at=now + self.lease if queued or begin else None, begin=begin,
            # One decision per timer: armed ones get their ETA message right after the
            # commit; the others wait in the index for the sweeper.
            timers=self.timers.plan(commands, now))
        self._tokens(run_id, replayer, commands, commit, now)
        if final is not None:
            # A run that ends here still starts the detached runs it asked for: before its
            # end is visible (their ids are fixed, so a refused commit changes nothing).
            for command in commands:
                if isinstance(command, h.ChildCommand) and command.detached:
                    self.send(run_id, command)
        try:
            committed = self.store.commit(run_id, token, commit)
        except LeaseLost as exc:
            logger.warning("%s", exc)
            replayer.discard()
            return "lease-lost"
        if final is not None:  # nothing to send for a run that just ended
            replayer.discard()
            self.children.run_ended(run_id, replayer.started or {}, final)
            status = str(final["type"]).removeprefix("run_")
            logger.info("run %s %s", run_id, status)
            return status
        armed = {seq for seq, _, is_armed in commit.timers if is_armed}
        for command in commands:
            if isinstance(command, h.TimerCommand) and command.seq not in armed:
                continue  # the sweeper hands it to a message when it comes due
            if command is inlined and inline is not None:
                # No message: the caller runs it, begun by the commit or, when the commit
                # kept the lease for events it has not read, by begin_step later.
                inline.hand(run_id, inlined, committed.begun)
                continue
            self.send(run_id, command)
        for seq in lost:
            lost_command = replayer.command(seq)
            if lost_command is not None:
                logger.warning("run %s: step #%d is due again (a long retry, or its worker or "
                               "message was lost); sending it", run_id, seq)
                self.send(run_id, lost_command)
        if committed.released and not replayer.pending_steps():
            # It waits only on the outside world (a sleep, a webhook): nothing of it can be
            # lost, so the sweeper need not look. Whatever wakes it re-adds it.
            self.store.unwatch_if_idle(run_id)
        self.cache.put(replayer)
        return "waiting" if committed.released else "again"

    def triage(self, run_id: str) -> str:
        """The sweeper's look at a run it watches, done where the sweeper runs (no
        message, no replay): ``"drive"`` when work was lost or events wait unseen, so a
        worker must replay it; else it schedules the next look (``"waiting"``), stops
        watching (``"idle"``), or gives the status of a run that ended."""
        now = time.time()
        lost, next_due = self.store.check_inflight(run_id, now, self.dispatcher.queue_is_empty)
        state = self.store.state(run_id)
        if state is None or not state.running:
            self.store.unwatch_if_idle(run_id)
            return state.status if state is not None else "missing"
        if lost or state.dirty or state.replaying:
            return "drive"
        if next_due is not None:
            self.store.watch(run_id, next_due + 0.05)  # just after it could be lost
            return "waiting"
        self.store.unwatch_if_idle(run_id)
        return "idle"

    def recover(self, run_id: str) -> str:
        """Drive a run the sweeper found lost work or unseen events in (the
        ``orchestrate(recover=True)`` message), re-sending what was lost."""
        outcome = self.drive(run_id, recover=True)
        if outcome != "busy" and self.store.check_inflight(run_id, time.time())[1] is None:
            self.store.unwatch_if_idle(run_id)
        return outcome

    def _tokens(self, run_id: str, replayer: Replayer, commands: list[h.Command],
                commit: Commit, now: float) -> None:
        """Webhook/hook tokens and held responses this commit implies.

        Tokens are claimed before the commit (claiming again is harmless if the commit
        fails); a hook token another live run holds becomes a ``hook_conflict``
        delivery in the same commit, replayed at once.
        """
        claims = [TokenClaim(c.token, c.kind, c.seq, c.method, c.respond_with)
                  for c in commands if isinstance(c, h.WebhookCommand)]
        commit.inboxes = [(c.seq, c.kind, c.token) for c in claims]
        for claim, holder in self.store.claim_tokens(run_id, claims) if claims else []:
            holder_state = self.store.state(holder)
            if holder_state is None or not holder_state.running or \
                    self._abandoned(holder, claim, now):
                # Its holder ended or disposed it without releasing the token (it died
                # in between): take it over, unless a third run took it over first.
                taken = self.store.claim_tokens(run_id, [claim], takeover=holder)
                if not taken:
                    continue
                holder = taken[0][1]
            commit.events.append({"type": h.HOOK_CONFLICT, "at": now, "seq": claim.seq,
                                  "holder": holder})
            commit.inboxes.remove((claim.seq, claim.kind, claim.token))
            commit.keep_lease = True
        for command in commands:
            if isinstance(command, h.DisposeCommand):
                token = replayer.token_of(command.target)
                if token:
                    commit.disposed.append((command.target, token))
            elif isinstance(command, h.RespondCommand):
                commit.responses.append((command.request_id, {
                    "status": command.status, "body": command.body,
                    "headers": command.headers, "base64": command.base64}))

    def _abandoned(self, holder: str, claim: TokenClaim, now: float) -> bool:
        """A live holder's claim its commit never marked (or its disposal unmarked),
        older than a lease: that holder died between two round trips."""
        if self.store.holds_inbox(holder, claim.kind, claim.token):
            return False
        info = self.store.token_info(claim.token)
        return (info.claimed_at if info is not None else 0.0) < now - self.lease

    def _fail_unreadable(self, run_id: str, token: str, exc: CorruptHistory) -> str:
        """End a run whose history cannot be read: once, with an error naming the entry."""
        logger.error("%s; the run fails (its history is kept as it is)", exc)
        final = {"type": h.RUN_FAILED, "at": time.time(), "error": self.errors.encode(exc)}
        try:
            self.store.commit(run_id, token, Commit(final=final))
        except LeaseLost:
            return "lease-lost"
        return "failed"

    def _new_replayer(self, run_id: str, events: list[dict[str, Any]]) -> Replayer | None:
        started = events[0] if events else {}
        name = started.get("workflow")
        workflow = self.find_workflow(str(name))
        if workflow is None:
            logger.error("run %s: workflow %r is not registered in this worker; import the "
                         "module that defines it (celery -A ... or the imports setting)",
                         run_id, name)
            return None
        return Replayer(workflow, run_id=run_id, error_decoder=self.errors.decode,
                        block_deadline=self.block_deadline,
                        webhook_base_url=self.webhook_base_url,
                        voided=h.redriven_positions(events))

    def _final_event(self, run_id: str, replayer: Replayer, outcome: Outcome,
                     now: float) -> dict[str, Any]:
        if outcome.status == "completed":
            name = replayer.info.workflow_name if replayer.info else "?"
            try:
                value = codec.check_value(f"the result of workflow {name!r}", outcome.value)
            except TypeError as exc:
                return {"type": h.RUN_FAILED, "at": now, "error": self.errors.encode(exc)}
            return {"type": h.RUN_COMPLETED, "at": now, "result": value}
        if outcome.status == "cancelled":
            return {"type": h.RUN_CANCELLED, "at": now}
        assert outcome.error is not None
        logger.info("run %s: workflow raised %r", run_id, outcome.error)
        return {"type": h.RUN_FAILED, "at": now, "error": self.errors.encode(outcome.error)}


def check_started(run_id: str, events: list[dict[str, Any]]) -> None:
    """Refuse a history whose first entry is not a ``run_started`` replay can start from."""
    started = events[0] if events else None
    if not isinstance(started, dict) or started.get("type") != h.RUN_STARTED:
        raise CorruptHistory(f"run {run_id!r}: history entry #0 is not run_started: "
                             f"{str(started)[:80]}", 0)
    wrong = [name for name, kind in (("workflow", str), ("at", (int, float)), ("args", list),
                                      ("kwargs", dict))
             if not isinstance(started.get(name), kind) or isinstance(started.get(name), bool)]
    if wrong:
        raise CorruptHistory(f"run {run_id!r}: its run_started (history entry #0) lacks or "
                             f"garbles {', '.join(wrong)}", 0)


class _LeaseRenewer:
    """Called by the replayer as it goes: keeps the lease through a long replay."""

    def __init__(self, store: HistoryStore, run_id: str, token: str, lease: float) -> None:
        self.store = store
        self.run_id = run_id
        self.token = token
        self.every = lease / 3
        self.last = time.monotonic()

    def __call__(self) -> None:
        if time.monotonic() - self.last < self.every:
            return
        try:
            renewed = self.store.renew(self.run_id, self.token)
        except Exception as exc:
            raise _StoreFailed() from exc
        if not renewed:
            raise LeaseLost(f"run {self.run_id!r}: lease lost during a long replay")
        self.last = time.monotonic()


class _StoreFailed(Exception):
    """The store failed while replaying: re-raised as its cause, never a workflow error."""
