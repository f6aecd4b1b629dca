"""The viewer's framework-free parts on histories written out by hand: the chart's
layout (positions, groups), the cleaning of the history, the words for times."""

from __future__ import annotations

import json
from typing import Any

from celery_durable import timeline as tl
from celery_durable.store.base import RunState
from celery_durable.web import viewer_chart as chart
from celery_durable.web import viewer_model as vm
from celery_durable.web import viewer_run
from celery_durable.web.viewer_actions import done_message

T0 = 1_800_000_000.0


def history(*events: dict[str, Any]) -> list[dict[str, Any]]:
    started = {"type": "run_started", "at": T0, "workflow": "proj.flow", "args": [1],
               "kwargs": {}, "secret": "s" * 64, "seed": 1}
    return [started, *events]


def step(seq: int, at: float, name: str = "proj.work") -> dict[str, Any]:
    return {"type": "step_scheduled", "seq": seq, "at": at, "name": name, "args": [seq],
            "kwargs": {}}


def ran(seq: int, begin: float, end: float, outcome: str = "step_completed",
        attempt: int = 1) -> list[dict[str, Any]]:
    return [{"type": "step_started", "seq": seq, "at": begin, "attempt": attempt},
            {"type": outcome, "seq": seq, "at": end, "result": seq,
             "error": {"exc_type": "OSError", "message": "down"}}]


def test_bars_sit_where_their_times_are_on_one_axis() -> None:
    events = history(step(1, T0), *ran(1, T0 + 1, T0 + 3, "step_retrying"),
                     *ran(1, T0 + 5, T0 + 6, attempt=2),
                     {"type": "run_completed", "at": T0 + 10, "result": 1})
    timeline = tl.build("r", "completed", events)
    drawn = chart.layout(timeline, {}, now=T0 + 99)
    lane = drawn.items[0]
    assert isinstance(lane, chart.Lane)
    attempts = [b for b in lane.bars if b.kind == "step"]
    assert [(b.left, b.width, b.outcome, b.marker) for b in attempts] == [
        (10.0, 20.0, "retrying", "✕"), (50.0, 10.0, "completed", "")]
    gaps = [(b.css, b.left, b.width) for b in lane.bars if not b.kind]
    assert gaps == [("queued", 0.0, 10.0), ("backoff", 30.0, 20.0)]
    assert drawn.now is None  # an ended run's axis ends at its end, not now
    assert drawn.ticks == [(0.0, "0"), (20.0, "+2.0s"), (40.0, "+4.0s"), (60.0, "+6.0s"),
                           (80.0, "+8.0s"), (100.0, "+10s")]


def test_a_gather_becomes_one_group_and_a_few_steps_do_not() -> None:
    many = [step(i, T0 + 1) for i in range(1, 21)]
    few = [step(i, T0 + 2, "proj.other") for i in range(21, 24)]
    done = [e for i in range(1, 24) for e in ran(i, T0 + 3, T0 + 4)]
    timeline = tl.build("r", "running", history(*many, *few, *done))
    drawn = chart.layout(timeline, {}, now=T0 + 10)
    groups = [i for i in drawn.items if isinstance(i, chart.Group)]
    assert len(groups) == 1 and len(groups[0].lanes) == 20
    assert groups[0].counts == {"completed": 20} and groups[0].peak == 20.0
    assert len(drawn.items) == 1 + 3 and drawn.lanes == 23
    assert drawn.now == 100.0  # a running run's axis ends now


def test_open_commands_of_an_ended_run_are_abandoned_not_running() -> None:
    events = history(step(1, T0), {"type": "step_started", "seq": 1, "at": T0 + 1,
                                   "attempt": 1},
                     {"type": "run_completed", "at": T0 + 2, "result": None})
    lane = chart.layout(tl.build("r", "completed", events), {}, now=T0 + 50).items[0]
    assert isinstance(lane, chart.Lane) and lane.status == "abandoned"
    assert lane.bars[-1].outcome == "abandoned" and lane.bars[-1].width == 50.0


def test_a_sleep_that_lost_its_race_is_abandoned_once_the_run_ends() -> None:
    events = history({"type": "timer_scheduled", "seq": 1, "at": T0, "due": T0 + 86400},
                     {"type": "hook_created", "seq": 2, "at": T0, "token": "t"},
                     {"type": "hook_received", "seq": 2, "at": T0 + 1, "payload": 1},
                     {"type": "run_completed", "at": T0 + 2, "result": 1})
    sleep_row, hook_row = tl.build("r", "completed", events).rows
    assert sleep_row.status == "abandoned" and hook_row.status == "received"
    running = tl.build("r", "running", events[:-1]).rows[0]
    assert running.status == "waiting"  # while the run goes on, it may still fire


def test_a_kind_of_command_the_viewer_does_not_know_is_drawn_not_fatal() -> None:
    # Built by hand: whatever kinds timeline.build knows today, a newer one must draw.
    row = tl.Row(1, "child", "proj.kid", T0, T0 + 2, "completed", result={"ok": 1},
                 detail={"run_id": "r~1", "args": [3]})
    timeline = tl.Timeline("r", "proj.flow", "completed", T0, T0 + 4, [row])
    lane = chart.layout(timeline, {}, now=T0 + 9).items[0]
    assert isinstance(lane, chart.Lane) and lane.label == "child kid"
    assert [(b.kind, b.left, b.width) for b in lane.bars] == [("child", 0.0, 50.0)]
    panel = viewer_run.detail(row, viewer_run.History(history()), T0, running=False)
    assert panel["child_run"] == "r~1" and '"ok": 1' in panel["result"]


def test_a_webhook_token_is_cut_wherever_the_history_holds_it() -> None:
    token = "AbCdEf0123456789secret-token"
    events = history(
        {"type": "webhook_created", "seq": 1, "at": T0, "token": token, "method": "POST"},
        {"type": "step_scheduled", "seq": 2, "at": T0, "name": "notify",
         "args": [f"https://x.example/durable/webhook/{token}"], "kwargs": {"n": [token]}},
        {"type": "step_completed", "seq": 2, "at": T0 + 1, "result": {"sent": token}})
    cleaned = vm.without_webhook_tokens(events)
    assert token not in json.dumps(cleaned)
    assert cleaned[2]["args"] == ["https://x.example/durable/webhook/AbCdEf…"]
    assert cleaned[2]["kwargs"] == {"n": ["AbCdEf…"]} and cleaned[3]["result"] == {
        "sent": "AbCdEf…"}
    assert cleaned[0] == events[0]  # nothing else changed
    plain = history({"type": "step_scheduled", "seq": 1, "at": T0, "name": "n", "args": []})
    assert vm.without_webhook_tokens(plain) is plain


def test_the_history_is_cleaned_of_the_secret_and_webhook_credentials() -> None:
    token = "AbCdEf0123456789secret-token"
    events = history(
        {"type": "webhook_created", "seq": 1, "at": T0, "token": token, "method": "POST"},
        {"type": "webhook_received", "seq": 1, "at": T0 + 1, "request": {
            "id": "x", "method": "POST", "path": f"/durable/webhook/{token}",
            "headers": [["Authorization", "Bearer abc"], ["X-Test", "<b>"]], "args": [],
            "body": "eyJhIjogMX0="}})
    cleaned = [vm.public_event(e) for e in events]
    assert "secret" not in cleaned[0] and cleaned[0]["seed"] == 1
    assert cleaned[1]["token"] == "AbCdEf…"
    request = cleaned[2]["request"]
    assert request["path"] == "/durable/webhook/AbCdEf…"
    assert request["headers"] == [["Authorization", "(hidden, 10 characters)"],
                                  ["X-Test", "<b>"]]
    assert vm.request_body(request) == '{"a": 1}'
    assert token not in repr(viewer_run.as_json(
        "r", RunState(status="running", workflow="w", created_at=T0), events))


def test_words_for_times_values_and_confirmations() -> None:
    assert [vm.duration(s) for s in (0.0123, 3.456, 42, 125, 7300, 200000)] == [
        "12ms", "3.5s", "42s", "2m 05s", "2h 01m", "2d 7h"]
    assert vm.ago(T0 - 3600 * 5, T0) == "5h ago" and vm.ago(T0, T0) == "just now"
    assert vm.iso(T0 + 0.283, ms=True) == "2027-01-15 08:00:00.283 UTC"
    assert vm.pretty("x" * 5000).endswith("(the JSON API has the whole value)")
    assert done_message("woken", "2") == "Woke 2 pending sleep(s): a worker continues the run."
    assert done_message("woken", "<script>") == "Woke 0 pending sleep(s): a worker " \
        "continues the run."
    assert done_message("<script>", "1") is None
