"""Histories the engine did not write: unreadable entries fail the run once, clearly;
a history that lost writes (a Redis rollback) is replayed from the start, never left
stuck behind a live instance that is ahead of it."""

from __future__ import annotations

import time
import uuid

import pytest

from celery_durable.errors import CorruptHistory

from .conftest import wait_for

pytestmark = pytest.mark.e2e


def _wait_hook(proj, token: str) -> None:
    wait_for(lambda: proj.durable.runtime.store.token_info(token), what="the hook")


def test_an_unreadable_entry_fails_the_run_once_naming_it(proj, shared_worker):
    token = f"corrupt:{uuid.uuid4().hex[:8]}"
    run = proj.hook_wait.start(token)
    _wait_hook(proj, token)
    store = proj.durable.runtime.store
    keys = store.keys.run(run.id)
    index = store.client.rpush(keys.history, '{"type": "hook_received", "seq": 1, trunc') - 1
    store.client.hset(keys.state, "dirty", 1)
    proj.durable.runtime.dispatcher.wake(run.id)
    with pytest.raises(CorruptHistory, match=rf"history entry #{index} is not valid JSON"):
        run.result(timeout=30)
    events = run.events()
    assert events[index]["type"] == "unreadable" and "trunc" in events[index]["raw"]
    assert [e["type"] for e in events].count("run_failed") == 1


def test_a_run_started_without_its_arguments_fails_clearly(proj, shared_worker):
    run_id = f"bad-start-{uuid.uuid4().hex[:8]}"
    runtime = proj.durable.runtime
    started = {"type": "run_started", "at": time.time(), "workflow": proj.one_arg.name}
    assert runtime.store.create_run(run_id, proj.one_arg.name, started, time.time() + 2) is None
    runtime.dispatcher.wake(run_id)
    with pytest.raises(CorruptHistory, match="lacks or garbles args, kwargs"):
        proj.durable.get_run(run_id).result(timeout=30)


def test_a_history_that_lost_writes_is_replayed_from_the_start(proj, shared_worker):
    """Redis rolled back (an RDB snapshot, a failover): the worker's live instance saw a
    payload the history no longer holds. The run must follow the history."""
    token = f"rollback:{uuid.uuid4().hex[:8]}"
    run = proj.two_payloads.start(token)
    _wait_hook(proj, token)
    store = proj.durable.runtime.store
    keys = store.keys.run(run.id)
    client = store.client
    saved = {key: client.dump(key) for key in (keys.history, keys.state, keys.steps)}
    length = client.llen(keys.history)
    proj.durable.resume_hook(token, "lost")

    def seen() -> bool:  # the worker fed "lost" to its live instance and let go
        state = store.state(run.id)
        return state is not None and not state.dirty and not state.replaying and \
            client.llen(keys.history) > length
    wait_for(seen, what="the payload to be replayed")
    for key, value in saved.items():  # the rollback
        client.restore(key, 0, value, replace=True)
    proj.durable.resume_hook(token, "b")
    proj.durable.resume_hook(token, "c")
    assert run.result(timeout=30) == ["b", "c"]
