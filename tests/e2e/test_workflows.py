"""Every feature of the core engine, end to end: real Redis, real worker subprocess."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from celery_durable import NonDeterminismError, RunNotFound, StepFailed, WorkflowCancelled

from .conftest import wait_for

pytestmark = pytest.mark.e2e


def result_of(run, worker, timeout=30):
    try:
        return run.result(timeout=timeout)
    except TimeoutError:
        print(worker.tail())
        raise


def test_sequential_pipeline(proj, shared_worker):
    run = proj.data_pipeline.start({"name": "ada"})
    assert result_of(run, shared_worker) == "stored:VALID:ADA"
    assert run.status == "completed"
    events = run.events()
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_completed"
    scheduled = [e["name"] for e in events if e["type"] == "step_scheduled"]
    assert scheduled == ["tests.e2e.proj.validate_data", "tests.e2e.proj.process_data",
                         "tests.e2e.proj.store_data"]
    assert all(e["at"].endswith("+00:00") for e in events)
    completed = [e for e in events if e["type"] == "step_completed"]
    assert [e["name"] for e in completed] == scheduled  # events() names the step


def test_gather_fan_out(proj, shared_worker):
    run = proj.fan_out.start(20)
    assert result_of(run, shared_worker) == sum(range(20))
    completed = [e["seq"] for e in run.events() if e["type"] == "step_completed"]
    assert sorted(completed) == list(range(1, 21))


def test_gather_fails_fast_with_the_steps_own_exception(proj, shared_worker):
    run = proj.gather_fail_fast.start()
    assert result_of(run, shared_worker) == "caught CardDeclined: declined"


def test_gather_return_exceptions_and_all_settled(proj, shared_worker):
    run = proj.settled.start()
    assert result_of(run, shared_worker) == [
        [2, "CardDeclined"], [[True, 4, None], [False, None, "CardDeclined"]]]


def test_race_first_to_settle_wins_and_loser_is_recorded(proj, shared_worker, scratch):
    name = f"race-{uuid.uuid4().hex}"
    run = proj.racing.start(name)
    assert result_of(run, shared_worker) == {"winner": 42}
    # The loser keeps running; the run has ended, so its late result is dropped.
    (scratch / name).write_text("late")
    loser_seq = next(e["seq"] for e in run.events() if e["type"] == "step_scheduled"
                     and e["name"].endswith("wait_for_file"))
    assert loser_seq == 1
    assert run.result() == {"winner": 42}


def test_tasks_waits_and_taskgroup(proj, shared_worker):
    run = proj.tasks_and_waits.start()
    assert result_of(run, shared_worker) == {
        "background": 2, "future": 4, "wait": [6, 8], "pending": 0,
        "as_completed": [10, 12], "asyncio_wait": [14], "taskgroup": [16, 18]}


def test_retries_then_success_with_stable_step_id(proj, shared_worker):
    key = uuid.uuid4().hex
    run = proj.retries.start(key)
    value = result_of(run, shared_worker)
    assert value["attempt"] == 3
    assert value["run_id"] == run.id
    assert value["step_id"] == f"{run.id}:1"
    retrying = [e for e in run.events() if e["type"] == "step_retrying"]
    assert [e["attempt"] for e in retrying] == [1, 2]
    assert retrying[0]["error"]["exc_type"] == "ConnectionError"


def test_retries_exhausted_raise_the_original_type(proj, shared_worker):
    run = proj.retries_exhausted.start(uuid.uuid4().hex)
    with pytest.raises(ConnectionError, match="attempt 3 failed"):
        result_of(run, shared_worker)
    assert run.status == "failed"
    started = [e for e in run.events() if e["type"] == "step_started"]
    assert len(started) == 3  # max_retries=2: three attempts


def test_fatal_error_is_not_retried(proj, shared_worker):
    run = proj.fatal.start()
    with pytest.raises(Exception, match="no point retrying") as info:
        result_of(run, shared_worker)
    assert type(info.value).__name__ == "FatalError"
    assert not [e for e in run.events() if e["type"] == "step_retrying"]


def test_retryable_error_waits_retry_after(proj, shared_worker):
    run = proj.retry_after.start(uuid.uuid4().hex)
    waited = result_of(run, shared_worker)
    assert waited >= 0.5


def test_deterministic_now_random_uuid_and_metadata(proj, shared_worker):
    run = proj.deterministic.start()
    value = result_of(run, shared_worker)
    assert value["run_id"] == run.id
    assert value["name"] == "tests.e2e.proj.deterministic"
    first, second = value["first"], value["second"]
    assert first[1] != second[1] and first[2] != second[2]
    assert second[0] >= first[0] == value["started_at"]
    # Replaying the same history in this process gives the same values.
    from celery_durable.engine.replay import Replayer

    replayer = Replayer(proj.deterministic.fn, run_id=run.id)
    replayer.feed([e for e in proj.durable.runtime.store.events(run.id)])
    from celery_durable.codec import check_value

    assert check_value("replayed result", replayer.outcome.value) == value


def test_cancel_raises_cancelled_error_and_cleanup_runs(proj, shared_worker, scratch):
    name = f"cancel-{uuid.uuid4().hex}"
    run = proj.cancellable.start(name)
    wait_for(lambda: (scratch / f"{name}.started").exists(), what="the step to start")
    assert run.cancel() is True
    with pytest.raises(WorkflowCancelled):
        result_of(run, shared_worker)
    assert run.status == "cancelled"
    types = [e["type"] for e in run.events()]
    assert "cancel_requested" in types
    cleanup = [e for e in run.events() if e["type"] == "step_scheduled"
               and e["name"].endswith(".add")]
    assert len(cleanup) == 1
    (scratch / name).write_text("done")
    assert run.cancel() is False  # already ended


def test_non_determinism_fails_the_run_and_keeps_history(proj, shared_worker, scratch):
    name = f"nd-{uuid.uuid4().hex}"
    run = proj.changing.start(name)
    wait_for(lambda: (scratch / f"{name}.started").exists(), what="the step to start")
    # Record a history with variant "a", then change the code's behaviour: the
    # replay that follows the step's completion must notice the divergence.
    store = proj.durable.runtime.store
    before = store.events(run.id)
    (scratch / f"{name}.variant").write_text("b")
    (scratch / name).write_text("xyz")
    # variant b emits noop(99) at seq 2 where... seq 2 is not recorded yet, so it
    # is accepted; force a divergence by replaying a changed history instead:
    result = result_of(run, shared_worker)
    assert result == 99
    history = store.events(run.id)
    assert history[: len(before)] == before
    from celery_durable.engine.replay import Replayer

    replayer = Replayer(proj.changing.fn, run_id=run.id)
    (scratch / f"{name}.variant").write_text("a")
    with pytest.raises(NonDeterminismError) as info:
        replayer.feed(history)
    assert info.value.position == 2
    assert "noop" in str(info.value) and "add" in str(info.value)


def test_non_determinism_in_a_live_run_fails_it(proj, shared_worker, scratch):
    name = f"nd-live-{uuid.uuid4().hex}"
    (scratch / f"{name}.variant").parent.mkdir(parents=True, exist_ok=True)
    run = proj.changing.start(name)
    (scratch / name).write_text("ab")
    assert result_of(run, shared_worker) == 3  # variant a: add(1, 2)
    # Now a *live* divergence: start another run, let it schedule seq 2 with
    # variant a, then flip the variant and wake the run: the replay emits noop.
    name2 = f"{name}-2"
    run2 = proj.changing.start(name2)
    wait_for(lambda: (scratch / f"{name2}.started").exists(), what="the step to start")
    store = proj.durable.runtime.store
    # Append a completion of seq 1 and a recorded seq 2 (variant a's command) by
    # hand-replaying with variant a; then flip to variant b for the worker.
    (scratch / f"{name2}.variant").write_text("a")
    from celery_durable.engine.replay import Replayer

    replayer = Replayer(proj.changing.fn, run_id=run2.id)
    events = store.events(run2.id)
    replayer.feed(events + [{"type": "step_completed", "seq": 1, "at": events[-1]["at"],
                             "result": "zz"}])
    command = replayer.take_new_commands()[0]
    assert command.name.endswith(".add")
    client = store.client
    keys = store.keys.run(run2.id)
    client.rpush(keys.history, __import__("celery_durable.codec").codec.dumps(
        command.to_event(events[-1]["at"])))
    (scratch / f"{name2}.variant").write_text("b")
    (scratch / name2).write_text("zz")
    with pytest.raises(NonDeterminismError) as info:
        result_of(run2, shared_worker)
    assert info.value.position == 2
    assert run2.status == "failed"


def test_unserializable_argument_is_refused_at_the_call_site(proj, shared_worker):
    with pytest.raises(TypeError, match=r"workflow 'tests.e2e.proj.fan_out': argument 0 of "
                                        r"type object cannot be sent as JSON"):
        proj.fan_out.start(object())
    run = proj.bad_argument.start()
    with pytest.raises(TypeError, match=r"step 'tests.e2e.proj.add': argument 0 of type object"):
        result_of(run, shared_worker)


def test_step_called_outside_a_workflow_runs_directly(proj):
    assert proj.add(2, 3) == 5
    assert asyncio.run(proj.store_data("x")) == "stored:x"


def test_step_as_plain_celery_task(proj, shared_worker):
    from celery.result import AsyncResult  # noqa: F401 - results are ignored for steps

    proj.noop.delay(1)  # accepted and run like any Celery task, outside any run
    assert proj.noop.task.name == "tests.e2e.proj.noop"
    assert proj.noop.task.acks_late is True


def test_celery_options_pass_through_and_route(proj, shared_worker):
    # Routing options travel with the step's messages, not as task attributes (which
    # Celery 5.7 deprecates and 6.0 ignores): no CDeprecationWarning when defining one.
    assert "queue" not in type(proj.routed.task).__dict__
    queue = proj.durable.runtime.dispatcher.queue_of(proj.routed.name)
    assert queue.endswith("-other")
    # What `durable dev` and the test kit's worker consume: the routed step's queue too.
    assert queue in proj.durable.runtime.registry.queues("celery")
    run = proj.uses_routed.start()
    assert result_of(run, shared_worker) == "routed"
    started = [e for e in run.events() if e["type"] == "step_started"]
    assert started, "the routed step never began"


def test_idempotent_start_with_run_id(proj, shared_worker):
    run_id = f"order-{uuid.uuid4().hex[:8]}"
    first = proj.data_pipeline.apply_async(args=({"name": "bo"},), run_id=run_id)
    second = proj.data_pipeline.apply_async(args=({"name": "other"},), run_id=run_id)
    assert first.id == second.id == run_id
    assert result_of(second, shared_worker) == "stored:VALID:BO"
    starts = [e for e in second.events() if e["type"] == "run_started"]
    assert len(starts) == 1
    assert proj.durable.get_run(run_id).status == "completed"
    run3 = proj.durable.start(proj.data_pipeline, {"name": "cy"})
    assert result_of(run3, shared_worker) == "stored:VALID:CY"


def test_get_run_unknown_and_bad_run_id(proj):
    with pytest.raises(RunNotFound):
        proj.durable.get_run("no-such-run")
    with pytest.raises(ValueError, match="run id"):
        proj.data_pipeline.apply_async(args=({},), run_id="bad id{x}")


def test_result_timeout(proj, shared_worker, scratch):
    name = f"timeout-{uuid.uuid4().hex}"
    run = proj.kill_me.start(name)
    with pytest.raises(TimeoutError):
        run.result(timeout=0.3)
    (scratch / name).write_text("ok")
    assert result_of(run, shared_worker) == "3:ok"


def test_step_failed_fallback_for_unknown_types(proj):
    exc = proj.durable.runtime.errors.decode({"exc_type": "Gone", "exc_module": "nowhere.mod",
                                      "exc_message": ["x"], "message": "x"}, "s")
    assert isinstance(exc, StepFailed)
    assert exc.type == "nowhere.mod.Gone" and exc.message == "x"


def test_a_retry_beyond_the_timer_horizon_holds_no_message(proj, start_worker):
    """With a 0.2 s horizon, a 0.5 s retry_after is sent by the sweeper when due."""
    worker = start_worker(extra_env={"DURABLE_TEST_TIMER_HORIZON": "0.2"})
    run = proj.retry_after.start(uuid.uuid4().hex)
    waited = result_of(run, worker)
    assert waited >= 0.5
    assert "is due again (a long retry" in worker.log.read_text()


def test_the_next_step_runs_inline_on_the_worker_that_continues_the_run(proj, shared_worker):
    """No message for a step the continuing worker runs itself; a budget (10 steps) sends
    the run back through the broker; fan-outs and inline=False steps are always sent."""
    import re

    from celery_durable.dispatch import step_task_id

    run = proj.sequential.start(25)
    assert run.result(timeout=60) == sum(range(25))
    fanned = proj.fan_out.start(3)
    assert fanned.result(timeout=30) == 3

    def inline_seqs(run_id: str) -> set[int]:
        return {int(m) for m in re.findall(rf"run {run_id} step #(\d+) \S+: runs inline",
                                           shared_worker.log.read_text())}

    def received(run_id: str, seq: int) -> bool:
        return f"[{step_task_id(run_id, seq)}] received" in shared_worker.log.read_text()

    seqs = inline_seqs(run.id)
    assert 10 <= len(seqs) < 25  # most of them, and the budget sent some through
    assert all(not received(run.id, seq) for seq in seqs)
    assert all(received(run.id, seq) for seq in set(range(1, 26)) - seqs)
    assert inline_seqs(fanned.id) == set()  # a gather's steps are all sent
    never = proj.sequential_never_inline.start(3)  # inline=False, and a rate_limit
    assert never.result(timeout=30) == 6
    assert inline_seqs(never.id) == set()
