"""The examples end to end: a real ``celery worker`` for examples.app, the Flask web
app on a loopback port, real Redis; the test plays the outside world."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from examples import demo

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(redis_server: Any, session_tag: str) -> Iterator[dict[str, str]]:
    """One worker and web app for this module, under its own prefix and queue."""
    tag = f"examples-{session_tag}"
    with demo.running_stack(redis_server.url, tag) as env:
        yield env
    leftovers = list(redis.Redis.from_url(redis_server.url).scan_iter(match=f"*{tag}*"))
    assert leftovers == [], "the stack left keys behind"


def test_pipeline_runs_its_steps_in_order(stack):
    from examples.pipeline import process_data, validate_data

    expected = "rec-" + hashlib.sha256(b"Ada Lovelace <ada@example.com>").hexdigest()[:8]
    assert demo.demo_pipeline() == expected
    # Outside a workflow a step is a plain function call (unit-testable).
    assert process_data(validate_data({"name": "x", "email": "Y@Z"})) == "X <y@z>"


def test_pipeline_bad_input_fails_without_retries(stack):
    from celery_durable import FatalError
    from examples.pipeline import data_pipeline

    run = data_pipeline.start({"name": "ada"})
    with pytest.raises(FatalError, match="missing fields: email"):
        run.result(timeout=30)
    assert not any(e["type"] == "step_retrying" for e in run.events())


def test_parallel_fetch_gathers_three_steps(stack):
    assert demo.demo_parallel_fetch() == {
        "user": {"name": "Ada"},
        "orders": {"items": ["analytical engine", "punch cards"]},
        "preferences": {"theme": "dark"},
    }


def test_parallel_fetch_defaults_for_a_sparse_user(stack):
    from examples.parallel_fetch import fetch_user_data

    assert fetch_user_data.start("u2").result(timeout=30) == {
        "user": {"name": "Grace"}, "orders": {"items": ["compiler"]},
        "preferences": {"theme": "light"}}


def test_race_webhook_wins_or_deadline_wins(stack):
    assert demo.demo_race_deadline() == {
        "on_time": {"user_id": "u1", "winner": "webhook",
                    "report": {"status": "done", "rows": 42}},
        "too_late": {"user_id": "u2", "winner": "deadline"},
    }


def test_race_callback_with_a_bad_body_is_data(stack):
    import urllib.request

    from examples import outbox
    from examples.race_deadline import run_external_task

    run = run_external_task.start("u3", deadline=60)
    (task,) = outbox.wait_for(run.id, 1)
    request = urllib.request.Request(task["callback"], data=b"not json", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
    assert run.result(timeout=30) == {"user_id": "u3", "winner": "webhook",
                                      "report": {"raw": "not json"}}


def test_birthday_collects_rsvps_until_the_birthday(stack):
    result = demo.demo_birthday()
    card = result.pop("card")
    assert result == {"text": "Happy birthday! May your code always compile.",
                      "image": result["image"], "status": "Sent"}
    assert card["to"] == "ada@example.com"
    assert card["rsvps"] == ["grace: yes", "margaret: maybe"]  # linus never answered


def test_birthday_in_the_past_sends_at_once_with_no_rsvps(stack):
    from examples import outbox
    from examples.birthday import birthday_workflow

    yesterday = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    run = birthday_workflow.start("hi", "ada@example.com", ["grace"], yesterday)
    assert run.result(timeout=30)["status"] == "Sent"
    (card,) = [m for m in outbox.read(run.id) if m["subject"] == "your birthday card"]
    assert card["rsvps"] == []
