"""`celery -A tests.e2e.proj durable VERB`, run as a user runs it: a subprocess, real
workers, output and exit codes asserted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from celery_durable.devstack import free_port

from .conftest import ROOT, wait_for
from .test_webhooks import http, published

pytestmark = pytest.mark.e2e


def durable(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "celery", "-A", "tests.e2e.proj", "durable",
                           *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_start_waits_for_the_result_and_exits_by_outcome(e2e_env, proj, shared_worker):
    done = durable(e2e_env, "start", "data_pipeline", '{"name": "ada"}', "--wait", "30")
    assert done.returncode == 0, done.stderr
    run_id, result = done.stdout.split()
    assert json.loads(result) == "stored:VALID:ADA" and len(run_id) == 32
    failed = durable(e2e_env, "start", "raiser", '"declined"', "--wait", "30")
    assert failed.returncode == 1 and "CardDeclined" in failed.stderr
    assert durable(e2e_env, "start", "no_such_workflow").returncode == 2
    late = durable(e2e_env, "start", "hook_wait", json.dumps(f"cli-{uuid.uuid4().hex}"),
                   "--wait=0.5")
    assert late.returncode == 3 and "still running" in late.stderr, late.stderr
    assert proj.durable.get_run(late.stdout.split()[0]).cancel()  # it went on
    bad = durable(e2e_env, "start", "data_pipeline", "{not json")
    assert bad.returncode == 2 and "ARGS_JSON is not JSON" in bad.stderr


def test_runs_lists_newest_first_with_filters_and_pages(e2e_env, proj, shared_worker):
    tag = uuid.uuid4().hex[:6]
    ids = [proj.one_arg.apply_async(args=(i,), run_id=f"list-{tag}-{i}").id for i in range(3)]
    for run_id in ids:
        proj.durable.get_run(run_id).result(timeout=30)
    page = durable(e2e_env, "runs", "--workflow", "one_arg", "--limit", "2", "--json")
    assert page.returncode == 0, page.stderr
    rows = [json.loads(line) for line in page.stdout.splitlines()]
    assert [r["run_id"] for r in rows] == ids[::-1][:2]
    nxt = durable(e2e_env, "runs", "--workflow", "one_arg", "--limit", "2", "--json",
                  "--cursor", rows[-1]["cursor"])
    assert json.loads(nxt.stdout.splitlines()[0])["run_id"] == ids[0]
    table = durable(e2e_env, "runs", "--status", "completed", "--limit", "3")
    assert table.stdout.splitlines()[0].split() == ["RUN", "ID", "WORKFLOW", "STATUS",
                                                   "STARTED", "DURATION"]
    assert ids[-1] in table.stdout and "more: --cursor" in table.stdout
    assert "\x1b[" not in table.stdout  # no colour codes when not on a terminal
    assert rows[0]["ended_at"] and rows[0]["duration"] is not None
    waiting = proj.hook_wait.start(f"list-{tag}")
    try:
        live = durable(e2e_env, "runs", "--workflow", "hook_wait", "--status", "running",
                       "--json")
        row = next(json.loads(line) for line in live.stdout.splitlines()
                   if json.loads(line)["run_id"] == waiting.id)
        assert row["ended_at"] is None and row["duration"] is None  # JSON null, not "-"
    finally:
        waiting.cancel()


def test_show_prints_a_timeline_with_the_result_and_follows_a_run(e2e_env, proj, shared_worker):
    run = proj.fan_out.start(3)
    run.result(timeout=30)
    shown = durable(e2e_env, "show", run.id)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"run {run.id}") and "completed" in lines[0]
    steps = [line for line in lines if " step " in line]
    assert len(steps) == 3 and all("█" in line for line in steps)
    assert lines[-1] == "result: 3"
    events = [json.loads(line) for line in durable(e2e_env, "show", run.id, "--json").stdout
              .splitlines()]
    assert events[0]["type"] == "run_started" and "secret" not in events[0]
    assert durable(e2e_env, "show", "no-such-run").returncode == 2
    token = f"cli-follow:{uuid.uuid4().hex[:8]}"
    waiting = proj.hook_wait.start(token)
    follow = subprocess.Popen([sys.executable, "-m", "celery", "-A", "tests.e2e.proj",
                               "durable", "show", waiting.id, "--follow"], cwd=ROOT,
                              env=e2e_env, stdout=subprocess.PIPE, text=True)
    first = follow.stdout.readline()  # type: ignore[union-attr]
    assert first.startswith(f"run {waiting.id}"), first
    proj.durable.resume_hook(token, "go", wait=30)  # while it follows
    rest, _ = follow.communicate(timeout=60)
    assert follow.returncode == 0
    last = rest.rstrip().splitlines()[-1]
    assert "hook_received" in rest and "run_completed" in last
    assert "#" not in last and "result: " in last  # no position to show; the result is
    assert json.loads(last.split("result: ", 1)[1]) == waiting.result(timeout=5)


def test_cancel_by_id_and_in_bulk(e2e_env, proj, shared_worker):
    tokens = [f"cli-cancel:{uuid.uuid4().hex[:8]}" for _ in range(3)]
    runs = [proj.hook_wait.start(token) for token in tokens]
    for token in tokens:
        wait_for(lambda: proj.durable.runtime.store.token_info(token), what="the hook")
    one = durable(e2e_env, "cancel", runs[0].id)
    assert one.returncode == 0 and "cancel requested" in one.stdout
    bulk = durable(e2e_env, "cancel", "--status", "running", "--workflow", "hook_wait")
    assert bulk.returncode == 0
    assert runs[1].id in bulk.stdout and runs[2].id in bulk.stdout
    for run in runs:
        wait_for(lambda: run.status == "cancelled", what="the run to be cancelled")
    assert durable(e2e_env, "cancel", "no-such-run").returncode == 2


def test_wake_up_and_resume_hook(e2e_env, proj, shared_worker):
    run = proj.long_sleeper.start()
    wait_for(lambda: any(e["type"] == "timer_scheduled" for e in run.events()),
             what="the sleep")
    woke = durable(e2e_env, "wake-up", run.id)
    assert woke.returncode == 0 and "1 sleep(s) woken" in woke.stdout
    assert run.result(timeout=30) == "awake"
    token = f"cli-hook:{uuid.uuid4().hex[:8]}"
    hooked = proj.hook_wait.start(token)
    resumed = durable(e2e_env, "resume-hook", token, '{"ok": true}', "--wait", "30")
    assert resumed.returncode == 0 and hooked.id in resumed.stdout
    assert hooked.result(timeout=30) == {"payload": {"ok": True}}
    assert durable(e2e_env, "resume-hook", "nobody-holds-this").returncode == 2
    assert durable(e2e_env, "wake-up", "no-such-run").returncode == 2


def test_redrive_exit_codes(e2e_env, proj, shared_worker, scratch):
    key = f"cli-redrive-{uuid.uuid4().hex[:8]}"
    (scratch / f"{key}.broken").write_text("")
    run = proj.redrivable.start(key, "step")
    wait_for(lambda: run.status == "failed", what="the run to fail")
    (scratch / f"{key}.broken").unlink()
    done = durable(e2e_env, "redrive", run.id)
    assert done.returncode == 0 and "#2" in done.stdout
    assert run.result(timeout=30) == f"counted:{key}+fixed"
    assert durable(e2e_env, "redrive", run.id).returncode == 1  # completed, not failed
    assert durable(e2e_env, "redrive", "no-such-run").returncode == 2


def test_export_then_replay_ok_and_an_edited_history_diverges(
        e2e_env, proj, shared_worker, tmp_path: Path):
    run = proj.data_pipeline.start({"name": "ada"})
    run.result(timeout=30)
    exported = tmp_path / "histories.jsonl"
    done = durable(e2e_env, "export", run.id, "-o", str(exported))
    assert done.returncode == 0, done.stderr
    ok = durable(e2e_env, "replay", "--file", str(exported))
    assert ok.returncode == 0 and ok.stdout.startswith("ok") and run.id in ok.stdout
    record = json.loads(exported.read_text())
    for event in record["events"]:
        if event["type"] == "step_scheduled" and event["seq"] == 2:
            event["name"] = "tests.e2e.proj.store_data"  # the code now calls process_data
    exported.write_text(json.dumps(record) + "\n")
    bad = durable(e2e_env, "replay", "--file", str(exported))
    assert bad.returncode == 1
    assert bad.stdout.startswith("diverged") and "at #2" in bad.stdout
    assert "store_data" in bad.stdout and "process_data" in bad.stdout
    live = durable(e2e_env, "replay", run.id)
    assert live.returncode == 0 and "ok" in live.stdout
    assert durable(e2e_env, "export", "no-such-run").returncode == 2


def test_replay_of_a_run_that_handed_its_webhook_url_to_a_step_is_ok(
        e2e_env, proj, shared_worker, web_base, scratch, tmp_path: Path):
    # The step's argument is the webhook's full URL: replay must build it from the same
    # durable_webhook_base_url, or every such run reads as diverged.
    run = proj.webhook_once.start()
    url = published(scratch, "url", run)
    assert url.startswith(f"{web_base}/webhook/")
    assert http("POST", url, {"via": "replay"})[0] == 202
    assert run.result(timeout=30)["body"] == {"via": "replay"}
    exported = tmp_path / "webhook.jsonl"
    assert durable(e2e_env, "export", run.id, "-o", str(exported)).returncode == 0
    done = durable(e2e_env, "replay", "--file", str(exported))
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stdout + done.stderr


def test_dev_runs_a_local_stack_until_ctrl_c(e2e_env, proj, start_worker, scratch):
    """No worker of the test's: `dev` starts its own, and the web app on a port of its
    own; a webhook run goes through both; Ctrl-C stops everything."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "celery", "-A", "tests.e2e.proj",
                                "durable", "dev", "--port", str(port)], cwd=ROOT, env=e2e_env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any(line.startswith("ready") for line in lines):
            assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
            lines.append(process.stdout.readline())  # type: ignore[union-attr]
        worker_line = next(line for line in lines if line.startswith(
            "worker  celery -A tests.e2e.proj worker -Q"))
        # Every queue a step is routed to, by its own queue= option too.
        assert proj.durable.runtime.dispatcher.queue_of(proj.routed.name) in worker_line
        assert any(f"http://127.0.0.1:{port}/durable/webhook/" in line for line in lines)
        run = proj.webhook_once.start()
        url = published(scratch, "url", run)
        assert url.startswith(f"http://127.0.0.1:{port}/durable/webhook/")
        assert http("POST", url, {"via": "dev"})[0] == 202
        assert run.result(timeout=30)["body"] == {"via": "dev"}
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0, "".join(lines) + rest
    assert "stopping" in rest
