"""The Redis store's safety rules, checked directly against a real Redis."""

from __future__ import annotations

import time
import uuid

import pytest

from .conftest import wait_for

pytestmark = pytest.mark.e2e


def test_a_timer_fires_only_as_committed(proj, shared_worker):
    run = proj.long_sleeper.start()
    wait_for(lambda: any(e["type"] == "timer_scheduled" for e in run.events()),
             what="the sleep to be scheduled")
    due = next(e for e in proj.durable.store.events(run.id) if e["type"] == "timer_scheduled")
    store = proj.durable.store
    event = {"type": "timer_fired", "seq": 1, "at": time.time()}
    # A stale index entry (another due time, or no such timer) is refused...
    assert not store.record(run.id, 1, event, "", timer_due=due["due"] - 3600).recorded
    assert not store.record(run.id, 7, dict(event, seq=7), "", timer_due=due["due"]).recorded
    # ...the committed one fires once.
    assert store.record(run.id, 1, event, "", timer_due=due["due"]).recorded
    assert not store.record(run.id, 1, event, "", timer_due=due["due"]).recorded
    proj.durable.wake(run.id)
    assert run.result(timeout=30) == "awake"


def test_sweeper_sends_an_overdue_timer_once_per_period(proj):
    store = proj.durable.store
    member = f"sweep-{uuid.uuid4().hex}/1/{int((time.time() - 10) * 1000)}"
    store.client.zadd(store.keys.timers_due, {member: int((time.time() - 10) * 1000)})
    try:
        first = [m for m in store.arm_due_timers(time.time())
                 if f"{m[0]}/{m[1]}" == member.rsplit("/", 1)[0]]
        again = [m for m in store.arm_due_timers(time.time())
                 if f"{m[0]}/{m[1]}" == member.rsplit("/", 1)[0]]
        assert len(first) == 1 and again == []  # re-sent only after a lease, if still there
        run_id, seq, due = first[0]
        assert due == pytest.approx(int(member.rsplit("/", 1)[1]) / 1000)
    finally:
        store.client.zrem(store.keys.timers_due, member)
        store.client.zrem(store.keys.timers_armed, member)


def test_delivery_to_a_token_the_run_never_committed_is_refused(proj, shared_worker, scratch):
    from .test_webhooks import published

    run = proj.hook_random.start()
    token = published(scratch, "hook", run)
    store = proj.durable.store
    event = {"type": "hook_received", "seq": 99, "at": time.time(), "payload": 1}
    assert not store.deliver(run.id, event, "hook", token)  # seq 99 is no hook of it
    event["seq"] = int(store.token_info(token)["seq"])
    assert not store.deliver(run.id, event, "webhook", token)  # not a webhook
    assert store.deliver(run.id, event, "hook", token)
    proj.durable.wake(run.id)
    assert run.result(timeout=30) == {"payload": 1}
