"""Sequential workflows: one step at a time, results flowing into the next."""

from __future__ import annotations

import time

import pytest

from celery_durable.engine.replay import Replayer
from celery_durable.errors import StepFailed, WorkflowBlockedError

from .sim import Sim, step


async def pipeline(data: dict, *, mode: str = "fast") -> str:
    validated = await step("validate", data, strict=True)
    processed = await step("process", validated, mode=mode)
    return await step("store", processed)


def test_steps_run_one_after_another_with_results_flowing(make_sim):
    sim = make_sim(pipeline, args=[{"n": 1}], kwargs={"mode": "slow"})
    assert [(e["seq"], e["name"], e["args"], e["kwargs"]) for e in sim.steps] == [
        (1, "validate", [{"n": 1}], {"strict": True})]

    assert [e["name"] for e in sim.complete("validate", {"n": 1, "ok": True})] == ["process"]
    assert sim.steps[-1]["args"] == [{"n": 1, "ok": True}]
    assert sim.steps[-1]["kwargs"] == {"mode": "slow"}

    sim.complete("process", "P")
    assert sim.steps[-1]["name"] == "store" and sim.steps[-1]["args"] == ["P"]
    assert not sim.done

    assert sim.complete("store", "stored:P") == []
    assert sim.outcome.status == "completed" and sim.outcome.value == "stored:P"
    assert [e["seq"] for e in sim.steps] == [1, 2, 3]
    sim.verify_replay()


def test_replayer_reports_position_and_waiting_on(make_sim):
    sim = make_sim(pipeline, args=[{}])
    replayer = sim.replayer()
    replayer.feed(sim.history)
    assert replayer.position == len(sim.history) == 2
    assert replayer.waiting_on == [1]
    assert replayer.take_new_commands() == []  # the history already holds step 1
    assert replayer.command(1).name == "validate" and replayer.command(2) is None
    replayer.discard()


def test_step_error_is_raised_at_the_await_and_can_be_caught(make_sim):
    async def workflow():
        try:
            await step("charge", 10)
        except ValueError as exc:
            return await step("refund", str(exc))
        return "charged"

    sim = make_sim(workflow)
    assert [e["name"] for e in sim.fail("charge", ValueError("card declined"))] == ["refund"]
    assert sim.steps[-1]["args"] == ["card declined"]
    sim.complete("refund", "refunded")
    assert sim.outcome.value == "refunded"
    sim.verify_replay()


def test_error_decoder_gets_the_error_and_the_step_name(make_sim):
    seen = []

    def decoder(error, step_name):
        seen.append((error, step_name))
        return StepFailed(error["type"], error["message"], step_name)

    async def workflow():
        await step("proj.fetch")

    sim = make_sim(workflow, error_decoder=decoder)
    sim.fail("proj.fetch", "proj.errors.Gone", "404")
    assert sim.outcome.status == "failed"
    assert isinstance(sim.outcome.error, StepFailed)
    assert sim.outcome.error.step == "proj.fetch" and sim.outcome.error.type == "proj.errors.Gone"
    assert seen[0] == ({"type": "proj.errors.Gone", "message": "404"}, "proj.fetch")


def test_uncaught_step_error_fails_the_run(make_sim):
    sim = make_sim(pipeline, args=[{}])
    sim.complete("validate", {})
    sim.fail("process", KeyError("missing"))
    assert sim.outcome.status == "failed"
    assert isinstance(sim.outcome.error, KeyError)
    assert sim.history[-1]["type"] == "run_failed"
    sim.verify_replay()


def test_workflow_raising_fails_the_run_with_that_exception(make_sim):
    class Invalid(Exception):
        pass

    async def workflow(limit):
        total = await step("count")
        if total > limit:
            raise Invalid(f"{total} > {limit}")
        return total

    sim = make_sim(workflow, args=[3])
    sim.complete("count", 5)
    assert sim.outcome.status == "failed"
    assert type(sim.outcome.error) is Invalid and str(sim.outcome.error) == "5 > 3"
    sim.verify_replay()


def test_workflow_without_steps_completes_on_the_first_replay(make_sim):
    async def workflow(a, b=0):
        return a + b

    sim = make_sim(workflow, args=[2], kwargs={"b": 3})
    assert sim.commands == [] and sim.outcome.value == 5


def test_informational_events_change_nothing(make_sim):
    sim = make_sim(pipeline, args=[{}])
    sim.record({"type": "step_started", "seq": 1, "attempt": 1})
    sim.record({"type": "step_retrying", "seq": 1, "attempt": 1, "delay": 1.0})
    assert sim.drive() == []
    sim.complete("validate", "v")
    assert sim.pending_steps == ["process"]
    sim.verify_replay()


def test_coalesced_and_duplicate_deliveries(make_sim):
    """Two outcomes recorded before one replay are applied in history order; a second
    outcome for the same seq (a redelivered step) is ignored: the first one counts."""
    async def workflow():
        first = await step("a")
        second = await step("b")
        return [first, second]

    sim = make_sim(workflow)
    sim.complete("a", 1, drive=False)
    sim.record({"type": "step_completed", "seq": 1, "result": 99})  # duplicate, no drive
    sim.drive()
    assert sim.steps[-1]["name"] == "b"
    sim.complete("b", 2)
    assert sim.outcome.value == [1, 2]
    sim.verify_replay()


def test_workflow_called_with_wrong_arguments_fails_the_run():
    async def workflow(a, b):
        return a + b

    replayer = Replayer(workflow, run_id="r")
    replayer.feed([{"type": "run_started", "at": 1.0, "workflow": "w", "args": [1],
                    "kwargs": {}, "seed": 1}])
    assert replayer.outcome is not None and replayer.outcome.status == "failed"
    assert isinstance(replayer.outcome.error, TypeError)


def test_blocking_workflow_code_raises_workflow_blocked_error():
    async def workflow():
        await step("a")
        time.sleep(0.3)
        return "late"

    sim = Sim(workflow, block_deadline=0.1)
    sim.start()
    sim.complete("a", None, drive=False)
    with pytest.raises(WorkflowBlockedError, match="must not block"):
        sim.drive()
