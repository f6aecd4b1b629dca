"""The run listing: sorted sets per status and per workflow, newest first.

Every run is in ``runs`` (all), ``runs:status:<status>``, ``runs:workflow:<name>`` and
``runs:workflow:<name>:status:<status>``, scored by its creation time (ms), so the first
page of any filter is one ``ZREVRANGEBYSCORE`` however many runs there are. An ended
run is also in ``runs:ended`` (scored by its end time), which the retention sweep reads
to drop the entries of runs whose keys expired. Each sorted set is one key (one Cluster
slot) written by its own command next to the run's script: a process that dies in
between can leave an entry that disagrees with the run's state, so a page is checked
against the states it lists (and such an entry is mended) before it is returned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from .batch import Batch, Op

#: Every status a run can have.
STATUSES = ("running", "completed", "failed", "cancelled")


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """One row of the run listing."""

    run_id: str
    workflow: str
    status: str
    #: UNIX seconds.
    created_at: float
    ended_at: float | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from creation to end (None while running)."""
        return None if self.ended_at is None else self.ended_at - self.created_at

    @property
    def cursor(self) -> str:
        """Where the next page (older runs) begins."""
        return f"{int(self.created_at * 1000)}:{self.run_id}"


class RunIndex:
    """Key names and commands of the listing, and reading pages of it."""

    def __init__(self, prefix: str, client: Any, batch: Callable[[], Batch],
                 run_keys: Callable[[str], Any]) -> None:
        self.all = f"{prefix}:runs"
        self.ended = f"{prefix}:runs:ended"
        self._prefix = prefix
        self._client = client
        self._batch = batch
        self._state = lambda run_id: run_keys(run_id).state

    def status(self, status: str) -> str:
        return f"{self._prefix}:runs:status:{status}"

    def workflow(self, workflow: str, status: str | None = None) -> str:
        key = f"{self._prefix}:runs:workflow:{workflow}"
        return f"{key}:status:{status}" if status else key

    def key_for(self, status: str | None, workflow: str | None) -> str:
        """The sorted set that lists exactly what the filter asks for."""
        if workflow:
            return self.workflow(workflow, status)
        return self.status(status) if status else self.all

    @staticmethod
    def ended_member(run_id: str, workflow: str, status: str) -> str:
        # Run ids hold no "/": the id is the last part, whatever the workflow's name holds.
        return f"{status}/{workflow}/{run_id}"

    @staticmethod
    def parse_ended(member: str) -> tuple[str, str, str]:
        """(run id, workflow, status) of a ``runs:ended`` member."""
        rest, _, run_id = member.rpartition("/")
        status, _, workflow = rest.partition("/")
        return run_id, workflow, status

    def added(self, run_id: str, workflow: str, status: str, created_ms: int
              ) -> list[Op]:
        """Commands (method, args, kwargs) that list a run under ``status``."""
        entry = {run_id: created_ms}
        # NX: a start under an existing id must not move the existing run's entries.
        return [("zadd", (key, entry), {"nx": True}) for key in
                (self.all, self.status(status), self.workflow(workflow),
                 self.workflow(workflow, status))]

    def moved(self, run_id: str, workflow: str, old: str, new: str, created_ms: int,
              ended_ms: int | None) -> list[Op]:
        """Commands that move a run from status ``old`` to ``new`` (and mark its end)."""
        ops: list[Op] = [
            ("zadd", (self.status(new), {run_id: created_ms}), {}),
            ("zadd", (self.workflow(workflow, new), {run_id: created_ms}), {}),
            ("zrem", (self.status(old), run_id), {}),
            ("zrem", (self.workflow(workflow, old), run_id), {})]
        if ended_ms is not None:
            ops.append(("zadd", (self.ended, {self.ended_member(run_id, workflow, new):
                                              ended_ms}), {}))
        else:
            ops.append(("zrem", (self.ended, self.ended_member(run_id, workflow, old)), {}))
        return ops

    def removed(self, run_id: str, workflow: str, status: str) -> list[Op]:
        """Commands that drop every entry of a run (its retention passed)."""
        ops: list[Op] = [("zrem", (key, run_id), {}) for key in
                         (self.all, self.status(status), self.workflow(workflow),
                          self.workflow(workflow, status))]
        ops.append(("zrem", (self.ended, self.ended_member(run_id, workflow, status)), {}))
        return ops

    def page(self, status: str | None = None, workflow: str | None = None,
             limit: int = 50, cursor: str | None = None) -> list[RunSummary]:
        """Up to ``limit`` runs, newest first, older than ``cursor``."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
        key = self.key_for(status, workflow)
        score, after = parse_cursor(cursor)
        rows: list[RunSummary] = []
        while len(rows) < limit:
            want = limit - len(rows) + (1 if after else 0)
            page = after_cursor(self._client.zrevrangebyscore(
                key, score, "-inf", start=0, num=want + 10, withscores=True), score, after)
            if not page:
                break
            states = self._batch()
            for run_id, _ in page:
                states.call("hmget", self._state(run_id), "status", "workflow",
                            "created_at", "ended_at")
            mend = self._batch()
            for (run_id, created), state in zip(page, states.execute(), strict=True):
                run_status, run_workflow, created_ms, ended_ms = state
                score, after = str(int(created)), run_id
                if not run_status or (status and run_status != status) or (
                        workflow and run_workflow != workflow):
                    if run_status and run_workflow and status and run_status != status:
                        # Its status changed and the move was lost: mend the entry.
                        mend.calls(self.moved(run_id, run_workflow, status, run_status,
                                                    int(created), None))
                    continue
                rows.append(RunSummary(run_id, run_workflow, run_status,
                                       int(created_ms or created) / 1000,
                                       int(ended_ms) / 1000 if ended_ms else None))
                if len(rows) == limit:
                    break
            if mend.ops:
                mend.execute()
        return rows

    def trim(self, ended_before: float, limit: int = 500) -> int:
        """Drop the entries of runs that ended before then (their retention passed);
        returns how many."""
        members = self._client.zrangebyscore(self.ended, "-inf", int(ended_before * 1000),
                                             start=0, num=limit)
        if not members:
            return 0
        parsed = [self.parse_ended(m) for m in members]
        states = self._batch()
        for run_id, _, _ in parsed:
            states.call("hget", self._state(run_id), "status")
        batch = self._batch()
        for member, (run_id, workflow, status), current in zip(
                members, parsed, states.execute(), strict=True):
            if current is None:  # its keys expired: unlist it everywhere
                batch.calls(self.removed(run_id, workflow, status))
            else:  # the id was taken again by a newer run: keep that one's entries
                batch.call("zrem", self.ended, member)
        batch.execute()
        return len(members)


def parse_cursor(cursor: str | None) -> tuple[str, str]:
    """A page cursor as (ZREVRANGEBYSCORE max, the run id to start after)."""
    if not cursor:
        return "+inf", ""
    score, _, run_id = cursor.partition(":")
    if not score.isdigit():
        raise ValueError(f"not a run listing cursor: {cursor!r} (it is '<ms>:<run id>', "
                         "as the last page's cursor gave it)")
    return score, run_id


def after_cursor(rows: Iterable[tuple[str, float]], score: str, run_id: str
                 ) -> list[tuple[str, float]]:
    """Drop the rows up to and including the cursor's run (same score, same order)."""
    rows = list(rows)
    if not run_id:
        return rows
    for i, (member, member_score) in enumerate(rows):
        if member == run_id and int(member_score) == int(score):
            return rows[i + 1:]
    return [(m, s) for m, s in rows if int(s) < int(score)]
