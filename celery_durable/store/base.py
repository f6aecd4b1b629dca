"""The history store's interface: what the orchestrator and adapters need.

It knows events as dicts and nothing of asyncio. One implementation lives in
:mod:`.redis`; another store only has to keep these promises.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class RunState:
    """A run's state as the store keeps it (not its history)."""

    status: str
    workflow: str
    #: When the run was created (UNIX seconds).
    created_at: float
    #: When it ended (UNIX seconds), if it has.
    ended_at: float | None = None
    #: Events arrived that the lease holder has not seen.
    dirty: bool = False
    #: A replay took the lease and has not committed (if the lease is gone, it died).
    replaying: bool = False
    cancel_requested: bool = False
    #: The final event (``run_completed``/``run_failed``/``run_cancelled``) once it ended.
    outcome: dict[str, Any] | None = None
    #: Tells this run from an older one that had the same id (the cache checks it).
    epoch: str = ""

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclasses.dataclass(frozen=True)
class TokenInfo:
    """What a live webhook or hook token maps to."""

    run_id: str
    seq: int
    kind: str
    #: The only HTTP method a webhook accepts (None: any).
    method: str | None = None
    #: ``None`` (202), ``"manual"``, or a static response's JSON form.
    respond_with: Any = None
    #: When the token was claimed (UNIX seconds).
    claimed_at: float = 0.0


@dataclasses.dataclass(frozen=True)
class RunWaits:
    """What a running run waits on now, as the store sees it."""

    #: A replay holds the lease, or events wait unseen: the run is moving.
    busy: bool
    #: Steps in flight (queued, taken, running or waiting to retry).
    steps: int
    #: Timers not fired: (seq, due time).
    timers: list[tuple[int, float]]
    #: Live webhooks and hooks: (seq, kind, token).
    inboxes: list[tuple[int, str, str]]


@dataclasses.dataclass(frozen=True)
class StepClaim:
    """What a worker learns when it begins a step: run it or not, and which attempt."""

    run: bool
    #: This attempt's number: every attempt that began counts, lost ones too.
    attempt: int = 0
    status: str | None = None
    #: Earlier attempts that recorded a failure (and were retried).
    failures: int = 0
    #: When its running mark expires (UNIX seconds), for a claim made ahead of the run
    #: (a commit that began its inline step); None: the caller begins it and beats now.
    running_until: float | None = None

    @property
    def lost(self) -> int:
        """Earlier attempts that began and never recorded anything: their worker died."""
        return max(0, self.attempt - 1 - self.failures)


@dataclasses.dataclass(frozen=True)
class Loaded:
    """The history tail a lease holder reads, with the run's status.

    ``created_at`` tells this run from an older one that had the same id.
    """

    status: str
    events: list[dict[str, Any]]
    created_at: str = ""
    #: The history index of ``events[0]``.
    start: int = 0
    #: The whole history's length (a live instance further on means Redis lost writes).
    length: int = 0
    #: The event just before ``start`` (None from 0): a live instance that saw another
    #: one there is ahead of a history that lost writes.
    before: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class Recorded:
    """Result of recording an outcome: was it new, did this worker get the lease, and
    (when asked) the history tail it then holds."""

    recorded: bool
    leased: bool
    loaded: Loaded | None = None


@dataclasses.dataclass
class Commit:
    """What one replay writes: new events, and the index updates they imply."""

    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: (seq, queue) of steps whose message is about to be sent to that queue; a queue of
    #: "" marks the start of a child run instead.
    queued: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    #: The run's last event, if it ended.
    final: dict[str, Any] | None = None
    #: When the sweeper should check the run if nothing happens (None: leave as is).
    watch_at: float | None = None
    #: New timers: (seq, due time, armed = an ETA message is sent now).
    timers: list[tuple[int, float, bool]] = dataclasses.field(default_factory=list)
    #: New webhooks and hooks: (seq, kind, token).
    inboxes: list[tuple[int, str, str]] = dataclasses.field(default_factory=list)
    #: Webhooks and hooks disposed: (seq, token).
    disposed: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    #: Answers to webhook requests held open: (request id, response).
    responses: list[tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=list)
    #: Keep the lease: the events hold deliveries the caller replays at once.
    keep_lease: bool = False
    #: (seq, running deadline) of the one new step the caller runs itself at once
    #: (inline continuation): the commit begins it as ``begin_step`` would.
    begin: tuple[int, float] | None = None


@dataclasses.dataclass(frozen=True)
class Committed:
    """What a commit did: whether the lease was released, and the step it began."""

    #: False: outcomes the caller has not seen arrived meanwhile; it keeps the lease.
    released: bool
    #: The claim on :attr:`Commit.begin`'s step (None when none was asked for, or its
    #: outcome was somehow recorded already).
    begun: StepClaim | None = None


@dataclasses.dataclass(frozen=True)
class TokenClaim:
    """A webhook or hook token to map to this run."""

    token: str
    kind: str
    seq: int
    method: str | None = None
    respond_with: Any = None


class HistoryStore(abc.ABC):
    """Per-run append-only histories with a lease, and the global indexes."""

    #: Errors that mean "the store is unreachable for now" (a restart, a failover):
    #: worth retrying, never a verdict on the run.
    transient_errors: tuple[type[BaseException], ...] = ()

    @abc.abstractmethod
    def create_run(self, run_id: str, workflow: str, started: dict[str, Any],
                   watch_at: float) -> str | None:
        """Write ``run_started``; None when created, else (nothing written) the workflow
        name of the run that already holds ``run_id``."""

    @abc.abstractmethod
    def load(self, run_id: str, token: str, start: int) -> Loaded | None:
        """Take or keep the lease and read events from ``start``; None if another holds it.

        Raises :class:`~celery_durable.errors.CorruptHistory` (the lease then held) if
        an entry cannot be read.
        """

    @abc.abstractmethod
    def commit(self, run_id: str, token: str, commit: Commit) -> Committed:
        """Append a replay's events; release the lease unless new events wait.

        ``released`` is True when the lease was released (or the run ended), False
        when the caller still holds it because events arrived it has not seen;
        ``begun`` is the claim on ``commit.begin``'s step, begun in the same write.
        Raises :class:`~celery_durable.errors.LeaseLost` if the lease is gone.
        """

    @abc.abstractmethod
    def release(self, run_id: str, token: str) -> None:
        """Give the lease back without committing anything."""

    @abc.abstractmethod
    def renew(self, run_id: str, token: str) -> bool:
        """Extend a held lease (during a long replay); False if it was lost."""

    @abc.abstractmethod
    def begin_step(self, run_id: str, seq: int, deadline: float,
                   sent: tuple[str, int] | None = None) -> StepClaim:
        """Mark a step running until ``deadline``; count the attempt.

        ``sent``: the queue its message came from and when it was sent (ms): the
        queue's consumed mark moves on to it, so older messages of that queue still
        marked queued are known to be lost.
        """

    @abc.abstractmethod
    def heartbeat(self, steps: list[tuple[str, int]], deadline: float) -> None:
        """Extend the deadline of running steps."""

    @abc.abstractmethod
    def extend_claim(self, run_id: str, seq: int, running_until: float,
                     deadline: float) -> bool:
        """Extend a running step's deadline to ``deadline`` only if its mark still says
        ``running_until`` (as a claim made ahead of the run left it); False if not."""

    @abc.abstractmethod
    def record(self, run_id: str, seq: int, event: dict[str, Any], token: str,
               timer_due: float | None = None, read_from: int | None = None) -> Recorded:
        """Append an outcome once; try to take the lease for ``token`` (unless empty).

        For a timer, ``timer_due`` must be the due time its command committed. With
        ``read_from``, a taken lease comes with the history from that index, as
        :meth:`load` would give it.
        """

    @abc.abstractmethod
    def record_retry(self, run_id: str, seq: int, event: dict[str, Any], deadline: float) -> bool:
        """Append ``step_retrying`` and expect the next attempt before ``deadline``."""

    @abc.abstractmethod
    def redrive(self, run_id: str, event: dict[str, Any], seqs: list[int]) -> bool:
        """A failed run runs again: append ``run_redriven``, status ``running``, fresh
        attempts for steps ``seqs`` (sent again at once); False if it is not failed."""

    @abc.abstractmethod
    def list_runs(self, status: str | None = None, workflow: str | None = None,
                  limit: int = 50, cursor: str | None = None) -> list[Any]:
        """Runs newest first (``RunSummary`` rows), older than ``cursor`` (a row's
        ``cursor``), filtered by status and workflow."""

    @abc.abstractmethod
    def trim_ended(self, now: float, limit: int = 500) -> int:
        """Unlist runs whose retention passed; returns how many."""

    @abc.abstractmethod
    def request_cancel(self, run_id: str, event: dict[str, Any]) -> bool:
        """Append ``cancel_requested`` once; False if the run has ended."""

    @abc.abstractmethod
    def state(self, run_id: str) -> RunState | None:
        """The run's state, or None if there is no such run."""

    @abc.abstractmethod
    def events(self, run_id: str) -> list[dict[str, Any]]:
        """The whole history; an entry that cannot be read comes as
        ``{"type": "unreadable", "index": i, "raw": <its first 200 characters>}``."""

    @abc.abstractmethod
    def waits(self, run_id: str) -> RunWaits:
        """What the run waits on now: in-flight steps, pending timers, live inboxes."""

    @abc.abstractmethod
    def wait_ended(self, run_id: str, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until the run ends; True if it has."""

    @abc.abstractmethod
    def check_inflight(self, run_id: str, now: float,
                       queue_is_empty: Callable[[str], bool] | None = None
                       ) -> tuple[list[int], float | None]:
        """Steps whose message or worker is lost, and when the next one could be.

        ``queue_is_empty(queue)`` asks the broker: a step queued for more than a lease
        on a queue that holds nothing was lost.
        """

    @abc.abstractmethod
    def child_started(self, run_id: str, seq: int, detached: bool) -> None:
        """The child run a command of this run starts exists now."""

    @abc.abstractmethod
    def live_children(self, run_id: str) -> list[str]:
        """Run ids of the live child runs this run awaits."""

    @abc.abstractmethod
    def received(self, steps: list[tuple[str, int]], worker_id: str) -> None:
        """A worker took these steps' messages (prefetched them): lost if it goes."""

    @abc.abstractmethod
    def worker_alive(self, worker_id: str) -> None:
        """The worker beats: its prefetched steps are not lost (for a lease)."""

    @abc.abstractmethod
    def worker_gone(self, worker_id: str) -> None:
        """The worker stopped on purpose."""

    @abc.abstractmethod
    def watch(self, run_id: str, when: float) -> None:
        """Have the sweeper check the run at ``when``, unless it will look sooner."""

    @abc.abstractmethod
    def claim_due_runs(self, now: float, next_check: float, limit: int) -> list[str]:
        """Runs whose watch time passed; each is pushed to ``next_check`` (claimed)."""

    @abc.abstractmethod
    def claim_check(self, run_id: str, now: float, stale_after: float) -> bool:
        """Note that a recovery check is on its way to a worker; False (nothing changed)
        when one sent less than ``stale_after`` seconds ago has not run yet."""

    @abc.abstractmethod
    def check_done(self, run_id: str) -> None:
        """The run's recovery check is running: another may be sent."""

    @abc.abstractmethod
    def claim_tokens(self, run_id: str, claims: list[TokenClaim], takeover: str = ""
                     ) -> list[tuple[TokenClaim, str]]:
        """Map tokens to this run; returns (claim, holder run) for those another run holds.

        ``takeover`` names an ended run whose stale claims may be taken over.
        """

    @abc.abstractmethod
    def holds_inbox(self, run_id: str, kind: str, token: str) -> bool:
        """True while the run has a live (committed, not disposed) webhook/hook with it."""

    @abc.abstractmethod
    def token_info(self, token: str) -> TokenInfo | None:
        """What a live token maps to, or None."""

    @abc.abstractmethod
    def deliver(self, run_id: str, event: dict[str, Any], kind: str, token: str) -> bool:
        """Append a request/payload for the live webhook or hook ``event["seq"]`` of a run;
        False if the run ended or that webhook/hook is not live."""

    @abc.abstractmethod
    def wait_response(self, run_id: str, request_id: str, timeout: float
                      ) -> dict[str, Any] | None:
        """Block until the workflow answers a held webhook request, or ``timeout``."""

    @abc.abstractmethod
    def unwatch_if_idle(self, run_id: str) -> bool:
        """Stop watching a run that only waits on the outside world (True if stopped)."""

    @abc.abstractmethod
    def arm_due_timers(self, now: float, limit: int = 500) -> list[tuple[str, int, float]]:
        """Timers that need an ETA message now: (run id, seq, due time)."""
