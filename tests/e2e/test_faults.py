"""Workers SIGKILLed mid-run: the run completes, each outcome recorded once."""

from __future__ import annotations

import collections
import re
import time
import uuid

import pytest

from celery_durable import WorkflowBlockedError

from .conftest import wait_for

pytestmark = pytest.mark.e2e

SHORT_LEASE = {"DURABLE_TEST_LEASE": "2"}


def test_worker_killed_mid_step_run_completes_on_a_new_worker(proj, start_worker, scratch):
    name = f"kill-{uuid.uuid4().hex}"
    first = start_worker(extra_env=SHORT_LEASE)
    run = proj.kill_me.start(name)
    started = scratch / f"{name}.started"
    wait_for(started.exists, timeout=30, what="the step to start on the first worker")
    # The killed attempt ran inline: the worker that recorded step 1 began step 2 in the
    # same commit and ran it itself, with no message of its own to redeliver.
    assert re.search(rf"run {run.id} step #2 \S+wait_for_file: runs inline",
                     first.log.read_text()), first.tail()
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


def test_workflow_code_that_blocks_is_interrupted_and_fails_its_run(proj, start_worker):
    """A workflow stuck in a blocking call (here time.sleep(3600), caught by an
    `except Exception` that blocks again) fails at the replay deadline with an error that
    says so; the worker process is free again and runs the next run."""
    worker = start_worker(concurrency=1, extra_env={"DURABLE_TEST_BLOCK_DEADLINE": "1"})
    started = time.monotonic()
    run = proj.blocks_forever.start()
    with pytest.raises(WorkflowBlockedError, match="must not block"):
        run.result(timeout=30)
    assert time.monotonic() - started < 15
    assert proj.data_pipeline.start({"name": "al"}).result(timeout=30) == "stored:VALID:AL"
    assert "replay failed, the run fails" in worker.log.read_text()


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
    # Lost messages come back within a lease; one lost attempt is allowed, not two.
    worker = start_worker(extra_env=dict(SHORT_LEASE, DURABLE_TEST_MAX_LOST="1"))
    key = uuid.uuid4().hex
    run = proj.crashing.start(key)
    with pytest.raises(Exception, match="worker was lost") as info:
        try:
            run.result(timeout=120)
        except TimeoutError:
            print(worker.tail())
            raise
    assert type(info.value).__name__ == "WorkerLostError"
    assert (scratch / f"crash-{key}").read_text() == "2"  # one allowed loss: two attempts
    assert "its worker was lost 2 times" in str(info.value)
    assert run.status == "failed"


def test_a_killed_worker_does_not_spend_a_step_without_retries(proj, start_worker, scratch):
    """max_retries=0 means one failure ends the step; a worker lost mid-step is no failure
    of the step's (guarantee 1: the undisturbed result)."""
    name = f"kill-once-{uuid.uuid4().hex}"
    first = start_worker(extra_env=SHORT_LEASE)
    run = proj.kill_me_once.start(name)
    wait_for((scratch / f"{name}.started").exists, what="the step to start")
    first.kill()
    (scratch / name).write_text("survived")
    start_worker(extra_env=SHORT_LEASE)
    assert run.result(timeout=60) == "3:survived"
    attempts = [e["attempt"] for e in run.events() if e["type"] == "step_started"
                and e["seq"] == 2]
    assert attempts == [1, 2]


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


def test_a_step_message_taken_by_a_worker_that_died_unmarked_comes_back_within_a_lease(
        proj, start_worker, e2e_env):
    """A worker took the message off the queue (as kombu does: off the list, into its
    `unacked` hash) and was SIGKILLed before it could mark it taken: the step's mark
    still says "queued". Once a message sent to that queue a lease later has begun, the
    step is known lost and sent again: within a few leases, not after the hour of
    durable_queue_timeout or the broker's visibility timeout."""
    import json

    import redis

    queue = e2e_env["DURABLE_TEST_QUEUE"]
    other = f"{queue}-other"  # where `routed` goes; the first worker does not consume it
    client = redis.Redis.from_url(e2e_env["DURABLE_TEST_REDIS_URL"])
    start_worker(extra_env=SHORT_LEASE, queues=queue)
    lost = proj.uses_routed.start()
    message = wait_for(lambda: client.rpop(other), what="the step's message on its queue")
    tag = json.loads(message)["properties"]["delivery_tag"]
    client.hset("unacked", tag, json.dumps([json.loads(message), "", other]))
    client.zadd("unacked_index", {tag: time.time()})
    try:
        wait_for(lambda: any(v.startswith("q:") for f, v in
                             proj.durable.runtime.store.step_fields(lost.id).items()
                             if f.startswith("inflight:")), what="the step marked queued")
        time.sleep(2.5)  # the next message must be sent more than a lease (2 s) later
        later = proj.uses_routed.start()
        start_worker(extra_env=SHORT_LEASE, queues=f"{queue},{other}")
        assert later.result(timeout=30) == "routed"
        began = time.monotonic()
        assert lost.result(timeout=30) == "routed"
        assert time.monotonic() - began < 15  # a few leases and sweeps
    finally:
        client.hdel("unacked", tag)
        client.zrem("unacked_index", tag)


def test_a_run_started_while_the_broker_is_down_is_picked_up_by_the_sweeper(
        proj, start_worker, e2e_env):
    """start() saves the run, the broker refuses its first message: start() returns the
    run and says so; a worker's sweeper starts it (guarantee 7)."""
    import subprocess
    import sys

    from celery_durable.devstack import free_port

    from .conftest import ROOT

    env = dict(e2e_env, DURABLE_TEST_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0",
               DURABLE_TEST_LEASE="2")
    done = subprocess.run(
        [sys.executable, "-c", "from tests.e2e import proj; "
                               "print(proj.data_pipeline.start({'name': 'ada'}).id)"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "the broker did not take its first message" in done.stderr
    run = proj.durable.get_run(done.stdout.strip())
    assert run.status == "running"
    start_worker(extra_env=SHORT_LEASE)
    assert run.result(timeout=30) == "stored:VALID:ADA"


def test_a_first_orchestrate_message_lost_with_its_worker_is_sent_again(
        proj, start_worker, e2e_env):
    """The worker that took a run's first message died with it (kombu keeps it unacked
    for the visibility timeout): the run holds only run_started, and the sweeper
    drives it within a lease or two."""
    import redis

    client = redis.Redis.from_url(e2e_env["DURABLE_TEST_REDIS_URL"])
    queue = e2e_env["DURABLE_TEST_QUEUE"]
    start_worker(extra_env=SHORT_LEASE, queues=f"{queue}-other")  # not the main queue
    run = proj.data_pipeline.start({"name": "bob"})
    assert wait_for(lambda: client.rpop(queue), what="the run's first message")
    assert [e["type"] for e in run.events()] == ["run_started"]
    start_worker(extra_env=SHORT_LEASE)
    assert run.result(timeout=30) == "stored:VALID:BOB"


def test_a_deploy_of_patched_code_keeps_old_runs_on_the_old_branch(proj, start_worker, scratch):
    """A run started under the old code, the workers restarted on the patched code: that
    run ends on the old branch, a new run takes the new one, neither diverges."""
    key = f"deploy-{uuid.uuid4().hex[:8]}"
    old = start_worker(extra_env=dict(SHORT_LEASE, DURABLE_TEST_CODE="old"))
    before = proj.checkout.start(key)
    wait_for((scratch / f"{key}.started").exists, what="the old code's step to start")
    old.kill()  # the deploy
    start_worker(extra_env=dict(SHORT_LEASE, DURABLE_TEST_CODE="patched"))
    (scratch / key).write_text("old-branch")
    assert before.result(timeout=60) == "fee=old-branch"
    assert not any(e["type"] == "patch_marked" for e in before.events())
    after = proj.checkout.start(f"{key}-new")
    assert after.result(timeout=30) == f"fee=v2:{key}-new"
    assert [e["patch"] for e in after.events() if e["type"] == "patch_marked"] == ["fee-v2"]
    # Both histories replay on the patched code (what `celery durable replay` checks).
    from celery_durable.replay_check import read_exports, replay_record

    runtime = proj.durable.runtime
    for run in (before, after):
        record = next(read_exports([runtime.export(run.id)]))
        assert replay_record(record, runtime).ok
