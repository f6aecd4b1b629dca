"""The history store on Redis: Lua scripts for every change to one run.

Each script touches the keys of one run only (one hash tag, one Cluster slot);
the global sorted sets (``watch``, ``runs``, the timer index) are updated by
separate idempotent commands sent in the same round trip (a pipeline; on Redis
Cluster, where redis-py cannot pipeline scripts, one after the other).
"""

from __future__ import annotations

import functools
import hmac
import importlib.resources
import time
from collections.abc import Callable
from typing import Any

import redis

from .. import codec
from ..errors import CorruptHistory, LeaseLost
from . import marks
from .base import (
    Commit,
    HistoryStore,
    Loaded,
    Recorded,
    RunState,
    StepClaim,
    TokenClaim,
    TokenInfo,
)
from .connect import connect
from .keys import KeySchema

__all__ = ["RedisStore", "connect"]

SCRIPTS = ("create", "load", "commit", "begin_step", "heartbeat", "record", "retry", "cancel",
           "claim_due", "release", "renew", "busy", "arm_timers", "claim_token",
           "release_token", "deliver", "published", "unwatch", "received")

#: How long an answer to a held webhook request waits for its caller to read it.
RESPONSE_TTL = 120


@functools.cache
def _lua(name: str) -> str:
    """A script's text, after the mark format prelude every script shares."""
    folder = importlib.resources.files(__package__).joinpath("lua")
    return folder.joinpath("marks.lua").read_text() + folder.joinpath(f"{name}.lua").read_text()


def _decode(run_id: str, items: list[str], start: int) -> list[dict[str, Any]]:
    """History entries from JSON; :class:`CorruptHistory` naming the first bad one."""
    events = []
    for index, item in enumerate(items, start):
        try:
            event = codec.loads(item)
        except ValueError as exc:
            raise CorruptHistory(f"run {run_id!r}: history entry #{index} is not valid JSON "
                                 f"({exc}): {item[:80]!r}", index) from None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise CorruptHistory(f"run {run_id!r}: history entry #{index} is not an event "
                                 f"(a JSON object with a type): {item[:80]!r}", index)
        events.append(event)
    return events


def _loaded(run_id: str, status: str, raw: list[str], created_at: Any, start: int,
            length: int) -> Loaded:
    """What the scripts read from ``start`` (with the entry before it, if any)."""
    if status != "running" or not raw and start == 0:
        return Loaded(status, [], str(created_at or ""), start, length)
    overlap = 1 if start > 0 else 0
    events = _decode(run_id, raw, start - overlap)
    before = events[0] if overlap and events else None
    return Loaded(status, events[overlap:], str(created_at or ""), start, length, before)


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _due_ms(due: float) -> int:
    """A timer's due time in ms, rounded so that ``due_ms / 1000`` maps back to it."""
    return int(round(due * 1000))


class _Batch:
    """Commands for one round trip: a pipeline, or sequential calls on a cluster.

    Scripts go into the pipeline as plain EVALSHA (redis-py would first send SCRIPT
    EXISTS, a round trip of its own); one the server does not know yet is loaded and
    run again on its own.
    """

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self.ops: list[tuple[Any, Callable[[Any], Any]]] = []

    def script(self, name: str, keys: list[str], args: list[Any]) -> _Batch:
        script = self._store.scripts[name]

        def direct(client: Any) -> Any:
            return script(keys=keys, args=args, client=client)

        def queued(pipe: Any) -> Any:
            return pipe.evalsha(script.sha, len(keys), *keys, *args)

        self.ops.append((direct, queued))
        return self

    def call(self, method: str, *args: Any, **kwargs: Any) -> _Batch:
        def op(client: Any) -> Any:
            return getattr(client, method)(*args, **kwargs)

        self.ops.append((op, op))
        return self

    def execute(self) -> list[Any]:
        client = self._store.client
        if self._store.cluster:
            return [direct(client) for direct, _ in self.ops]
        pipe = client.pipeline(transaction=False)
        for _, queued in self.ops:
            queued(pipe)
        results = list(pipe.execute(raise_on_error=False))
        for i, result in enumerate(results):
            if isinstance(result, redis.exceptions.NoScriptError) or (
                    isinstance(result, redis.exceptions.ResponseError)
                    and str(result).startswith("NOSCRIPT")):
                results[i] = self.ops[i][0](client)  # it did not run: run it, loading it
            elif isinstance(result, Exception):
                raise result
        return results


class RedisStore(HistoryStore):
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

    def __repr__(self) -> str:
        return f"<RedisStore prefix={self.keys.prefix!r} client={self.client!r}>"

    def _batch(self) -> _Batch:
        return _Batch(self)

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
                     .call("zadd", self.keys.runs, {run_id: now}, nx=True)
                     .call("zadd", self.keys.watch, {run_id: _ms(watch_at)})
                     .script("create", [k.history, k.state],
                             [codec.dumps(started), workflow, now])
                     .execute())
        return None if reply[0] else str(reply[1])

    def load(self, run_id: str, token: str, start: int) -> Loaded | None:
        k = self.keys.run(run_id)
        reply = self._script("load", [k.history, k.state, k.lease],
                             [token, start, _ms(self.lease)])
        if reply is None:
            return None
        status, raw, created_at, *length = reply
        return _loaded(run_id, status, raw, created_at, start, int(length[0]) if length else 0)

    def commit(self, run_id: str, token: str, commit: Commit) -> bool:
        k = self.keys.run(run_id)
        final = commit.final
        marks = {"queued": commit.queued,
                 "timers": [[seq, _due_ms(due)] for seq, due, _ in commit.timers],
                 "inboxes": [[seq, f"{kind}:{tok}"] for seq, kind, tok in commit.inboxes],
                 "disposed": [seq for seq, _ in commit.disposed]}
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
        result = batch.script("commit", k.all(), args).execute()[-1]
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
        return bool(result)

    def _after_end(self, run_id: str, batch: _Batch) -> None:
        """Unindex an ended run: its watch entry, pending timers and live tokens."""
        batch.call("zrem", self.keys.watch, run_id)
        fields = self.step_fields(run_id)
        timers = [self._timer_member(run_id, int(f[6:]), int(v) / 1000)
                  for f, v in fields.items()
                  if f.startswith("timer:") and f"done:{f[6:]}" not in fields]
        if timers:
            batch.call("zrem", self.keys.timers_due, *timers)
            batch.call("zrem", self.keys.timers_armed, *timers)
        for field, mark in fields.items():
            if field.startswith("inbox:"):
                _, _, tok = mark.partition(":")
                batch.script("release_token", [self.keys.token(tok)], [run_id, field[6:]])

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
        loaded = None
        if len(reply) > 2:
            try:
                loaded = _loaded(run_id, "running", reply[3], reply[2], int(read_from or 0),
                                 int(reply[4]))
            except CorruptHistory:
                loaded = None  # the lease holder reads it again, and fails the run there
        return Recorded(bool(reply[0]), bool(reply[1]), loaded)

    def record_retry(self, run_id: str, seq: int, event: dict[str, Any], deadline: float) -> bool:
        k = self.keys.run(run_id)
        return bool(self._script("retry", [k.history, k.state, k.steps],
                                 [seq, codec.dumps(event), _ms(deadline),
                                  _ms(float(event.get("retry_at") or 0))]))

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
                events.append(_decode(run_id, [item], index)[0])
            except CorruptHistory:
                events.append({"type": "unreadable", "index": index, "raw": item[:200]})
        return events

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
                                queue_is_empty=queue_is_empty)

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

    def published(self, run_id: str, sent: list[tuple[int, str]]) -> None:
        if sent:
            self._script("published", [self.keys.run(run_id).steps],
                         [_ms(time.time()), *[part for pair in sent for part in pair]])

    def watch(self, run_id: str, when: float) -> None:
        # LT: never push back a nearer check that someone set meanwhile.
        self.client.zadd(self.keys.watch, {run_id: _ms(when)}, lt=True)

    def claim_due_runs(self, now: float, next_check: float, limit: int) -> list[str]:
        return list(self._script("claim_due", [self.keys.watch],
                                 [_ms(now), _ms(next_check), limit]))

    # -- webhooks and hooks -------------------------------------------------------------
    def claim_tokens(self, run_id: str, claims: list[TokenClaim], takeover: str = ""
                     ) -> list[tuple[TokenClaim, str]]:
        batch = self._batch()
        for claim in claims:
            batch.script("claim_token", [self.keys.token(claim.token)],
                         [run_id, claim.seq, claim.kind, claim.token, claim.method or "",
                          codec.dumps(claim.respond_with), takeover, _ms(time.time())])
        holders = batch.execute() if claims else []
        return [(claim, holder) for claim, holder in zip(claims, holders, strict=True) if holder]

    def holds_inbox(self, run_id: str, kind: str, token: str) -> bool:
        mark = f"{kind}:{token}"
        return any(field.startswith("inbox:") and value == mark
                   for field, value in self.step_fields(run_id).items())

    def token_info(self, token: str) -> TokenInfo | None:
        info = self.client.hgetall(self.keys.token(token))
        # The key is a hash of the token; compare the token itself in constant time too.
        if not info or not hmac.compare_digest(info.get("token", "").encode(), token.encode()):
            return None
        return TokenInfo(run_id=info["run"], seq=int(info["seq"]), kind=info.get("kind", ""),
                         method=info.get("method") or None,
                         respond_with=codec.loads(info.get("respond_with") or "null"),
                         claimed_at=int(info.get("claimed_at") or 0) / 1000)

    def deliver(self, run_id: str, event: dict[str, Any], kind: str, token: str) -> bool:
        k = self.keys.run(run_id)
        _, appended = (self._batch()
                       .call("zadd", self.keys.watch, {run_id: _ms(time.time() + self.lease)})
                       .script("deliver", [k.history, k.state, k.steps],
                               [codec.dumps(event), event["seq"], f"{kind}:{token}"])
                       .execute())
        return bool(appended)

    def wait_response(self, run_id: str, request_id: str, timeout: float
                      ) -> dict[str, Any] | None:
        key = self.keys.response(run_id, request_id)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            reply = self.client.blpop([key], timeout=self._block_for(remaining))
            if reply:
                return dict(codec.loads(reply[1]))

    def unwatch_if_idle(self, run_id: str) -> bool:
        k = self.keys.run(run_id)
        # Push the entry on, look, and remove it only if nobody touched it meanwhile: an
        # outcome recorded in between moves it, and dying in between leaves it.
        mark = _ms(time.time() + self.lease)
        self.client.zadd(self.keys.watch, {run_id: mark})
        if self._script("busy", [k.state, k.lease, k.steps], []):
            return False
        return bool(self._script("unwatch", [self.keys.watch], [run_id, mark]))

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
