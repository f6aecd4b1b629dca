"""Durations: parse_duration, and the forms sleep() takes (numbers, strings, timedelta,
datetime); the workflow clock after a timer fires."""

from __future__ import annotations

import datetime as dt

import pytest

from celery_durable.engine.inboxes import create_webhook
from celery_durable.engine.primitives import now, parse_duration, sleep

from .sim import START, step

UTC = dt.timezone.utc


def at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(START + seconds, UTC)


@pytest.mark.parametrize("text, seconds", [
    ("30s", 30.0), ("5m", 300.0), ("5 minutes", 300.0), ("2h", 7200.0),
    ("1.5 hours", 5400.0), ("1 day", 86400.0), ("2 weeks", 1209600.0), ("500ms", 0.5),
    ("5 MINUTES", 300.0), ("2H", 7200.0), ("1 Day", 86400.0), ("10 Sec", 10.0),
    ("45", 45.0), ("2.5", 2.5), ("  7 s  ", 7.0), ("1 minute", 60.0), ("3 hrs", 10800.0),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)
    assert isinstance(parse_duration(text), float)


@pytest.mark.parametrize("text", [
    "soon", "5 fortnights", "", "5m30s", "--5s", "1,5h", "five seconds", "s", "1 e3",
])
def test_bad_duration_raises_value_error_quoting_it_and_listing_units(text):
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    message = str(info.value)
    assert repr(text) in message
    for unit in ("ms", "seconds", "minutes", "hours", "days", "weeks"):
        assert unit in message


@pytest.mark.parametrize("duration, seconds", [
    ("90s", 90.0),
    ("1.5 hours", 5400.0),
    (dt.timedelta(minutes=5), 300.0),
    (dt.timedelta(days=1, milliseconds=500), 86400.5),
    (at(3600), 3600.0),                                                   # aware, UTC
    (at(3600).astimezone(dt.timezone(dt.timedelta(hours=-7))), 3600.0),  # aware, other zone
    (at(3600).replace(tzinfo=None), 3600.0),                              # naive means UTC
], ids=repr)
def test_sleep_forms_schedule_one_timer_at_the_right_time(make_sim, duration, seconds):
    async def workflow():
        await sleep(duration)
        return now().timestamp()

    sim = make_sim(workflow)
    assert [e["due"] for e in sim.timers] == [pytest.approx(START + seconds, abs=1e-6)]
    sim.fire()
    assert sim.outcome.value == pytest.approx(START + seconds, abs=1e-6)
    sim.verify_replay()


@pytest.mark.parametrize("when", [
    at(-3600), at(-0.001), at(-60).replace(tzinfo=None), at(0),
], ids=["hour-ago", "just-past", "naive-past", "exactly-now"])
def test_a_past_datetime_resolves_at_once_without_a_timer(make_sim, when):
    async def workflow():
        await sleep(when)
        return await step("next", now().timestamp())

    sim = make_sim(workflow)
    assert sim.timers == []
    assert sim.steps[0]["args"] == [START]
    sim.complete("next", "ok")
    assert sim.outcome.value == "ok"
    sim.verify_replay()


@pytest.mark.parametrize("value", [True, False, [1], None, b"5s", {"s": 1}], ids=repr)
def test_sleep_rejects_other_types_with_type_error(make_sim, value):
    async def workflow():
        await sleep(value)

    sim = make_sim(workflow)
    assert isinstance(sim.outcome.error, TypeError)
    assert sim.timers == []


def test_bad_duration_string_fails_the_workflow_where_it_can_catch_it(make_sim):
    async def workflow():
        try:
            await sleep("a while")
        except ValueError as exc:
            return await step("fallback", str(exc))

    sim = make_sim(workflow)
    assert sim.timers == []
    assert "'a while'" in sim.steps[0]["args"][0]


def test_now_after_a_timer_fires_is_the_firing_events_at(make_sim):
    async def workflow():
        before = now()
        await sleep("1 minute")
        fired = now()
        await sleep(dt.timedelta(seconds=30))
        assert fired.utcoffset() == dt.timedelta(0)
        return [before.timestamp(), fired.timestamp(), now().timestamp()]

    sim = make_sim(workflow)
    sim.advance(500)  # the first timer (due at +60) fires late
    sim.fire()
    first_fired = sim.events_of("timer_fired")[0]["at"]
    assert first_fired == START + 500
    assert sim.timers[1]["due"] == START + 530  # the next sleep counts from the firing
    sim.fire()
    second_fired = sim.events_of("timer_fired")[1]["at"]
    assert sim.outcome.value == [START, first_fired, second_fired]
    sim.verify_replay()


def test_now_after_a_webhook_request_is_the_requests_at(make_sim):
    async def workflow():
        await create_webhook()
        return now().timestamp()

    sim = make_sim(workflow)
    sim.advance(1234.5)
    sim.receive(1)
    assert sim.outcome.value == START + 1234.5
    sim.verify_replay()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=repr)
def test_sleep_refuses_a_non_finite_duration(make_sim, bad):
    async def workflow():
        try:
            await sleep(bad)
        except ValueError as exc:
            return str(exc)
        return "slept"

    sim = make_sim(workflow)
    assert "finite duration" in sim.outcome.value
    assert sim.timers == []
