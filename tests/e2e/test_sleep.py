"""Durable time inside workflows (the full timer index comes with the sleep issue)."""

from __future__ import annotations

import pytest

from .conftest import wait_for

pytestmark = pytest.mark.e2e


def test_sleep_asyncio_sleep_and_wait_for_are_durable_time(proj, shared_worker):
    run = proj.sleeper.start(0.5)
    value = run.result(timeout=30)
    assert value["timed_out"] is True
    assert value["slept"] >= 0.5 + 0.2 + 0.3
    events = run.events()
    timers = [e for e in events if e["type"] == "timer_scheduled"]
    fired = [e for e in events if e["type"] == "timer_fired"]
    assert len(timers) == 3 and len(fired) == 3
    due = {e["seq"]: e["due"] for e in timers}
    for fire in fired:
        assert fire["at"] >= due[fire["seq"]]  # never early


def test_wake_up_fires_pending_sleeps(proj, shared_worker):
    run = proj.long_sleeper.start()
    wait_for(lambda: any(e["type"] == "timer_scheduled" for e in run.events()),
             what="the sleep to be scheduled")
    assert run.status == "running"
    assert run.wake_up() == 1
    assert run.result(timeout=30) == "awake"
    assert run.wake_up() == 0


def test_long_sleeps_wait_in_redis_until_the_sweeper_arms_them(proj, start_worker):
    """With a 1 s horizon, a 3 s sleep holds no broker message until it is nearly due."""
    start_worker(extra_env={"DURABLE_TEST_TIMER_HORIZON": "1"})
    store = proj.durable.runtime.store
    run = proj.sleeper.start(3.0)
    def indexed(key):
        return [m for m, _ in store.client.zscan_iter(key, match=f"{run.id}/1/*")]

    wait_for(lambda: indexed(store.keys.timers_due), what="the sleep to wait in the index")
    assert indexed(store.keys.timers_armed) == []
    value = run.result(timeout=30)
    assert value["slept"] >= 3.0 + 0.2 + 0.3
    assert indexed(store.keys.timers_due) == [] and indexed(store.keys.timers_armed) == []
