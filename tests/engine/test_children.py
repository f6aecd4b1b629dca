"""Child runs in the engine: a recorded command with a position, its outcome delivered
like a step's, errors rebuilt or ChildWorkflowFailed, detached starts returning ids."""

from __future__ import annotations

import asyncio

import pytest

from celery_durable.engine.history import child_run_id
from celery_durable.engine.primitives import call_child, get_workflow_metadata, start_detached
from celery_durable.errors import ChildWorkflowFailed, WorkflowCancelled

from .sim import step


def children_of(sim):
    return {e["seq"]: e for e in sim.history if e["type"] == "child_scheduled"}


def test_children_in_a_gather_get_positions_and_their_results(make_sim):
    async def parent():
        first = await step("prepare")
        results = await asyncio.gather(call_child("wf.child", [1], {}),
                                       call_child("wf.child", [2], {}))
        return [first, *results]

    sim = make_sim(parent)
    sim.complete("prepare", "p")
    children = children_of(sim)
    assert sorted(children) == [2, 3]
    assert children[2]["workflow"] == "wf.child" and children[2]["args"] == [1]
    sim.record({"type": "child_completed", "seq": 3, "result": "two"}, drive=True)
    sim.record({"type": "child_completed", "seq": 2, "result": "one"}, drive=True)
    assert sim.outcome.value == ["p", "one", "two"]
    sim.verify_replay()


def test_a_childs_error_comes_back_as_its_type_or_as_child_workflow_failed(make_sim):
    async def parent():
        caught = []
        for args in ([1], [2]):
            try:
                await call_child("wf.child", args, {})
            except (ValueError, ChildWorkflowFailed) as exc:
                caught.append(type(exc).__name__)
        try:
            await call_child("wf.child", [3], {})
        except WorkflowCancelled:
            caught.append("cancelled")
        return caught

    sim = make_sim(parent)
    sim.record({"type": "child_failed", "seq": 1,
                "error": {"type": "builtins.ValueError", "message": "bad"}}, drive=True)
    sim.record({"type": "child_failed", "seq": 2,
                "error": {"type": "nowhere.Gone", "message": "x"}}, drive=True)
    sim.record({"type": "child_cancelled", "seq": 3}, drive=True)
    assert sim.outcome.value == ["ValueError", "ChildWorkflowFailed", "cancelled"]
    sim.verify_replay()


def test_a_detached_start_is_a_command_that_returns_the_childs_id(make_sim):
    async def parent():
        child = start_detached("wf.report", ["q4"], {})
        await step("after")
        return child

    sim = make_sim(parent)
    assert children_of(sim)[1]["detached"] is True
    sim.complete("after", None)
    assert sim.outcome.value == child_run_id(sim.run_id, 1)
    sim.verify_replay()


def test_a_child_knows_its_parent(make_sim):
    async def child():
        return get_workflow_metadata().parent_run_id

    sim = make_sim(child, start=False)
    sim.history[0].update(parent="the-parent", parent_seq=4, detached=False)
    sim.start()
    assert sim.outcome.value == "the-parent"


@pytest.mark.parametrize("length", [30, 250])
def test_child_ids_are_stable_and_bounded(length):
    parent = "p" * length
    assert child_run_id(parent, 7) == child_run_id(parent, 7)
    assert len(child_run_id(parent, 7)) <= 200 and "~" in child_run_id(parent, 7)
