"""The seed recipes, each as a user would test it."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from celery_durable import FatalError
from examples import outbox
from examples.birthday import birthday_workflow
from examples.parallel_fetch import fetch_user_data
from examples.pipeline import data_pipeline
from examples.race_deadline import run_external_task


def test_pipeline_runs_its_steps_in_order(durable_env):
    run = data_pipeline.start({"name": "Ada", "email": "ada@example.com"})
    record_id = run.result(timeout=10)
    assert record_id.startswith("rec-")
    names = [e["name"].rsplit(".", 1)[1] for e in run.events() if e["type"] == "step_scheduled"]
    assert names == ["validate_data", "process_data", "store_data"]


def test_pipeline_bad_input_fails_at_once(durable_env):
    run = data_pipeline.start({"name": "Ada"})
    with pytest.raises(FatalError, match="missing fields: email"):
        run.result(timeout=10)
    assert [e["type"] for e in run.events()].count("step_started") == 1  # no retries


def test_parallel_fetch_gathers_three_steps_at_once(durable_env):
    run = fetch_user_data.start("u1")
    result = run.result(timeout=10)
    assert set(result) == {"user", "orders", "preferences"}
    scheduled = [e["at"] for e in run.events() if e["type"] == "step_scheduled"]
    assert len(scheduled) == 3 and len(set(scheduled)) == 1  # one commit: in parallel


def test_the_callback_beats_the_deadline(durable_env):
    run = run_external_task.start("u1")
    url = durable_env.wait_for_webhook(run)
    response = durable_env.post(url, json={"rows": 3})
    assert response.status_code == 202
    assert run.result(timeout=10) == {"user_id": "u1", "winner": "webhook",
                                      "report": {"rows": 3}}


def test_the_deadline_wins_a_day_later_in_no_time(durable_env):
    began = time.monotonic()
    run = run_external_task.start("u2", deadline="1 day")
    assert run.result(timeout=10) == {"user_id": "u2", "winner": "deadline"}
    assert time.monotonic() - began < 2
    fired = next(e for e in run.events() if e["type"] == "timer_fired")
    started = run.events()[0]
    assert dt.datetime.fromisoformat(fired["at"]) - dt.datetime.fromisoformat(started["at"]) \
        >= dt.timedelta(days=1)


def test_birthday_collects_rsvps_until_the_day(durable_env):
    birthday = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)
    friends = ["grace@example.com", "linus@example.com"]
    durable_env.time_skipping = False  # the RSVPs come first
    run = birthday_workflow.start("may your code always compile", "ada@example.com",
                                  friends, birthday)
    urls = durable_env.webhooks(run, count=2)
    assert durable_env.post(urls[0], json={"rsvp": "grace: yes"}).status_code == 202
    assert durable_env.post(urls[1], json="not an rsvp").status_code == 202  # ignored
    durable_env.advance("31 days")
    result = run.result(timeout=10)
    assert result["status"] == "Sent"
    card = next(m for m in outbox.read(run.id) if m["subject"] == "your birthday card")
    assert card["rsvps"] == ["grace: yes"]
