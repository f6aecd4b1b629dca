"""The history store on Redis: Lua scripts for every change to one run.

Each script touches the keys of one run only (one hash tag, one Cluster slot);
the global sorted sets (``watch``, ``runs``, the timer index) are updated by
separate idempotent commands sent in the same round trip (a pipeline; on Redis
Cluster, where redis-py cannot pipeline scripts, one after the other).
"""

from __future__ import annotations

import functools
import importlib.resources
import time
from collections.abc import Callable
from typing import Any

import redis

from .. import codec
from ..engine.history import child_run_id
from ..errors import CorruptHistory, LeaseLost
from . import marks
from .base import (
    Commit,
    Committed,
    HistoryStore,
    Loaded,
    Recorded,
    RunState,
    RunWaits,
    StepClaim,
)
from .batch import Batch
from .connect import connect
from .decode import decode, loaded
from .keys import KeySchema
from .redis_inboxes import RedisInboxes
from .redis_watch import RedisWatch
from .run_index import RunIndex, RunSummary

__all__ = ["RedisStore", "connect"]

SCRIPTS = ("create", "load", "commit", "begin_step", "heartbeat", "record", "retry", "cancel",
           "claim_due", "release", "renew", "busy", "arm_timers", "claim_token", "release_token",
           "deliver", "unwatch", "received", "redrive", "child_started", "claim_check")

#: How long an answer to a held webhook request waits for its caller to read it.
RESPONSE_TTL = 120


@functools.cache
def _lua(name: str) -> str:
    """A script's text, after the mark format prelude every script shares."""
    folder = importlib.resources.files(__package__).joinpath("lua")
    return folder.joinpath("marks.lua").read_text() + folder.joinpath(f"{name}.lua").read_text()


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _due_ms(due: float) -> int:
    """A timer's due time in ms, rounded so that ``due_ms / 1000`` maps back to it."""
    return int(round(due * 1000))


class RedisStore(RedisInboxes, RedisWatch, HistoryStore):
    """:class:`~.base.HistoryStore` on a redis-py client (strings decoded).

    The timings come from the settings (:class:`~celery_durable.settings.Settings`
    has their defaults).

    >>> store = RedisStore(connect(url), prefix="durable", lease=30, retention=604800,
    ...                    timer_horizon=300, queue_timeout=3600, timer_grace=2)
    ... # doctest: +SKIP
    """

    transient_errors = (redis.ConnectionError, redis.TimeoutError)

    def __init__(self, client: Any, *, prefix: str, lease: float, retention: float,
                 timer_horizon: float, queue_timeout: float, timer_grace: float) -> None:
        self.client = client
        self.cluster = client.__class__.__name__ == "RedisCluster"
        self.keys = KeySchema(prefix)
        self.lease = lease
        self.retention = retention
        self.timer_horizon = timer_horizon
        self.queue_timeout = queue_timeout
        #: An armed timer not fired this long after its due time lost its message.
        self.timer_grace = timer_grace
        self.scripts = {name: client.register_script(_lua(name)) for name in SCRIPTS}
        self.index = RunIndex(prefix, client, self._batch, self.keys.run)

    def __repr__(self) -> str:
        return f"<RedisStore prefix={self.keys.prefix!r} client={self.client!r}>"

    def _batch(self) -> Batch:
        return Batch(self.client, self.scripts, self.cluster)

    def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return self.scripts[name](keys=keys, args=args, client=self.client)

    def _timer_member(self, run_id: str, seq: int, due: float) -> str:
        return f"{run_id}/{seq}/{_due_ms(due)}"

    # -- runs ----------------------------------------------------------------------
    def create_run(self, run_id: str, workflow: str, started: dict[str, Any],
                   watch_at: float) -> str | None:
        k = self.keys.run(run_id)
        now = _ms(time.time())
        # Index entries first (see commit): dying in between leaves a harmless entry.
        *_, reply = (self._batch()
                     .calls(self.index.added(run_id, workflow, "running", now))
                     .call("zadd", self.keys.watch, {run_id: _ms(watch_at)})
                     .script("create", [k.history, k.state],
                             [codec.dumps(started), workflow, now])
                     .execute())
        if reply[0]:
            return None
        existing = str(reply[1])
        if existing != workflow:  # entries of a run this workflow does not have
            (self._batch().call("zrem", self.index.workflow(workflow), run_id)
             .call("zrem", self.index.workflow(workflow, "running"), run_id).execute())
        return existing

    def load(self, run_id: str, token: str, start: int) -> Loaded | None:
        k = self.keys.run(run_id)
        reply = self._script("load", [k.history, k.state, k.lease],
                             [token, start, _ms(self.lease)])
        if reply is None:
            return None
        status, raw, created_at, *length = reply
        return loaded(run_id, status, raw, created_at, start, int(length[0]) if length else 0)

    def commit(self, run_id: str, token: str, commit: Commit) -> Committed:
        k = self.keys.run(run_id)
        final = commit.final
        marks = {"queued": commit.queued,
                 "timers": [[seq, _due_ms(due)] for seq, due, _ in commit.timers],
                 "inboxes": [[seq, f"{kind}:{tok}"] for seq, kind, tok in commit.inboxes],
                 "disposed": [seq for seq, _ in commit.disposed],
                 "begin": [] if commit.begin is None else
                 [commit.begin[0], _ms(commit.begin[1]), repr(time.time())]}
        args: list[Any] = [token, _ms(time.time()),
                           final["type"].removeprefix("run_") if final else "",
                           codec.dumps(final) if final else "", int(self.retention),
                           "1" if commit.keep_lease else "0", codec.dumps(marks)]
        args += [codec.dumps(event) for event in commit.events]
        # Index entries go first: harmless if the commit is refused (a timer fires, a
        # request is delivered, only against what the commit marked), and never missing
        # if this process dies between two calls (on Redis Cluster they are not pipelined).
        batch = self._batch()
        for seq, due, armed in commit.timers:
            member = self._timer_member(run_id, seq, due)
            if armed:
                batch.call("zadd", self.keys.timers_armed, {member: _ms(due + self.timer_grace)})
            else:
                batch.call("zadd", self.keys.timers_due, {member: _due_ms(due)})
        if final is None and commit.watch_at is not None:
            batch.call("zadd", self.keys.watch, {run_id: _ms(commit.watch_at)})
        result, attempt = batch.script("commit", k.all(), args).execute()[-1]
        if result == -1:
            raise LeaseLost(f"run {run_id!r}: this replay's lease expired before its commit; "
                            "its work is dropped and the run is replayed again")
        after = self._batch()
        for seq, tok in commit.disposed:
            after.script("release_token", [self.keys.token(tok)], [run_id, seq])
        for request_id, response in commit.responses:
            key = self.keys.response(run_id, request_id)
            after.call("rpush", key, codec.dumps(response)).call("expire", key, RESPONSE_TTL)
        if final is not None:
            self._after_end(run_id, after)
        if after.ops:
            after.execute()
        begun = None
        if attempt and commit.begin is not None:
            begun = StepClaim(True, int(attempt), "running", 0, running_until=commit.begin[1])
        return Committed(bool(result), begun)

    def _after_end(self, run_id: str, batch: Batch) -> None:
        """Unindex an ended run: its watch entry, pending timers and live tokens; list it
        under its final status."""
        batch.call("zrem", self.keys.watch, run_id)
        k = self.keys.run(run_id)
        fields, (status, workflow, created, ended) = (
            self._batch().call("hgetall", k.steps)
            .call("hmget", k.state, "status", "workflow", "created_at", "ended_at").execute())
        if status and workflow:
            batch.calls(self.index.moved(run_id, workflow, "running", status,
                                         int(created or 0), int(ended or 0)))
        timers, inboxes = self._pending(run_id, fields)
        if timers:
            batch.call("zrem", self.keys.timers_due, *timers)
            batch.call("zrem", self.keys.timers_armed, *timers)
        for seq, _, tok in inboxes:
            batch.script("release_token", [self.keys.token(tok)], [run_id, seq])

    def _pending(self, run_id: str, fields: dict[str, str]
                 ) -> tuple[list[str], list[tuple[str, str, str]]]:
        """A run's timers not fired (their index members) and its live webhooks and hooks
        ((seq, kind, token)), from its ``steps`` hash."""
        timers, inboxes = [], []
        for field, value in fields.items():
            kind, _, seq = field.partition(":")
            if kind == "timer" and f"done:{seq}" not in fields:
                timers.append(self._timer_member(run_id, int(seq), int(value) / 1000))
            elif kind == "inbox":
                inbox_kind, _, tok = value.partition(":")
                inboxes.append((seq, inbox_kind, tok))
        return timers, inboxes

    def release(self, run_id: str, token: str) -> None:
        self._script("release", [self.keys.run(run_id).lease], [token])

    def renew(self, run_id: str, token: str) -> bool:
        return bool(self._script("renew", [self.keys.run(run_id).lease],
                                 [token, _ms(self.lease)]))

    # -- steps ---------------------------------------------------------------------
    def begin_step(self, run_id: str, seq: int, deadline: float,
                   sent: tuple[str, int] | None = None) -> StepClaim:
        k = self.keys.run(run_id)
        now = time.time()
        batch = self._batch().script("begin_step", [k.history, k.state, k.steps],
                                     [seq, _ms(deadline), repr(now), _ms(now)])
        if sent is not None:
            # GT: the mark only moves forward, whatever order workers begin in.
            batch.call("zadd", self.keys.consumed, {sent[0]: sent[1]}, gt=True)
        run, attempt, status, failures = batch.execute()[0]
        return StepClaim(bool(run), int(attempt), status, int(failures))

    def heartbeat(self, steps: list[tuple[str, int]], deadline: float) -> None:
        batch = self._batch()
        for run_id, seq in steps:
            batch.script("heartbeat", [self.keys.run(run_id).steps], [seq, _ms(deadline)])
        batch.execute()

    def extend_claim(self, run_id: str, seq: int, running_until: float,
                     deadline: float) -> bool:
        return bool(self._script("heartbeat", [self.keys.run(run_id).steps],
                                 [seq, _ms(deadline), str(_ms(running_until))]))

    def record(self, run_id: str, seq: int, event: dict[str, Any], token: str,
               timer_due: float | None = None, read_from: int | None = None) -> Recorded:
        k = self.keys.run(run_id)
        # Watched first: whoever takes the lease with this outcome may die mid-replay,
        # and dying between the two calls (on a Cluster) must leave the run watched.
        batch = self._batch().call("zadd", self.keys.watch,
                                   {run_id: _ms(time.time() + self.lease)})
        batch.script("record", [k.history, k.state, k.steps, k.lease],
                     [seq, codec.dumps(event), token, _ms(self.lease),
                      "" if timer_due is None else _due_ms(timer_due),
                      "" if read_from is None else read_from])
        reply = batch.execute()[1]
        if timer_due is not None:
            # Only once the script answered: if it failed, the armed entry must stay so
            # that the sweeper sends the timer again.
            member = self._timer_member(run_id, seq, timer_due)
            (self._batch().call("zrem", self.keys.timers_due, member)
             .call("zrem", self.keys.timers_armed, member).execute())
        tail = None
        if len(reply) > 2:
            try:
                tail = loaded(run_id, "running", reply[3], reply[2], int(read_from or 0),
                              int(reply[4]))
            except CorruptHistory:
                tail = None  # the lease holder reads it again, and fails the run there
        return Recorded(bool(reply[0]), bool(reply[1]), tail)

    def record_retry(self, run_id: str, seq: int, event: dict[str, Any], deadline: float) -> bool:
        k = self.keys.run(run_id)
        return bool(self._script("retry", [k.history, k.state, k.steps],
                                 [seq, codec.dumps(event), _ms(deadline),
                                  _ms(float(event.get("retry_at") or 0))]))

    def redrive(self, run_id: str, event: dict[str, Any], seqs: list[int]) -> bool:
        k = self.keys.run(run_id)
        state = self.state(run_id)
        if state is None or state.status != "failed":
            return False
        lost_since = _ms(time.time() - 2 * self.lease)
        _, done = (self._batch()
                   .call("zadd", self.keys.watch, {run_id: _ms(time.time())})
                   .script("redrive", [k.history, k.state, k.steps, k.done],
                           [codec.dumps(event), lost_since, *seqs])
                   .execute())
        if not done:
            return False
        after = self._batch().calls(self.index.moved(
            run_id, state.workflow, "failed", "running", int(state.epoch or 0), None))
        # Its end unindexed its pending sleeps and released its tokens: back they go (the
        # sweeper arms the sleeps).
        timers, inboxes = self._pending(run_id, self.step_fields(run_id))
        for member in timers:
            after.call("zadd", self.keys.timers_due, {member: int(member.rsplit("/", 1)[1])})
        for seq, kind, tok in inboxes:
            after.script("claim_token", [self.keys.token(tok)],
                         [run_id, seq, kind, tok, "", "null", "", _ms(time.time())])
        after.execute()
        return True

    def request_cancel(self, run_id: str, event: dict[str, Any]) -> bool:
        k = self.keys.run(run_id)
        _, accepted = (self._batch()
                       .call("zadd", self.keys.watch, {run_id: _ms(time.time() + self.lease)})
                       .script("cancel", [k.history, k.state], [codec.dumps(event)])
                       .execute())
        return bool(accepted)

    # -- reading ---------------------------------------------------------------------
    def state(self, run_id: str) -> RunState | None:
        raw = self.client.hgetall(self.keys.run(run_id).state)
        if not raw or "status" not in raw:
            return None
        return RunState(
            status=raw["status"], workflow=raw.get("workflow", ""),
            created_at=int(raw.get("created_at") or 0) / 1000,
            ended_at=int(raw["ended_at"]) / 1000 if raw.get("ended_at") else None,
            dirty="dirty" in raw, replaying="replaying" in raw,
            cancel_requested="cancel" in raw,
            outcome=codec.loads(raw["outcome"]) if raw.get("outcome") else None,
            epoch=raw.get("created_at", ""))

    def events(self, run_id: str) -> list[dict[str, Any]]:
        events = []
        for index, item in enumerate(self.client.lrange(self.keys.run(run_id).history, 0, -1)):
            try:
                events.append(decode(run_id, [item], index)[0])
            except CorruptHistory:
                events.append({"type": "unreadable", "index": index, "raw": item[:200]})
        return events

    def waits(self, run_id: str) -> RunWaits:
        k = self.keys.run(run_id)
        fields, state, lease = (self._batch().call("hgetall", k.steps)
                                .call("hmget", k.state, "dirty", "replaying")
                                .call("exists", k.lease).execute())
        _, inboxes = self._pending(run_id, fields)
        timers = sorted((int(f.partition(":")[2]), int(v) / 1000) for f, v in fields.items()
                        if f.startswith("timer:") and f"done:{f.partition(':')[2]}" not in fields)
        return RunWaits(busy=bool(lease) or any(state),
                        steps=sum(f.startswith("inflight:") for f in fields),
                        timers=timers, inboxes=[(int(q), kind, t) for q, kind, t in inboxes])

    def step_fields(self, run_id: str) -> dict[str, str]:
        """The raw per-step bookkeeping hash (attempts, in-flight marks, done marks)."""
        return dict(self.client.hgetall(self.keys.run(run_id).steps))

    def _block_for(self, timeout: float) -> float:
        """A blocking command's timeout, kept under the client's socket timeout."""
        kwargs = getattr(getattr(self.client, "connection_pool", None), "connection_kwargs", {})
        socket_timeout = kwargs.get("socket_timeout") or kwargs.get("orig_socket_timeout")
        limit = max(0.1, float(socket_timeout) - 1.0) if socket_timeout else 60.0
        return max(0.01, min(timeout, limit))

    def wait_ended(self, run_id: str, timeout: float) -> bool:
        done = self.keys.run(run_id).done
        # Rotating the one-item list onto itself leaves it for every other waiter.
        return self.client.brpoplpush(done, done, timeout=self._block_for(timeout)) is not None

    # -- recovery ---------------------------------------------------------------------
    def check_inflight(self, run_id: str, now: float,
                       queue_is_empty: Callable[[str], bool] | None = None
                       ) -> tuple[list[int], float | None]:
        in_flight = marks.in_flight(self.step_fields(run_id))
        alive = self._alive_workers(marks.holders(in_flight))
        queues = sorted(marks.queues(in_flight))
        consumed = {}
        if queues:
            scores = self.client.zmscore(self.keys.consumed, queues)
            consumed = {q: int(s) / 1000 for q, s in zip(queues, scores, strict=True) if s}
        return marks.lost_steps(in_flight, now, alive, consumed, lease=self.lease,
                                queue_timeout=self.queue_timeout,
                                queue_is_empty=queue_is_empty,
                                ended_children=self._ended_children(run_id, in_flight))

    def _ended_children(self, run_id: str, in_flight: dict[int, marks.Mark]) -> set[int]:
        seqs = marks.children(in_flight)
        if not seqs:
            return set()
        batch = self._batch()
        for seq in seqs:
            batch.call("hget", self.keys.run(child_run_id(run_id, seq)).state, "status")
        return {seq for seq, status in zip(seqs, batch.execute(), strict=True)
                if status != "running"}

    def child_started(self, run_id: str, seq: int, detached: bool) -> None:
        self._script("child_started", [self.keys.run(run_id).steps],
                     [seq, _ms(time.time()), "1" if detached else "0"])

    def live_children(self, run_id: str) -> list[str]:
        return [child_run_id(run_id, seq)
                for seq in marks.children(marks.in_flight(self.step_fields(run_id)))]

    def _alive_workers(self, workers: set[str]) -> set[str]:
        names = sorted(workers)
        if not names:
            return set()
        batch = self._batch()
        for name in names:
            batch.call("exists", self.keys.worker(name))
        return {name for name, found in zip(names, batch.execute(), strict=True) if found}

    def worker_alive(self, worker_id: str) -> None:
        self.client.set(self.keys.worker(worker_id), 1, px=_ms(self.lease))

    def worker_gone(self, worker_id: str) -> None:
        self.client.delete(self.keys.worker(worker_id))

    def received(self, steps: list[tuple[str, int]], worker_id: str) -> None:
        batch = self._batch()
        for run_id, seq in steps:
            batch.script("received", [self.keys.run(run_id).steps],
                         [seq, worker_id, _ms(time.time())])
        if steps:
            batch.execute()

    # -- the run listing ------------------------------------------------------------
    def list_runs(self, status: str | None = None, workflow: str | None = None,
                  limit: int = 50, cursor: str | None = None) -> list[RunSummary]:
        return self.index.page(status, workflow, limit, cursor)

    def trim_ended(self, now: float, limit: int = 500) -> int:
        return self.index.trim(now - self.retention, limit)

    def arm_due_timers(self, now: float, limit: int = 500) -> list[tuple[str, int, float]]:
        members = self._script("arm_timers", [self.keys.timers_due, self.keys.timers_armed],
                               [_ms(now), _ms(self.timer_horizon), _ms(self.timer_grace),
                                _ms(self.lease), limit])
        out = []
        for member in members:
            run_id, seq, due_ms = member.rsplit("/", 2)
            out.append((run_id, int(seq), int(due_ms) / 1000))
        return out

    def timer_counts(self) -> tuple[int, int]:
        """(timers waiting in Redis only, timers handed to ETA messages)."""
        return (int(self.client.zcard(self.keys.timers_due)),
                int(self.client.zcard(self.keys.timers_armed)))
