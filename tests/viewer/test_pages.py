"""The viewer's pages and JSON API through Flask's test client, on real runs (a real
Redis, a real worker): the listing, its filters and paging, one run, 404s, escaping."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.viewer.support import (
    ESCAPED_SCRIPT,
    HOSTILE,
    older_link,
    run_ids,
    secret_of,
    text,
    unique,
    wait_event,
    wait_for,
    wait_hook,
    wait_status,
)

pytestmark = pytest.mark.e2e
TINY = "tests.viewer.proj_viewer.tiny"


@pytest.fixture(scope="module")
def tiny_runs(viewer_worker: Any, viewer_proj: Any) -> list[str]:
    """Seven completed runs of a workflow only these tests start, oldest first."""
    ids = []
    for i in range(7):
        ids.append(viewer_proj.tiny.start(i).id)
        time.sleep(0.002)  # distinct creation milliseconds: a strict order to check
    for run_id in ids:
        assert viewer_proj.durable.get_run(run_id).result(timeout=30) is not None
    return ids


def test_the_list_shows_runs_newest_first_with_status_and_times(
        tiny_runs: list[str], make_app: Any) -> None:
    client = make_app().test_client()
    response = client.get(f"/runs/?workflow={TINY}")
    assert response.status_code == 200
    page = text(response)
    assert run_ids(page) == tiny_runs[::-1]
    row = page[page.index(f'data-run-id="{tiny_runs[0]}"'):]
    row = row[:row.index("</tr>")]
    assert '<span class="badge completed">completed</span>' in row
    assert "<b>tiny</b>" in row and "tests.viewer.proj_viewer" in row
    assert 'class="ago"' in row and " UTC</span>" in row  # relative and absolute
    assert f'href="/runs/{tiny_runs[0]}"' in row
    assert "/runs/static/viewer.css?v=" in page and "/runs/static/viewer.js?v=" in page
    assert "cdn" not in page.lower() and "https://" not in page
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_filters_by_status_and_workflow(tiny_runs: list[str], make_app: Any,
                                        proj: Any) -> None:
    failed = proj.raiser.start("filtered").id
    wait_status(proj.durable, failed, "failed")
    client = make_app().test_client()
    response = client.get("/runs/?status=failed&limit=200")
    assert response.status_code == 200
    assert '<a href="/runs/?status=failed" class="on">' in text(response)  # the tab shows it
    by_status = run_ids(text(response))
    assert failed in by_status and not set(tiny_runs) & set(by_status)
    by_workflow = run_ids(text(client.get("/runs/?workflow=tests.e2e.proj.raiser")))
    # The short name, as the CLI takes it, lists the same runs.
    assert run_ids(text(client.get("/runs/?workflow=raiser"))) == by_workflow
    assert failed in by_workflow and not set(tiny_runs) & set(by_workflow)
    both = run_ids(text(client.get(f"/runs/?workflow={TINY}&status=completed")))
    assert both == tiny_runs[::-1]
    assert run_ids(text(client.get(f"/runs/?workflow={TINY}&status=failed"))) == []
    bad = client.get("/runs/?status=sleepy")
    assert bad.status_code == 400 and "unknown status" in text(bad)
    assert client.get("/runs/?limit=0").status_code == 400
    assert client.get("/runs/?cursor=nonsense").status_code == 400


def test_cursor_paging_walks_every_run_once(tiny_runs: list[str], make_app: Any) -> None:
    client = make_app().test_client()
    url: str | None = f"/runs/?workflow={TINY}&limit=3"
    pages, texts = [], []
    while url is not None:
        page = text(client.get(url))
        pages.append(run_ids(page))
        texts.append(page)
        url = older_link(page)
        assert len(pages) < 10, "paging does not end"
    assert pages == [tiny_runs[:3:-1], tiny_runs[3:0:-1], tiny_runs[:1]]
    # Older pages link back to the newest; the first page does not.
    assert ['class="newest"' in page for page in texts] == [False, True, True]


def test_a_run_page_shows_its_timeline_result_and_events(viewer_worker: Any, proj: Any,
                                                         make_app: Any) -> None:
    run = proj.retries.start(unique("flaky"))
    assert run.result(timeout=30)["attempt"] == 3
    page = text(make_app().test_client().get(f"/runs/{run.id}"))
    bars = [b for b in page.split('<div class="bar ')[1:] if 'data-kind="step"' in b]
    assert len(bars) == 3  # one bar per attempt: two failed and retried, one completed
    assert sum('data-outcome="retrying"' in b and "failed-attempt" in b and "✕" in b
               for b in bars) == 2
    assert sum('data-outcome="completed"' in b for b in bars) == 1
    assert 'class="gap backoff"' in page  # the wait between attempts
    assert "ConnectionError" in page and "attempt 1 failed" in page and "Traceback" in page
    assert '<div class="card ok" id="outcome"><h2>Result</h2>' in page
    for kind in ("run_started", "step_scheduled", "step_retrying", "step_completed",
                 "run_completed"):
        assert f'<td class="type">{kind}</td>' in page
    assert secret_of(proj.durable, run.id) not in page


def test_a_big_run_loads_each_command_panel_on_demand(viewer_worker: Any, proj: Any,
                                                     make_app: Any) -> None:
    run = proj.fan_out.start(100)
    assert run.result(timeout=60) == sum(range(100))
    client = make_app().test_client()
    page = text(client.get(f"/runs/{run.id}"))
    assert '<section class="detail' not in page
    assert f'data-lazy="/runs/{run.id}/commands/"' in page
    assert len(re.findall(r'data-seq="\d+" data-kind="step"', page)) == 100
    assert '<div class="groupbar" data-group="g1-100" data-kind="step" data-count="100"' in page
    panel = client.get(f"/runs/{run.id}/commands/5")
    assert panel.status_code == 200
    assert 'id="detail-5"' in text(panel) and "<pre>[\n  4\n]</pre>" in text(panel)
    assert client.get(f"/runs/{run.id}/commands/999").status_code == 404
    assert client.get("/runs/no-such-run/commands/1").status_code == 404


def test_unknown_runs_are_404(viewer_worker: Any, make_app: Any) -> None:
    client = make_app().test_client()
    for url in ("/runs/no-such-run", "/runs/%3Cscript%3E", "/runs/api/runs/no-such-run"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "<script>" not in text(response)
    assert client.get("/runs/api/runs/no-such-run").get_json()["error"].startswith("no run")
    assert "no run with id" in text(client.get("/runs/no-such-run"))


def test_the_json_api(tiny_runs: list[str], viewer_worker: Any, proj: Any,
                      make_app: Any) -> None:
    client = make_app().test_client()
    first = client.get(f"/runs/api/runs?workflow={TINY}&limit=4").get_json()
    assert [r["run_id"] for r in first["runs"]] == tiny_runs[:2:-1]
    assert first["next_cursor"] == first["runs"][-1]["cursor"]
    assert {"status", "workflow", "created_at", "ended_at", "duration", "url"} <= \
        set(first["runs"][0])
    rest = client.get(f"/runs/api/runs?workflow={TINY}&limit=4&cursor={first['next_cursor']}")
    assert [r["run_id"] for r in rest.get_json()["runs"]] == tiny_runs[2::-1]
    assert rest.get_json()["next_cursor"] is None
    picked = client.get(f"/runs/api/runs?ids={tiny_runs[0]},nope,{tiny_runs[1]}").get_json()
    assert [r["run_id"] for r in picked["runs"]] == tiny_runs[:2]
    assert client.get("/runs/api/runs?status=bogus").status_code == 400

    run = proj.data_pipeline.start({"name": "ada"})
    assert run.result(timeout=30) == "stored:VALID:ADA"
    data = client.get(f"/runs/api/runs/{run.id}").get_json()
    assert data["status"] == "completed" and data["result"] == "stored:VALID:ADA"
    assert [r["kind"] for r in data["rows"]] == ["step"] * 3
    assert data["rows"][0]["attempts"][0]["outcome"] == "completed"
    assert data["events"][0]["type"] == "run_started" and "secret" not in data["events"][0]
    assert data["events_count"] == len(data["events"])
    brief = client.get(f"/runs/api/runs/{run.id}?brief=1").get_json()
    assert brief["events_count"] == len(data["events"]) and "events" not in brief


def test_hostile_values_are_shown_as_text(viewer_worker: Any, proj: Any, make_app: Any,
                                          web_base: str, scratch: Path) -> None:
    """Arguments, results, errors, hook tokens and webhook headers full of markup."""
    pipeline = proj.data_pipeline.start({"name": HOSTILE})
    raiser = proj.raiser.start(HOSTILE)
    token = f"{HOSTILE} {unique('hook')}"
    hook = proj.hook_wait.start(token)
    webhook = proj.webhook_once.start()
    pipeline.result(timeout=30)
    wait_status(proj.durable, raiser.id, "failed")
    wait_hook(proj.durable, token)
    url_file = scratch / f"url-{webhook.id}"
    url = wait_for(lambda: url_file.exists() and url_file.read_text(), what="the webhook URL")
    request = urllib.request.Request(
        url, data=json.dumps({"n": HOSTILE}).encode(), method="POST",
        headers={"Content-Type": "application/json", "X-Test": HOSTILE,
                 "Authorization": "Bearer s3cr3t-v4lue"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 202
    webhook.result(timeout=30)
    client = make_app().test_client()
    for run in (pipeline, raiser, hook, webhook):
        page = text(client.get(f"/runs/{run.id}"))
        assert HOSTILE not in page and "<script>alert" not in page and "<b>bold" not in page
        assert ESCAPED_SCRIPT in page, run
        assert "{{ 7*7 }}" in page  # shown as written, never evaluated
        assert secret_of(proj.durable, run.id) not in page
        api = client.get(f"/runs/api/runs/{run.id}")
        assert secret_of(proj.durable, run.id) not in text(api)
        assert api.headers["X-Content-Type-Options"] == "nosniff"
    hook_page = text(client.get(f"/runs/{hook.id}"))
    assert "&lt;script&gt;alert(&#34;pwn&#34;)&lt;/script&gt; &#39; &#34; {{ 7*7 }}" in hook_page
    webhook_page = text(client.get(f"/runs/{webhook.id}"))
    assert "s3cr3t-v4lue" not in webhook_page and "(hidden, 19 characters)" in webhook_page
    # A webhook's token is its credential: the viewer shows its first characters only,
    # also where the workflow handed its URL to a step (arguments, the JSON API).
    webhook_token = url.rsplit("/", 1)[1]
    assert webhook_token not in webhook_page
    assert webhook_token not in text(client.get(f"/runs/api/runs/{webhook.id}"))
    assert f"webhook {webhook_token[:6]}…" in webhook_page
    assert f"/webhook/{webhook_token[:6]}…</code>" in webhook_page
    events = client.get(f"/runs/api/runs/{webhook.id}").get_json()["events"]
    created = next(e for e in events if e["type"] == "webhook_created")
    received = next(e for e in events if e["type"] == "webhook_received")
    assert created["token"] == f"{webhook_token[:6]}…"
    assert webhook_token not in json.dumps(received) and "s3cr3t-v4lue" not in json.dumps(received)
    # The JSON API gives the values back as data, intact.
    raised = client.get(f"/runs/api/runs/{raiser.id}").get_json()
    assert raised["error"]["message"] == HOSTILE
    proj.durable.resume_hook(token, {"done": True})
    assert hook.result(timeout=30) == {"payload": {"done": True}}
    wait_event(proj.durable, hook.id, "run_completed")
