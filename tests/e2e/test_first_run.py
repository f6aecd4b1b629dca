"""What a newcomer meets first: idempotent starts, errors that say what to do, and
failures that show in the worker's log."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import uuid

import pytest

from celery_durable import HookNotFound, RunConflictError
from celery_durable.dispatch import step_task_id

from .conftest import wait_for

pytestmark = pytest.mark.e2e


def test_a_run_id_starts_one_run_of_its_workflow_and_refuses_another(proj, shared_worker):
    run_id = f"order-{uuid.uuid4().hex[:8]}"
    first = proj.data_pipeline.apply_async(args=({"name": "ada"},), run_id=run_id)
    again = proj.data_pipeline.apply_async(args=({"name": "bob"},), run_id=run_id)
    assert again == first
    with pytest.raises(RunConflictError, match=re.escape(run_id)) as info:
        proj.fan_out.apply_async(args=(3,), run_id=run_id)
    assert info.value.existing_workflow == proj.data_pipeline.name
    assert first.result(timeout=30) == "stored:VALID:ADA"
    assert [e["type"] for e in first.events()].count("run_started") == 1


def test_concurrent_starts_under_one_id_make_exactly_one_run(proj, shared_worker):
    run_id = f"race-{uuid.uuid4().hex[:8]}"
    runs, errors = [], []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        try:
            runs.append(proj.fan_out.apply_async(args=(2,), run_id=run_id))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and len(runs) == 8 and len(set(runs)) == 1
    assert runs[0].result(timeout=30) == 1
    assert [e["type"] for e in runs[0].events()].count("run_started") == 1


def test_calling_a_workflow_directly_says_to_start_it(proj):
    with pytest.raises(TypeError, match=r"data_pipeline\.start\("):
        asyncio.run(proj.data_pipeline({"name": "ada"}))


def test_a_wrong_keyword_is_named_with_the_signature(proj):
    with pytest.raises(TypeError) as info:
        proj.data_pipeline.start(datum={"name": "ada"})
    message = str(info.value)
    assert "'datum'" in message and "'data'" in message and "data_pipeline(data)" in message


def test_the_serialization_error_lists_bytes_among_what_it_accepts(proj):
    with pytest.raises(TypeError, match="bytes") as info:
        proj.one_arg.start(object())
    assert "argument 0 of type object" in str(info.value)


def test_resume_hook_can_wait_for_the_run_to_reach_its_hook(proj, shared_worker):
    token = f"first-run:{uuid.uuid4().hex[:8]}"
    run = proj.hook_wait.start(token)
    assert proj.durable.resume_hook(token, {"ok": 1}, wait=30) == run.id
    assert run.result(timeout=30) == {"payload": {"ok": 1}}
    with pytest.raises(HookNotFound, match=r"wait=<seconds>"):
        proj.durable.resume_hook(f"nobody:{uuid.uuid4().hex}", 1, wait=0.2)


def test_a_timeout_says_what_the_run_waits_on(proj, shared_worker):
    run = proj.hook_wait.start(f"waits:{uuid.uuid4().hex[:8]}")
    with pytest.raises(TimeoutError, match=r"it waits on: a hook \(#1\)"):
        run.result(timeout=2)
    run.cancel()


def test_steps_queued_where_no_worker_reads_are_named_once_per_queue(proj, shared_worker):
    token = f"waits:{uuid.uuid4().hex[:8]}"
    run = proj.hook_wait.start(token)
    wait_for(lambda: proj.durable.runtime.store.token_info(token), what="the hook")
    # Two steps scheduled and never started, as a worker-less queue leaves them (pushed
    # by hand, the run not woken: nothing runs them).
    store = proj.durable.runtime.store
    for seq in (7, 8):
        store.client.rpush(store.keys.run(run.id).history, json.dumps(
            {"type": "step_scheduled", "seq": seq, "at": 0, "name": proj.routed.name,
             "args": [], "kwargs": {}}))
    queue = proj.durable.runtime.dispatcher.queue_of(proj.routed.name)
    said = run.waiting_on()
    assert f"steps {proj.routed.name} (#7), {proj.routed.name} (#8) are queued on " \
           f"{queue!r} and no worker has started them" in said, said
    assert said.count("does a worker consume") == 1 and "a hook (#1)" in said
    run.cancel()


def test_failed_attempts_are_warnings_with_tracebacks_and_not_successes(
        proj, shared_worker, scratch):
    key = f"logs-{uuid.uuid4().hex[:8]}"
    run = proj.retries.start(key)  # flaky: fails twice, then succeeds
    assert run.result(timeout=60)["attempt"] == 3
    failed = proj.boom.name
    run2 = proj.raiser.start(key)  # boom: one attempt, fails
    with pytest.raises(proj.CardDeclined):
        run2.result(timeout=30)

    boom_id = step_task_id(run2.id, 1)

    def ran_inline(run_id: str) -> int:  # attempts run inline have no task of their own
        return sum(1 for line in shared_worker.log.read_text().splitlines()
                   if f"run {run_id} step #1 " in line and line.endswith(": runs inline"))

    def logged() -> str:
        # The task ends (and Celery logs it) after the run it continued has ended.
        text = shared_worker.log.read_text()
        settled = ran_inline(run2.id) or f"[{boom_id}] ignored" in text
        return text if f"run {run2.id} step #1 {failed}: failed" in text and settled else ""

    text = wait_for(logged, what="the final failure in the worker's log")
    warnings = [line for line in text.splitlines()
                if f"run {run.id} step #1" in line and "attempt" in line and "failed" in line]
    assert len(warnings) == 2 and all("WARNING" in line for line in warnings)
    final = next(line for line in text.splitlines() if f"run {run2.id} step #1" in line
                 and ": failed after" in line)
    assert "ERROR" in final
    after = text.split(final, 1)[1]
    assert after.lstrip().startswith("Traceback"), after[:200]
    assert "CardDeclined" in after.split("\n\n", 1)[0] or "CardDeclined" in after[:4000]
    # Celery reports the failed attempts that ran as tasks as ignored, not as
    # "succeeded": of flaky's three attempts (one task id) only the last succeeded (a
    # retry's message: never inline); boom's one did not. An attempt run inline (the
    # first step after a start may be) has no task report of its own.
    def reports(task_id: str, word: str) -> int:
        return sum(1 for line in text.splitlines() if f"[{task_id}]" in line and word in line)

    flaky_id = step_task_id(run.id, 1)
    assert (reports(flaky_id, "ignored") + ran_inline(run.id),
            reports(flaky_id, "succeeded")) == (2, 1)
    assert (reports(boom_id, "ignored") + ran_inline(run2.id),
            reports(boom_id, "succeeded")) == (1, 0)


def test_a_webhook_body_shows_in_events_as_base64_of_its_bytes(
        proj, shared_worker, web_base, scratch):
    from .test_webhooks import http, published

    run = proj.webhook_once.start()
    url = published(scratch, "url", run)
    assert http("POST", url, b"\xffraw bytes")[0] == 202
    run.result(timeout=30)
    received = next(e for e in run.events() if e["type"] == "webhook_received")
    assert base64.b64decode(received["request"]["body"]) == b"\xffraw bytes"
