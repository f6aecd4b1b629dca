"""Divergence: a history recorded by one version of the code, replayed by another."""

from __future__ import annotations

import asyncio

import pytest

from celery_durable.engine.primitives import sleep
from celery_durable.engine.replay import Replayer
from celery_durable.errors import NonDeterminismError

from .sim import START, Sim, roundtrip, step


def history_of(workflow, outcomes, **options):
    """The history of ``workflow`` after completing its pending steps with ``outcomes``
    (a list of (name, value); ``None`` as the name fires the earliest timer)."""
    sim = Sim(workflow, **options)
    sim.start()
    for name, value in outcomes:
        if name is None:
            sim.fire()
        else:
            sim.complete(name, value)
    return sim.history


@pytest.fixture(params=["whole", "one-by-one"])
def replay(request):
    """Replay a history with new code: fed at once, or one event per feed() (a live
    instance from the cache); both must diverge the same way."""

    def run(workflow, history):
        replayer = Replayer(workflow, run_id="run-1")
        events = roundtrip(history)
        try:
            if request.param == "whole":
                replayer.feed(events)
            else:
                for event in events:
                    replayer.feed([event])
            return replayer
        finally:
            replayer.discard()

    return run


async def v1():
    a = await step("a", 1)
    b = await step("b", a, flag=True)
    return await step("c", b)


def test_same_code_replays_without_error(replay):
    replayer = replay(v1, history_of(v1, [("a", 10), ("b", 20)]))
    assert replayer.take_new_commands() == [] and replayer.waiting_on == [3]


@pytest.mark.parametrize("changed, expected, actual", [
    ("name", "step b(args=[10], kwargs={'flag': True}) at #2",
     "step x(args=[10], kwargs={'flag': True}) at #2"),
    ("args", "step b(args=[10], kwargs={'flag': True}) at #2",
     "step b(args=[11], kwargs={'flag': True}) at #2"),
    ("kwargs", "step b(args=[10], kwargs={'flag': True}) at #2",
     "step b(args=[10], kwargs={'flag': False}) at #2"),
    ("kind", "step b(args=[10], kwargs={'flag': True}) at #2",
     f"timer due at {START + 60:.3f} at #2"),
])
def test_other_command_at_the_same_seq_diverges(replay, changed, expected, actual):
    async def v2():
        a = await step("a", 1)
        if changed == "name":
            b = await step("x", a, flag=True)
        elif changed == "args":
            b = await step("b", a + 1, flag=True)
        elif changed == "kwargs":
            b = await step("b", a, flag=False)
        else:
            b = await sleep(60)
        return await step("c", b)

    history = history_of(v1, [("a", 10), ("b", 20)])
    with pytest.raises(NonDeterminismError) as info:
        replay(v2, history)
    error = info.value
    assert error.position == 2
    assert error.expected == expected and error.actual == actual
    assert "#2" in str(error) and expected in str(error) and actual in str(error)


def test_changed_sleep_duration_diverges(replay):
    async def sleeper(seconds):
        await sleep(seconds)
        return await step("after")

    history = history_of(sleeper, [], args=[60])
    with pytest.raises(NonDeterminismError) as info:
        replay(lambda _: sleeper(120), history)
    assert info.value.position == 1
    assert info.value.expected == f"timer due at {START + 60:.3f} at #1"
    assert info.value.actual == f"timer due at {START + 120:.3f} at #1"


def test_history_holding_a_command_the_code_never_emits(replay):
    async def both():
        return await asyncio.gather(step("a"), step("b"))

    async def only_a():
        return [await step("a")]

    with pytest.raises(NonDeterminismError) as info:
        replay(only_a, history_of(both, []))
    assert info.value.position == 2
    assert info.value.expected == "step b(args=[], kwargs={}) at #2"
    assert "nothing" in info.value.actual


def test_completed_history_with_a_step_the_code_no_longer_runs(replay):
    async def shorter():
        a = await step("a", 1)
        return a

    history = history_of(v1, [("a", 10), ("b", 20), ("c", 30)])
    with pytest.raises(NonDeterminismError) as info:
        replay(shorter, history)
    assert info.value.position == 2


def test_completion_for_a_seq_never_emitted(replay):
    history = [
        {"type": "run_started", "at": START, "workflow": "w", "args": [], "kwargs": {},
         "seed": 1},
        {"type": "step_scheduled", "at": START, "seq": 1, "name": "a", "args": [1],
         "kwargs": {}},
        {"type": "step_completed", "at": START + 1, "seq": 7, "result": None},
    ]
    with pytest.raises(NonDeterminismError) as info:
        replay(v1, history)
    assert info.value.position == 7
    assert "step_completed for #7" in info.value.expected
    assert "no command #7" in info.value.actual


def test_divergence_names_the_recorded_python_version(replay):
    history = history_of(v1, [("a", 10)])
    history[0]["python"] = "2.7"

    async def v2():
        await step("a", 1)
        await step("z")

    with pytest.raises(NonDeterminismError, match="recorded on Python 2.7"):
        replay(v2, history)


def test_run_started_twice_is_refused():
    replayer = Replayer(v1, run_id="r")
    started = history_of(v1, [])[0]
    with pytest.raises(NonDeterminismError, match="run_started twice"):
        replayer.feed([started, started])
    replayer.discard()


def test_new_commands_after_the_recorded_ones_are_not_a_divergence(replay):
    async def longer():
        a = await step("a", 1)
        b = await step("b", a, flag=True)
        await step("audit")
        return await step("c", b)

    history = history_of(v1, [("a", 10)])
    replayer = replay(longer, history)
    assert replayer.waiting_on == [2]


@pytest.mark.parametrize("new_value", [True, 1.0], ids=repr)
def test_argument_of_another_json_type_diverges(replay, new_value):
    async def v2():
        a = await step("a", new_value)
        b = await step("b", a, flag=True)
        return await step("c", b)

    with pytest.raises(NonDeterminismError):
        replay(v2, history_of(v1, [("a", 10)]))
