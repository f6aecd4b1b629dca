"""Workers SIGKILLed mid-run: the run completes, each outcome recorded once."""

from __future__ import annotations

import collections
import time
import uuid

import pytest

from .conftest import wait_for

pytestmark = pytest.mark.e2e

SHORT_LEASE = {"DURABLE_TEST_LEASE": "2"}


def test_worker_killed_mid_step_run_completes_on_a_new_worker(proj, start_worker, scratch):
    name = f"kill-{uuid.uuid4().hex}"
    first = start_worker(extra_env=SHORT_LEASE)
    run = proj.kill_me.start(name)
    started = scratch / f"{name}.started"
    wait_for(started.exists, timeout=30, what="the step to start on the first worker")
    first.kill()
    killed_at = time.monotonic()
    (scratch / name).write_text("survived")
    second = start_worker(extra_env=SHORT_LEASE)
    try:
        assert run.result(timeout=60) == "3:survived"
    except TimeoutError:
        print(second.tail())
        raise
    # Picked up within a few leases, not Celery's one-hour visibility timeout.
    assert time.monotonic() - killed_at < 30
    events = run.events()
    completed = collections.Counter(e["seq"] for e in events if e["type"] == "step_completed")
    assert completed == {1: 1, 2: 1}
    attempts = [e["attempt"] for e in events if e["type"] == "step_started" and e["seq"] == 2]
    assert attempts == [1, 2]
    assert len(started.read_text().split()) == 2  # the step body ran on both workers


def test_worker_killed_mid_replay_run_completes_on_a_new_worker(proj, start_worker, scratch):
    name = f"replay-kill-{uuid.uuid4().hex}"
    env = dict(SHORT_LEASE, DURABLE_TEST_BLOCK_DEADLINE="120")
    first = start_worker(extra_env=env)
    run = proj.slow_replay.start(name)
    wait_for((scratch / f"{name}.replaying").exists, timeout=30,
             what="the replay to reach the hanging point")
    first.kill()
    killed_at = time.monotonic()
    second = start_worker(extra_env=env)
    try:
        assert run.result(timeout=60) == 6
    except TimeoutError:
        print(second.tail())
        raise
    assert time.monotonic() - killed_at < 30
    completed = collections.Counter(
        e["seq"] for e in run.events() if e["type"] == "step_completed")
    assert completed == {1: 1, 2: 1}


def test_duplicate_step_message_changes_nothing(proj, shared_worker, scratch):
    name = f"dup-{uuid.uuid4().hex}"
    run = proj.kill_me.start(name)
    wait_for((scratch / f"{name}.started").exists, what="the step to start")
    (scratch / name).write_text("once")
    assert run.result(timeout=30) == "3:once"
    before = run.events()
    # Re-deliver both step messages and a stray orchestrate, as a broker might.
    for event in before:
        if event["type"] == "step_scheduled":
            proj.durable.runtime.dispatcher.send_step(run.id, event["seq"], event["name"],
                                                      event["args"], event["kwargs"])
    proj.durable.runtime.dispatcher.wake(run.id)
    proj.durable.runtime.dispatcher.wake(run.id, recover=True)
    wait_for(lambda: shared_worker.log.read_text().count(f"run {run.id} step #2") >= 1,
             what="the duplicate to be seen by the worker")
    after = run.events()
    assert after == before


def test_step_that_keeps_killing_its_worker_fails_after_its_attempts(proj, start_worker, scratch):
    worker = start_worker(extra_env=SHORT_LEASE)  # lost messages come back within a lease
    key = uuid.uuid4().hex
    run = proj.crashing.start(key)
    with pytest.raises(Exception, match="worker was lost") as info:
        try:
            run.result(timeout=120)
        except TimeoutError:
            print(worker.tail())
            raise
    assert type(info.value).__name__ == "WorkerLostError"
    assert (scratch / f"crash-{key}").read_text() == "2"  # max_retries=1: two attempts
    assert run.status == "failed"


def test_run_id_reused_after_retention_starts_afresh(proj, shared_worker):
    run_id = f"reused-{uuid.uuid4().hex[:8]}"
    for value in (1, 2, 3):
        run = proj.one_arg.apply_async(args=(value,), run_id=run_id)
        assert run.result(timeout=30) == value + 1
        # Retention passes: the run's keys expire (here: deleted at once).
        keys = proj.durable.runtime.store.keys.run(run_id)
        proj.durable.runtime.store.client.delete(*keys.all())


def test_wrong_start_arguments_are_refused_at_the_call_site(proj):
    with pytest.raises(TypeError, match="one_arg'.*missing a required argument"):
        proj.one_arg.start()
    with pytest.raises(TypeError, match="too many positional arguments"):
        proj.one_arg.start(1, 2)


def test_worker_killed_while_a_run_sleeps_the_run_wakes_on_time(proj, start_worker):
    first = start_worker(extra_env=SHORT_LEASE)
    run = proj.sleeper.start(4.0)
    wait_for(lambda: any(e["type"] == "timer_scheduled" for e in run.events()),
             what="the sleep to be scheduled")
    first.kill()  # its ETA message for the timer dies with it (held, unacked)
    second = start_worker(extra_env=SHORT_LEASE)
    try:
        value = run.result(timeout=60)
    except TimeoutError:
        print(second.tail())
        raise
    assert value["slept"] >= 4.0 + 0.2 + 0.3
    events = run.events()
    scheduled = next(e for e in events if e["type"] == "timer_scheduled" and e["seq"] == 1)
    fired = [e for e in events if e["type"] == "timer_fired" and e["seq"] == 1]
    assert len(fired) == 1
    import datetime as dt

    lateness = (dt.datetime.fromisoformat(fired[0]["at"])
                - dt.datetime.fromisoformat(scheduled["due"])).total_seconds()
    assert 0 <= lateness < 4.0  # re-armed within the timer grace (2 s) and a sweep


def test_steps_a_killed_worker_had_prefetched_are_sent_again_within_a_lease(
        proj, start_worker, scratch):
    env = dict(SHORT_LEASE, DURABLE_TEST_PREFETCH="4")
    first = start_worker(concurrency=1, extra_env=env)
    name = f"prefetch-{uuid.uuid4().hex}"
    run = proj.three_waits.start(name)
    store = proj.durable.runtime.store

    def marks():
        return {f: v for f, v in store.step_fields(run.id).items() if f.startswith("inflight:")}

    # One step runs (blocked on its file), the other two sit prefetched in the worker.
    wait_for(lambda: len(marks()) == 3 and sum(v.startswith("c:") for v in marks().values())
             == 2, what="two prefetched steps marked as held by the worker")
    first.kill()
    killed_at = time.monotonic()
    for i in range(3):
        (scratch / f"{name}-{i}").write_text(str(i))
    second = start_worker(concurrency=1, extra_env=env)
    try:
        assert run.result(timeout=60) == ["0", "1", "2"]
    except TimeoutError:
        print(second.tail())
        raise
    assert time.monotonic() - killed_at < 30  # not the broker's one-hour visibility timeout
