"""Durable time: sleep, asyncio.sleep, wait_for, asyncio.timeout, races against timers."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from celery_durable.engine.primitives import now, parse_duration, race, sleep

from .sim import START, needs_py311, step

UTC = dt.timezone.utc


def at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(START + seconds, UTC)


@pytest.mark.parametrize("duration, seconds", [
    (90, 90.0),
    (1.5, 1.5),
    ("30s", 30.0),
    ("5 minutes", 300.0),
    ("2h", 7200.0),
    ("1 day", 86400.0),
    (dt.timedelta(hours=1, seconds=1), 3601.0),
    (at(600), 600.0),                                            # aware datetime: until then
    (at(600).astimezone(dt.timezone(dt.timedelta(hours=5))), 600.0),
    (at(600).replace(tzinfo=None), 600.0),                       # naive means UTC
], ids=repr)
def test_sleep_schedules_one_durable_timer(make_sim, duration, seconds):
    async def workflow():
        await sleep(duration)
        return now().timestamp()

    sim = make_sim(workflow)
    assert [(e["type"], e["seq"], e["due"]) for e in sim.commands] == [
        ("timer_scheduled", 1, pytest.approx(START + seconds, abs=1e-6))]
    assert not sim.done
    sim.fire()
    assert sim.outcome.value == pytest.approx(START + seconds, abs=1e-6)
    sim.verify_replay()


@pytest.mark.parametrize("duration", [0, -5, "0s", dt.timedelta(0), at(-1), at(0)], ids=repr)
def test_sleep_that_is_already_over_needs_no_timer(make_sim, duration):
    async def workflow():
        await sleep(duration)
        return await step("next")

    sim = make_sim(workflow)
    assert sim.timers == [] and sim.step_names == ["next"]


def test_asyncio_sleep_is_the_same_durable_sleep_and_the_clock_moves_to_it(make_sim):
    async def workflow():
        await asyncio.sleep(60)
        await step("mid", now().isoformat())
        await sleep("1 hour")
        return now().isoformat()

    sim = make_sim(workflow)
    assert sim.timers[0]["due"] == START + 60
    sim.advance(65)  # the timer fires 5 s late: the clock moves to when it fired
    sim.fire()
    assert sim.steps[-1]["args"] == [at(65).isoformat()]
    sim.advance(10)
    sim.complete("mid", None)
    assert sim.timers[-1]["due"] == START + 75 + 3600
    sim.fire()
    assert sim.outcome.value == at(75 + 3600).isoformat()
    sim.verify_replay()


@pytest.mark.parametrize("text", ["five minutes", "5 parsecs", "", "5 min 30 s", "1e3s"])
def test_bad_duration_string_raises_value_error_quoting_it(make_sim, text):
    async def workflow():
        await sleep(text)

    sim = make_sim(workflow)
    assert sim.outcome.status == "failed"
    assert isinstance(sim.outcome.error, ValueError)
    assert repr(text) in str(sim.outcome.error)
    with pytest.raises(ValueError, match="as a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text, seconds", [
    ("250ms", 0.25), ("1.5 hours", 5400.0), ("2 weeks", 1209600.0), (" 30 S ", 30.0),
    ("45", 45.0), (".5s", 0.5), ("3 mins", 180.0),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("value", [True, None, [1]], ids=repr)
def test_sleep_rejects_other_types(make_sim, value):
    async def workflow():
        await sleep(value)

    sim = make_sim(workflow)
    assert isinstance(sim.outcome.error, TypeError)
    assert sim.commands == []


def test_wait_for_times_out_when_the_timer_fires_first(make_sim):
    async def workflow():
        try:
            return await asyncio.wait_for(step("slow"), timeout=30)
        except asyncio.TimeoutError:
            return await step("fallback")

    sim = make_sim(workflow)
    assert sorted(e["type"] for e in sim.commands) == ["step_scheduled", "timer_scheduled"]
    assert sim.timers[0]["due"] == START + 30
    sim.fire()
    assert sim.pending_steps == ["slow", "fallback"]
    assert sim.complete("slow", "too late") == []
    sim.complete("fallback", "fb")
    assert sim.outcome.value == "fb"
    sim.verify_replay()


def test_wait_for_returns_the_value_when_the_step_settles_first(make_sim):
    async def workflow():
        value = await asyncio.wait_for(step("quick"), timeout=30)
        return await step("after", value)

    sim = make_sim(workflow)
    sim.complete("quick", "Q")
    assert sim.steps[-1]["name"] == "after"
    assert sim.fire() == []  # the abandoned timeout fires later: nothing happens
    sim.complete("after", "done")
    assert sim.outcome.value == "done"
    sim.verify_replay()


@needs_py311
def test_asyncio_timeout_block(make_sim):
    async def workflow():
        try:
            async with asyncio.timeout(10):
                await step("a")
                return await step("b")
        except TimeoutError:
            return "timed out at " + now().isoformat()

    sim = make_sim(workflow)
    sim.advance(4)
    sim.complete("a", None)
    assert sim.pending_steps == ["b"]
    sim.fire()
    assert sim.outcome.value == "timed out at " + at(10).isoformat()
    sim.verify_replay()


@pytest.mark.parametrize("winner", ["step", "timer"])
def test_race_a_step_against_a_sleep(make_sim, winner):
    async def workflow():
        return await race(step("fetch"), sleep("5 minutes"))

    sim = make_sim(workflow)
    if winner == "step":
        sim.complete("fetch", "data")
        assert sim.outcome.value == "data"
    else:
        sim.fire()
        assert sim.outcome.status == "completed" and sim.outcome.value is None
    sim.verify_replay()


def test_call_later_becomes_a_durable_timer(make_sim):
    async def workflow():
        loop = asyncio.get_running_loop()
        fired = loop.create_future()
        loop.call_later(120, fired.set_result, "rang")
        return await fired

    sim = make_sim(workflow)
    assert sim.timers[0]["due"] == START + 120
    sim.fire()
    assert sim.outcome.value == "rang"
    sim.verify_replay()
