"""Cancellation: cancel_requested raises CancelledError at the workflow's current await."""

from __future__ import annotations

import asyncio

from celery_durable.engine.primitives import sleep

from .sim import step


async def with_cleanup():
    done = await step("a")
    try:
        return await step("b", done)
    except asyncio.CancelledError:
        await step("cleanup", done)
        return "cleaned up"


def test_uncaught_cancellation_cancels_the_run(make_sim):
    async def workflow():
        await step("a")
        return await step("b")

    sim = make_sim(workflow)
    sim.complete("a", 1)
    assert sim.cancel() == []
    assert sim.outcome.status == "cancelled"
    assert sim.history[-1]["type"] == "run_cancelled"
    sim.verify_replay()


def test_caught_cancellation_runs_a_cleanup_step_and_returns(make_sim):
    sim = make_sim(with_cleanup)
    sim.complete("a", "A")
    new = sim.cancel()
    assert [(e["name"], e["args"]) for e in new] == [("cleanup", ["A"])]
    assert sim.complete("b", "B") == []  # the cancelled step's result changes nothing
    sim.complete("cleanup", None)
    assert sim.outcome.status == "completed" and sim.outcome.value == "cleaned up"
    sim.verify_replay()


def test_cancellation_arrives_at_the_current_await_only(make_sim):
    sim = make_sim(with_cleanup)
    sim.cancel()  # while awaiting "a", outside the try: not caught
    assert sim.outcome.status == "cancelled"
    assert sim.step_names == ["a"]
    sim.verify_replay()


def test_second_cancellation_interrupts_the_cleanup(make_sim):
    sim = make_sim(with_cleanup)
    sim.complete("a", "A")
    sim.cancel()
    assert sim.pending_steps == ["b", "cleanup"]
    sim.cancel()
    assert sim.outcome.status == "cancelled"
    sim.verify_replay()


def test_cancelling_a_sleep(make_sim):
    async def workflow():
        try:
            await sleep("1 day")
        except asyncio.CancelledError:
            return "woken"

    sim = make_sim(workflow)
    sim.advance(30)
    sim.cancel()
    assert sim.outcome.value == "woken"
    sim.verify_replay()


def test_cancelling_a_gather_cancels_its_children(make_sim):
    async def workflow():
        tasks = [asyncio.ensure_future(step(name)) for name in "ab"]
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            states = [t.cancelled() for t in tasks]
            return await step("cleanup", states)

    sim = make_sim(workflow)
    sim.cancel()
    assert sim.steps[-1]["name"] == "cleanup" and sim.steps[-1]["args"] == [[True, True]]
    sim.complete("a", 1)
    sim.complete("cleanup", None)
    assert sim.outcome.status == "completed"
    sim.verify_replay()
