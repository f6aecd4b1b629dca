"""The run listing against a real Redis: newest first, filters, cursors, entries kept
in step with the runs' status, and the retention sweep."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from celery_durable.engine.history import started_event
from celery_durable.store.base import Commit
from celery_durable.store.connect import connect
from celery_durable.store.redis import RedisStore


@pytest.fixture
def store(redis_server, session_tag: str) -> Iterator[RedisStore]:
    prefix = f"durable-{session_tag}-index-{uuid.uuid4().hex[:6]}"
    store = RedisStore(connect(redis_server.url), prefix=prefix, lease=30, retention=1,
                       timer_horizon=300, queue_timeout=3600, timer_grace=2)
    yield store
    client = redis.Redis.from_url(redis_server.url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


def start(store: RedisStore, run_id: str, workflow: str) -> None:
    assert store.create_run(run_id, workflow, started_event(workflow, [], {}),
                            time.time() + 30) is None
    time.sleep(0.002)  # distinct creation times: the order under test


def end(store: RedisStore, run_id: str, kind: str = "run_completed") -> None:
    assert store.load(run_id, "t", 0) is not None
    store.commit(run_id, "t", Commit(final={"type": kind, "at": time.time(), "result": 1}))


def test_newest_first_with_filters_and_cursors(store):
    for i in range(12):
        start(store, f"r{i:02d}", "wf.a" if i % 2 else "wf.b")
    for i in range(0, 12, 3):
        end(store, f"r{i:02d}")
    assert [r.run_id for r in store.list_runs(limit=3)] == ["r11", "r10", "r09"]
    completed = store.list_runs("completed", limit=10)
    assert [r.run_id for r in completed] == ["r09", "r06", "r03", "r00"]
    assert all(r.ended_at and r.duration is not None for r in completed)
    assert [r.run_id for r in store.list_runs("running", "wf.a", 10)] == \
        ["r11", "r07", "r05", "r01"]
    first = store.list_runs(workflow="wf.b", limit=2)
    rest = store.list_runs(workflow="wf.b", limit=10, cursor=first[-1].cursor)
    assert [r.run_id for r in first + rest] == ["r10", "r08", "r06", "r04", "r02", "r00"]
    with pytest.raises(ValueError, match="unknown status"):
        store.list_runs("stuck")


def test_an_entry_out_of_step_with_its_run_is_not_listed_and_is_mended(store):
    start(store, "r1", "wf.a")
    end(store, "r1")
    store.client.zadd(store.index.status("running"), {"r1": 1})  # a lost move
    assert store.list_runs("running") == []
    assert store.client.zscore(store.index.status("running"), "r1") is None
    assert [r.run_id for r in store.list_runs("completed")] == ["r1"]


def test_runs_past_their_retention_leave_the_listing(store):
    start(store, "old", "wf.a")
    end(store, "old", "run_failed")
    start(store, "live", "wf.a")
    deadline = time.monotonic() + 10
    while store.client.exists(store.keys.run("old").state) and time.monotonic() < deadline:
        time.sleep(0.05)  # its keys expire after the retention (1 s)
    assert store.trim_ended(time.time()) == 1
    assert [r.run_id for r in store.list_runs(limit=10)] == ["live"]
    assert store.client.zcard(store.index.status("failed")) == 0
    assert store.client.zcard(store.index.ended) == 0
