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
    store = proj.durable.runtime.store
    due = next(e for e in store.events(run.id) if e["type"] == "timer_scheduled")
    event = {"type": "timer_fired", "seq": 1, "at": time.time()}
    # A stale index entry (another due time, or no such timer) is refused...
    assert not store.record(run.id, 1, event, "", timer_due=due["due"] - 3600).recorded
    assert not store.record(run.id, 7, dict(event, seq=7), "", timer_due=due["due"]).recorded
    # ...the committed one fires once.
    assert store.record(run.id, 1, event, "", timer_due=due["due"]).recorded
    assert not store.record(run.id, 1, event, "", timer_due=due["due"]).recorded
    proj.durable.runtime.dispatcher.wake(run.id)
    assert run.result(timeout=30) == "awake"


def test_sweeper_sends_an_overdue_timer_once_per_period(proj):
    store = proj.durable.runtime.store
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
    store = proj.durable.runtime.store
    event = {"type": "hook_received", "seq": 99, "at": time.time(), "payload": 1}
    assert not store.deliver(run.id, event, "hook", token)  # seq 99 is no hook of it
    event["seq"] = store.token_info(token).seq
    assert not store.deliver(run.id, event, "webhook", token)  # not a webhook
    assert store.deliver(run.id, event, "hook", token)
    proj.durable.runtime.dispatcher.wake(run.id)
    assert run.result(timeout=30) == {"payload": 1}


def _fake_run(store, run_id, fields):
    keys = store.keys.run(run_id)
    store.client.hset(keys.state, mapping={"status": "running", "created_at": "1"})
    store.client.hset(keys.steps, mapping=fields)
    return keys


def test_in_flight_marks_say_when_work_is_lost(proj):
    store = proj.durable.runtime.store
    run_id = f"marks-{uuid.uuid4().hex}"
    now = time.time()
    ms = lambda t: str(int(t * 1000))  # noqa: E731
    keys = _fake_run(store, run_id, {
        "inflight:1": ms(now - 1),                         # running, its worker went quiet
        "inflight:2": ms(now + 5),                         # running, alive
        "inflight:3": "p:" + ms(now - store.lease - 1),    # committed, never published
        "inflight:4": "p:" + ms(now - 1),                  # being published just now
        "inflight:5": "q:" + ms(now - 60),                 # queued behind a backlog
        "inflight:6": "r:" + ms(now - 30) + ":" + ms(now - 1),  # its retry never came
        "done:7": "1", "attempt:7": "1"})
    try:
        lost, next_due = store.check_inflight(run_id, now)
        assert lost == [1, 3, 6]
        assert next_due == pytest.approx(now + 5, abs=0.01)  # the alive step's deadline
    finally:
        store.client.delete(*keys.all())


def test_heartbeat_never_shortens_a_retry_or_revives_a_finished_step(proj):
    store = proj.durable.runtime.store
    run_id = f"beat-{uuid.uuid4().hex}"
    later = str(int((time.time() + 600) * 1000))
    keys = _fake_run(store, run_id, {"inflight:1": "r:" + later, "inflight:2": "1000"})
    try:
        store.heartbeat([(run_id, 1), (run_id, 2), (run_id, 3)], time.time() + 30)
        fields = store.step_fields(run_id)
        assert fields["inflight:1"] == "r:" + later
        assert int(fields["inflight:2"]) > 1000
        assert "inflight:3" not in fields
    finally:
        store.client.delete(*keys.all())


def test_a_redelivered_copy_of_a_running_step_is_not_an_attempt(proj, shared_worker, scratch):
    name = f"redeliver-{uuid.uuid4().hex}"
    run = proj.kill_me.start(name)
    started = scratch / f"{name}.started"
    wait_for(started.exists, what="the step to start")
    event = next(e for e in run.events() if e["type"] == "step_scheduled" and e["seq"] == 2)
    proj.durable.runtime.dispatcher.send_step(run.id, 2, event["name"], event["args"],
                                              event["kwargs"])
    wait_for(lambda: f"run {run.id} step #2" in shared_worker.log.read_text()
             and "(running)" in shared_worker.log.read_text(), what="the copy to be skipped")
    (scratch / name).write_text("once")
    assert run.result(timeout=30) == "3:once"
    attempts = [e["attempt"] for e in run.events() if e["type"] == "step_started"
                and e["seq"] == 2]
    assert attempts == [1]
    assert len(started.read_text().split()) == 1


def test_a_commit_does_not_requeue_a_step_that_began_meanwhile(proj):
    from celery_durable.store import Commit

    store = proj.durable.runtime.store
    run_id = f"requeue-{uuid.uuid4().hex}"
    running_until = str(int((time.time() + 30) * 1000))
    keys = _fake_run(store, run_id, {"inflight:1": running_until, "inflight:2": "q:1"})
    store.client.set(keys.lease, "tok", px=10_000)
    try:
        store.commit(run_id, "tok", Commit(queued=[(1, "q1"), (2, "q1")]))
        fields = store.step_fields(run_id)
        assert fields["inflight:1"] == running_until  # its copy will be skipped
        assert fields["inflight:2"].startswith("q:") and fields["inflight:2"].endswith(":q1")
    finally:
        store.client.delete(*keys.all())


def test_a_commit_begins_its_inline_step_only_when_it_releases_the_lease(proj):
    """The step a worker runs inline is begun by its commit (attempt 1, running,
    step_started) unless the commit keeps the lease for unread events (a cancel, say):
    then it is only marked being published, and begin_step decides after the read."""
    from celery_durable.store import Commit

    store = proj.durable.runtime.store
    scheduled = {"type": "step_scheduled", "seq": 1, "name": "x", "args": [], "kwargs": {},
                 "at": time.time()}
    for dirty in (False, True):
        run_id = f"begin-{uuid.uuid4().hex}"
        keys = _fake_run(store, run_id, {"attempt:9": "0"})
        store.client.set(keys.lease, "tok", px=10_000)
        if dirty:
            store.client.hset(keys.state, "dirty", 1)
        deadline = time.time() + 30
        try:
            committed = store.commit(run_id, "tok", Commit(events=[scheduled],
                                                          begin=(1, deadline)))
            fields = store.step_fields(run_id)
            types = [e["type"] for e in store.events(run_id)]
            if dirty:
                assert not committed.released and committed.begun is None
                assert fields["inflight:1"].startswith("p:") and "attempt:1" not in fields
                assert types == ["step_scheduled"]
                assert store.client.get(keys.lease) == "tok"  # kept, to read the events
            else:
                assert committed.released and committed.begun is not None
                assert committed.begun.attempt == 1 and committed.begun.lost == 0
                assert committed.begun.running_until == deadline
                assert fields["inflight:1"] == str(int(deadline * 1000))
                assert types == ["step_scheduled", "step_started"]
                assert store.client.get(keys.lease) is None
        finally:
            store.client.delete(*keys.all())


def test_a_stray_copy_does_not_cut_a_retry_short_and_received_marks_move_on(proj):
    store = proj.durable.runtime.store
    run_id = f"stray-{uuid.uuid4().hex}"
    ms = lambda t: str(int(t * 1000))  # noqa: E731
    now = time.time()
    keys = _fake_run(store, run_id, {"inflight:1": f"r:{ms(now + 3600)}:{ms(now + 3630)}",
                                     "inflight:2": f"c:{ms(now)}:worker-a"})
    try:
        claim = store.begin_step(run_id, 1, now + 30)
        assert (claim.run, claim.status) == (False, "retry-pending")
        store.received([(run_id, 2)], "worker-b")  # the broker handed the message on
        assert store.step_fields(run_id)["inflight:2"].endswith(":worker-b")
        lost, _ = store.check_inflight(run_id, time.time())
        assert lost == [2]  # worker-b beats nowhere: its mark is lost
    finally:
        store.client.delete(*keys.all())


def test_an_inline_claim_that_waited_is_extended_only_if_its_mark_is_unchanged(proj):
    """A commit's claim is used as it is while its mark has most of a lease to live;
    later, it is extended at once if the mark is still the one the commit wrote, and
    dropped (the step is then claimed as a sent one) if anyone changed it meanwhile."""
    from celery_durable.store import StepClaim

    runner = proj.durable.runtime.steps
    store = proj.durable.runtime.store
    lease = runner.lease
    run_id = f"catch-up-{uuid.uuid4().hex}"
    now = time.time()
    keys = _fake_run(store, run_id, {"inflight:1": str(int((now + lease / 2) * 1000))})
    try:
        fresh = StepClaim(True, 1, "running", 0, running_until=now + lease)
        assert runner._catch_up(run_id, 1, "x", fresh) is fresh
        waited = StepClaim(True, 1, "running", 0, running_until=now + lease / 2)
        extended = runner._catch_up(run_id, 1, "x", waited)
        assert extended is not None and extended.running_until is None
        assert int(store.step_fields(run_id)["inflight:1"]) >= int((now + lease - 1) * 1000)
        # Found lost and sent again meanwhile (the mark is another now): not ours.
        store.client.hset(keys.steps, "inflight:1", f"q:{int(now * 1000)}:q1")
        assert runner._catch_up(run_id, 1, "x", waited) is None
        assert store.step_fields(run_id)["inflight:1"].startswith("q:")
    finally:
        store.client.delete(*keys.all())
