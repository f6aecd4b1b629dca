"""Replay is a pure function of the history: any order of outcomes replays the same way,
and the workflow's clock, randomness and metadata come from the history too."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import uuid

import pytest

from celery_durable.engine.primitives import (
    get_workflow_metadata,
    now,
    race,
    random,
    sleep,
    uuid4,
)

from .sim import START, Sim, step

ORDERS = ["".join(order) for order in itertools.permutations("abc")]


async def gather_then_sum():
    values = await asyncio.gather(step("a", 1), step("b", 2), step("c", 3))
    return await step("sum", values)


async def race_then_use():
    winner = await race(step("a", 1), step("b", 2), step("c", 3))
    return await step("use", winner)


@pytest.mark.parametrize("order", ORDERS)
def test_gather_in_every_completion_order(make_sim, order):
    sim = make_sim(gather_then_sum)
    for name in order:
        sim.advance(1)
        sim.complete(name, name.upper())
    assert [(e["seq"], e["name"], e["args"]) for e in sim.steps] == [
        (1, "a", [1]), (2, "b", [2]), (3, "c", [3]), (4, "sum", [["A", "B", "C"]])]
    sim.complete("sum", "ABC")
    assert sim.outcome.value == "ABC"
    sim.verify_replay()


@pytest.mark.parametrize("order", ORDERS)
def test_race_in_every_completion_order(make_sim, order):
    sim = make_sim(race_then_use)
    for name in order:
        sim.advance(1)
        sim.complete(name, name.upper())
        if name == order[0]:
            assert sim.steps[-1]["name"] == "use" and sim.steps[-1]["args"] == [name.upper()]
    sim.complete("use", "used")
    assert [e["name"] for e in sim.steps] == ["a", "b", "c", "use"]
    assert sim.outcome.value == "used"
    sim.verify_replay()


@pytest.mark.parametrize("order", ORDERS)
def test_gather_with_failures_raises_the_first_delivered_one(make_sim, order):
    sim = make_sim(gather_then_sum)
    for name in order:
        if name == "b":
            sim.complete("b", "B")
        else:
            sim.fail(name, ValueError(f"{name} failed"))
        if sim.done:
            break
    first_failure = next(name for name in order if name != "b")
    assert sim.outcome.status == "failed"
    assert str(sim.outcome.error) == f"{first_failure} failed"
    sim.verify_replay()


def test_now_moves_only_to_delivered_events(make_sim):
    async def workflow():
        seen = [now()]
        await step("a", now().isoformat())
        seen.append(now())
        await race(step("b"), step("c"))
        seen.append(now())
        await step("d")
        seen.append(now())
        return [t.isoformat() for t in seen]

    sim = make_sim(workflow)
    assert sim.steps[0]["args"] == [dt.datetime.fromtimestamp(START, dt.timezone.utc).isoformat()]
    sim.advance(10)
    sim.record({"type": "step_started", "seq": 1}, drive=True)  # informational: no tick
    sim.advance(10)
    sim.complete("a", None)                    # +20
    sim.advance(10)
    sim.complete("b", None)                    # +30: the race is won
    sim.advance(10)
    sim.complete("c", None)                    # +40: a loser; the clock still moves
    sim.clock = START + 35
    sim.complete("d", None)                    # +35: clocks never go back
    stamps = [dt.datetime.fromtimestamp(START + s, dt.timezone.utc).isoformat()
              for s in (0, 20, 30, 40)]
    assert sim.outcome.value == stamps
    assert sim.verify_replay().value == stamps


async def draws():
    first = [random(), str(uuid4())]
    await step("a", first)
    return [first, [random(), str(uuid4())]]


def run_to_end(workflow, **options):
    sim = Sim(workflow, **options)
    sim.start()
    while not sim.done:
        sim.complete(min(sim.pending), None)
    sim.verify_replay()
    return sim.outcome.value


def test_random_and_uuid4_depend_only_on_the_seed():
    one = run_to_end(draws, seed=7, run_id="r1")
    assert run_to_end(draws, seed=7, run_id="r2") == one
    assert run_to_end(draws, seed=7, mode="cached") == one
    other = run_to_end(draws, seed=8)
    assert other[0][0] != one[0][0] and other[0][1] != one[0][1]
    assert 0 <= one[0][0] < 1 and one[0][0] != one[1][0]
    assert uuid.UUID(one[0][1]).version == 4 and one[0][1] != one[1][1]


def test_random_in_concurrent_tasks_replays_identically(make_sim):
    async def branch(name):
        await step(name)
        return random()

    async def workflow():
        return await asyncio.gather(branch("a"), branch("b"), branch("c"))

    sim = make_sim(workflow)
    for name in "cab":
        sim.complete(name, None)
    assert len(set(sim.outcome.value)) == 3
    sim.verify_replay()


def test_workflow_metadata(make_sim):
    async def workflow():
        await sleep(5)
        meta = get_workflow_metadata()
        return [meta.run_id, meta.workflow_name, meta.started_at.isoformat()]

    sim = make_sim(workflow, run_id="order-42", name="proj.flows.checkout")
    sim.fire()
    assert sim.outcome.value == [
        "order-42", "proj.flows.checkout",
        dt.datetime.fromtimestamp(START, dt.timezone.utc).isoformat()]


OUTSIDE = [now, random, uuid4, get_workflow_metadata,
           lambda: sleep(1).send(None), lambda: step("s").send(None)]


@pytest.mark.parametrize("call", OUTSIDE, ids=["now", "random", "uuid4", "metadata", "sleep",
                                               "step"])
def test_primitives_outside_a_workflow_raise_runtime_error(call):
    with pytest.raises(RuntimeError, match="inside a @durable.workflow"):
        call()

    async def in_plain_asyncio():
        call()

    with pytest.raises(RuntimeError, match="inside a @durable.workflow"):
        asyncio.run(in_plain_asyncio())
