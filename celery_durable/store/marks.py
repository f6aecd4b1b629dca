"""The in-flight mark of a step: where its message or attempt is, in one string.

Each step that is neither recorded nor idle has one field ``inflight:<seq>`` in its
run's ``steps`` hash (see :mod:`.keys`). Its value says where the step is and when
it counts as lost; times are UNIX milliseconds:

================================  ====================================================
mark                              meaning, and when the step is lost
================================  ====================================================
``p:<at>``                        being published: the commit is written, the message
                                  not confirmed sent (or an inline step not begun
                                  yet, a redriven step); lost a lease after ``at``
``q:<at>:<queue>``                queued on that queue: lost once a message sent to
                                  the same queue more than a lease later has begun
                                  (queues are first in, first out: a worker took this
                                  one and died before it could mark it taken), else
                                  after ``durable_queue_timeout``, since a backlog is
                                  not a loss
``c:<at>:<worker id>``            taken off the queue by that worker (maybe only
                                  prefetched): lost once the worker's liveness key has
                                  expired, or a queue timeout after ``at`` in any case
``r:<retry at>:<deadline>``       waiting to retry: no copy begins before ``retry at``;
                                  lost if no attempt began by ``deadline``
``k:<at>``                        a child run started at ``at`` (ms) the parent awaits:
                                  "lost" once the child has ended (its outcome is then
                                  delivered again), else checked every few leases
``<until>``                       running: its worker's heartbeat pushes ``until`` on;
                                  lost once it passes
================================  ====================================================

This module reads the marks in Python; ``lua/marks.lua`` is the same format for the
scripts (prepended to each of them), so the format is written down twice, here and
there, and nowhere else.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

PUBLISHING, QUEUED, TAKEN, RETRYING, RUNNING = "publishing", "queued", "taken", "retrying", \
    "running"
CHILD = "child"
_PREFIXES = {"p": PUBLISHING, "q": QUEUED, "c": TAKEN, "r": RETRYING, "k": CHILD}


@dataclasses.dataclass(frozen=True)
class Mark:
    """One step's in-flight mark, parsed; times in UNIX seconds."""

    kind: str
    #: published, queued or taken at; the retry time; or the running deadline.
    at: float
    #: For a retry: when it is lost if no attempt began.
    deadline: float | None = None
    #: For a taken message: the worker holding it.
    worker: str = ""
    #: For a queued message: the queue it was sent to.
    queue: str = ""

    @classmethod
    def parse(cls, text: str) -> Mark:
        prefix, sep, rest = text.partition(":")
        kind = _PREFIXES.get(prefix) if sep else None
        if kind is None:
            return cls(RUNNING, int(text) / 1000)
        if kind == TAKEN:
            at, _, worker = rest.partition(":")
            return cls(kind, int(at) / 1000, worker=worker)
        if kind == RETRYING:
            at, _, deadline = rest.partition(":")
            return cls(kind, int(at) / 1000, deadline=int(deadline) / 1000 if deadline else None)
        if kind == QUEUED:
            at, _, queue = rest.partition(":")
            return cls(kind, int(at) / 1000, queue=queue)
        return cls(kind, int(rest) / 1000)

    def lost_at(self, *, lease: float, queue_timeout: float, now: float,
                holder_alive: bool, consumed: float = 0.0,
                queue_is_empty: Callable[[str], bool] | None = None,
                child_ended: bool = False) -> float:
        """When this step counts as lost (UNIX seconds). ``consumed``: the send time of
        the latest message of this step's queue that began; ``queue_is_empty(queue)``
        asks the broker whether anything waits in that queue."""
        if self.kind == CHILD:  # delivered by the child's end; this is the backstop
            return now - 1 if child_ended else now + 10 * lease
        if self.kind == TAKEN:
            by_holder = now + lease if holder_alive else now - 1
            return min(by_holder, self.at + queue_timeout)
        if self.kind == RETRYING:
            return self.deadline if self.deadline is not None else self.at
        if self.kind == QUEUED:
            if consumed > self.at + lease:  # newer messages of its queue already began
                return now - 1
            if self.at + lease < now and self.queue and queue_is_empty is not None \
                    and queue_is_empty(self.queue):
                return now - 1  # not behind a backlog: nothing waits in its queue
            return self.at + queue_timeout
        if self.kind == PUBLISHING:
            return self.at + lease
        return self.at


def in_flight(fields: dict[str, str]) -> dict[int, Mark]:
    """The parsed ``inflight:<seq>`` marks of a run's ``steps`` hash, by seq."""
    return {int(field.split(":", 1)[1]): Mark.parse(value) for field, value in fields.items()
            if field.startswith("inflight:")}


def holders(marks: dict[int, Mark]) -> set[str]:
    """The workers holding taken messages."""
    return {mark.worker for mark in marks.values() if mark.kind == TAKEN}


def queues(marks: dict[int, Mark]) -> set[str]:
    """The queues of queued messages."""
    return {mark.queue for mark in marks.values() if mark.kind == QUEUED and mark.queue}


def children(marks: dict[int, Mark]) -> list[int]:
    """Seqs of the live child runs a parent awaits."""
    return sorted(seq for seq, mark in marks.items() if mark.kind == CHILD)


def lost_steps(marks: dict[int, Mark], now: float, alive: set[str],
               consumed: dict[str, float] | None = None, *, lease: float,
               queue_timeout: float, queue_is_empty: Callable[[str], bool] | None = None,
               ended_children: set[int] | None = None) -> tuple[list[int], float | None]:
    """Seqs of steps lost by ``now``, and when the next of the others could be.

    ``alive``: the workers whose liveness key exists; ``consumed``: per queue, the send
    time of the latest message from it that began; ``queue_is_empty``: asks the broker
    (once per queue, only for a message queued longer than a lease).
    """
    consumed = consumed or {}
    if queue_is_empty is not None:
        queue_is_empty = functools.cache(queue_is_empty)
    lost: list[int] = []
    next_due: float | None = None
    for seq, mark in marks.items():
        expires = mark.lost_at(lease=lease, queue_timeout=queue_timeout, now=now,
                               holder_alive=mark.worker in alive,
                               consumed=consumed.get(mark.queue, 0.0),
                               queue_is_empty=queue_is_empty,
                               child_ended=seq in (ended_children or set()))
        if expires < now:
            lost.append(seq)
        elif next_due is None or expires < next_due:
            next_due = expires
    return sorted(lost), next_due
