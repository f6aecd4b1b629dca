"""The history store on Redis: Lua scripts for every change to one run.

Each script touches the keys of one run only (one hash tag, one Cluster slot);
the global ``watch`` and ``runs`` sorted sets are updated by separate commands
sent in the same pipeline, so each step of a run costs one round trip.
"""

from __future__ import annotations

import functools
import importlib.resources
import time
from typing import Any

import redis

from .. import codec
from ..errors import LeaseLost
from .base import HistoryStore, Loaded, Recorded, StepClaim
from .keys import KeySchema


@functools.cache
def _lua(name: str) -> str:
    return importlib.resources.files(__package__).joinpath("lua", f"{name}.lua").read_text()


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def connect(url: str, options: dict[str, Any] | None = None, cluster: bool = False) -> Any:
    """A redis-py client for ``durable_redis_url`` (strings decoded as UTF-8)."""
    options = dict(options or {})
    options.setdefault("decode_responses", True)
    options.setdefault("health_check_interval", 30)
    if cluster:
        from redis.cluster import RedisCluster

        options.pop("health_check_interval", None)
        return RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, **options)


class RedisStore(HistoryStore):
    """:class:`~.base.HistoryStore` on a redis-py client.

    >>> store = RedisStore(redis.Redis.from_url(url, decode_responses=True))  # doctest: +SKIP
    """

    def __init__(self, client: Any, *, prefix: str = "durable", lease: float = 30.0,
                 retention: float = 7 * 86400) -> None:
        self.client = client
        self.keys = KeySchema(prefix)
        self.lease = lease
        self.retention = retention
        self._scripts = {name: client.register_script(_lua(name)) for name in (
            "create", "load", "commit", "begin_step", "heartbeat", "record", "retry", "cancel",
            "claim_due")}

    def __repr__(self) -> str:
        return f"<RedisStore prefix={self.keys.prefix!r} client={self.client!r}>"

    def _run(self, name: str, keys: list[str], args: list[Any], client: Any = None) -> Any:
        return self._scripts[name](keys=keys, args=args, client=client or self.client)

    # -- runs ----------------------------------------------------------------------
    def create_run(self, run_id: str, workflow: str, started: dict[str, Any],
                   watch_at: float) -> bool:
        k = self.keys.run(run_id)
        now = _ms(time.time())
        pipe = self.client.pipeline(transaction=False)
        self._run("create", [k.history, k.state], [codec.dumps(started), workflow, now], pipe)
        pipe.zadd(self.keys.runs, {run_id: now}, nx=True)
        pipe.zadd(self.keys.watch, {run_id: _ms(watch_at)})
        created, _, _ = pipe.execute()
        return bool(created)

    def load(self, run_id: str, token: str, start: int) -> Loaded | None:
        k = self.keys.run(run_id)
        reply = self._run("load", [k.history, k.state, k.lease],
                          [token, start, _ms(self.lease)])
        if reply is None:
            return None
        status, raw = reply
        return Loaded(status, [codec.loads(item) for item in raw])

    def commit(self, run_id: str, token: str, events: list[dict[str, Any]],
               queued: list[int], final: dict[str, Any] | None, watch_at: float | None) -> bool:
        k = self.keys.run(run_id)
        now = _ms(time.time())
        args: list[Any] = [token, now, final["type"].removeprefix("run_") if final else "",
                           codec.dumps(final) if final else "", int(self.retention), len(events)]
        args += [codec.dumps(event) for event in events]
        args += queued
        pipe = self.client.pipeline(transaction=False)
        self._run("commit", k.all(), args, pipe)
        if final is not None:
            pipe.zrem(self.keys.watch, run_id)
        elif watch_at is not None:
            pipe.zadd(self.keys.watch, {run_id: _ms(watch_at)})
        result = pipe.execute()[0]
        if result == -1:
            raise LeaseLost(f"run {run_id!r}: the lease was lost before the commit; "
                            "another worker replays it")
        return bool(result)

    # -- steps ---------------------------------------------------------------------
    def begin_step(self, run_id: str, seq: int, deadline: float) -> StepClaim:
        k = self.keys.run(run_id)
        run, attempt, status = self._run("begin_step", [k.history, k.state, k.steps],
                                         [seq, _ms(deadline), repr(time.time())])
        return StepClaim(bool(run), int(attempt), status)

    def heartbeat(self, steps: list[tuple[str, int]], deadline: float) -> None:
        pipe = self.client.pipeline(transaction=False)
        for run_id, seq in steps:
            self._run("heartbeat", [self.keys.run(run_id).steps], [seq, _ms(deadline)], pipe)
        pipe.execute()

    def record(self, run_id: str, seq: int, event: dict[str, Any], token: str) -> Recorded:
        k = self.keys.run(run_id)
        pipe = self.client.pipeline(transaction=False)
        self._run("record", [k.history, k.state, k.steps, k.lease],
                  [seq, codec.dumps(event), token, _ms(self.lease)], pipe)
        # Whoever takes the lease now may die mid-replay: make sure the sweeper looks.
        pipe.zadd(self.keys.watch, {run_id: _ms(time.time() + self.lease)})
        (recorded, leased), _ = pipe.execute()
        return Recorded(bool(recorded), bool(leased))

    def record_retry(self, run_id: str, seq: int, event: dict[str, Any], deadline: float) -> bool:
        k = self.keys.run(run_id)
        return bool(self._run("retry", [k.history, k.state, k.steps],
                              [seq, codec.dumps(event), _ms(deadline)]))

    def request_cancel(self, run_id: str, event: dict[str, Any]) -> bool:
        k = self.keys.run(run_id)
        return bool(self._run("cancel", [k.history, k.state], [codec.dumps(event)]))

    # -- reading ---------------------------------------------------------------------
    def state(self, run_id: str) -> dict[str, str] | None:
        state = self.client.hgetall(self.keys.run(run_id).state)
        return state or None

    def events(self, run_id: str) -> list[dict[str, Any]]:
        return [codec.loads(item) for item in
                self.client.lrange(self.keys.run(run_id).history, 0, -1)]

    def step_fields(self, run_id: str) -> dict[str, str]:
        """The raw per-step bookkeeping hash (attempts, in-flight marks, done marks)."""
        return dict(self.client.hgetall(self.keys.run(run_id).steps))

    def wait_ended(self, run_id: str, timeout: float) -> bool:
        done = self.keys.run(run_id).done
        # Rotating the one-item list onto itself leaves it for every other waiter.
        return self.client.brpoplpush(done, done, timeout=max(timeout, 0.01)) is not None

    # -- recovery ---------------------------------------------------------------------
    def lost_steps(self, run_id: str, now: float) -> list[int]:
        lost = []
        for field, value in self.step_fields(run_id).items():
            if field.startswith("inflight:") and not value.startswith("q:"):
                if int(value) < _ms(now):
                    lost.append(int(field.split(":", 1)[1]))
        return sorted(lost)

    def has_inflight(self, run_id: str) -> bool:
        return any(f.startswith("inflight:") for f in self.step_fields(run_id))

    def claim_due_runs(self, now: float, next_check: float, limit: int) -> list[str]:
        return list(self._run("claim_due", [self.keys.watch],
                              [_ms(now), _ms(next_check), limit]))

    def unwatch(self, run_id: str) -> None:
        self.client.zrem(self.keys.watch, run_id)
