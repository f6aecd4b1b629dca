"""The viewer's buttons: absent without ``actions=True``; with it, POSTs that work from
the viewer's own pages and are refused cross-origin, without the CSRF token, or as GET."""

from __future__ import annotations

from typing import Any

import pytest

from tests.viewer.support import (
    csrf_token,
    text,
    unique,
    wait_event,
    wait_for,
    wait_hook,
    wait_status,
)

pytestmark = pytest.mark.e2e
SAME = {"Origin": "http://localhost"}


@pytest.fixture
def hook_run(viewer_worker: Any, proj: Any) -> Any:
    """A run waiting on its hook (resumed at the end if a test left it waiting)."""
    token = unique("approve")
    run = proj.hook_wait.start(token)
    info = wait_hook(proj.durable, token)
    yield run, token, info.seq
    if proj.durable.runtime.run_state(run.id).status == "running":
        proj.durable.get_run(run.id).cancel()


def action_urls(run_id: str, seq: int) -> list[str]:
    return [f"/runs/{run_id}/cancel", f"/runs/{run_id}/wake-up", f"/runs/{run_id}/redrive",
            f"/runs/{run_id}/hooks/{seq}/resume"]


def test_without_actions_the_viewer_is_read_only(hook_run: Any, make_app: Any) -> None:
    run, _, seq = hook_run
    client = make_app(actions=False).test_client()
    page = text(client.get(f"/runs/{run.id}"))
    assert "csrf_token" not in page and "<form method=\"post\"" not in page
    assert "read-only" in page
    for url in action_urls(run.id, seq):
        assert client.post(url, data={"csrf_token": "x" * 43}, headers=SAME).status_code \
            in (404, 405), url
        assert client.get(url).status_code in (404, 405), url
    assert "celery_durable_csrf" not in client.get(f"/runs/{run.id}").headers.get(
        "Set-Cookie", "")


def test_cancel_from_the_page(hook_run: Any, make_app: Any, proj: Any) -> None:
    run, _, _ = hook_run
    client = make_app(actions=True).test_client()
    page = text(client.get(f"/runs/{run.id}"))
    assert f'action="/runs/{run.id}/cancel"' in page and "actions enabled" in page
    response = client.post(f"/runs/{run.id}/cancel", headers=SAME,
                           data={"csrf_token": csrf_token(page)})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/runs/{run.id}?done=cancel-requested&n=0"
    confirmed = text(client.get(response.headers["Location"]))
    assert "Cancellation requested" in confirmed
    wait_status(proj.durable, run.id, "cancelled")


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Referer": "http://evil.example/runs/"},
    {},
    {"Origin": "http://localhost.evil.example"},
], ids=["foreign-origin", "null-origin", "foreign-referer", "no-origin", "lookalike"])
def test_cross_origin_posts_are_refused(hook_run: Any, make_app: Any, proj: Any,
                                        headers: dict[str, str]) -> None:
    run, _, seq = hook_run
    client = make_app(actions=True).test_client()
    token = csrf_token(text(client.get(f"/runs/{run.id}")))
    for url in action_urls(run.id, seq):
        response = client.post(url, headers=headers, data={"csrf_token": token,
                                                           "payload": '"sneaky"'})
        assert response.status_code == 403, url
        assert "cross-origin" in text(response)
    assert proj.durable.runtime.run_state(run.id).status == "running"
    assert not [e for e in proj.durable.runtime.store.events(run.id)
                if e["type"] in ("cancel_requested", "hook_received")]


def test_posts_without_the_csrf_token_and_gets_are_refused(hook_run: Any, make_app: Any,
                                                           proj: Any) -> None:
    run, _, seq = hook_run
    client = make_app(actions=True).test_client()
    token = csrf_token(text(client.get(f"/runs/{run.id}")))
    forged = ("A" * 43) if token != "A" * 43 else ("B" * 43)
    referer = {"Referer": f"http://localhost/runs/{run.id}"}
    for url in action_urls(run.id, seq):
        for data in ({}, {"csrf_token": ""}, {"csrf_token": forged}):
            response = client.post(url, headers=referer, data=data)
            assert response.status_code == 403, (url, data)
            assert "CSRF token" in text(response)
        assert client.get(url).status_code == 405, url
    # The form's token without the cookie (another browser) is refused too.
    fresh = make_app(actions=True).test_client()
    assert fresh.post(f"/runs/{run.id}/cancel", headers=SAME,
                      data={"csrf_token": token}).status_code == 403
    assert proj.durable.runtime.run_state(run.id).status == "running"


def test_resume_a_hook_with_a_json_payload(hook_run: Any, make_app: Any, proj: Any) -> None:
    run, _, seq = hook_run
    client = make_app(actions=True).test_client()
    page = text(client.get(f"/runs/{run.id}"))
    assert f'action="/runs/{run.id}/hooks/{seq}/resume"' in page
    url = f"/runs/{run.id}/hooks/{seq}/resume"
    bad = client.post(url, headers=SAME, data={"csrf_token": csrf_token(page),
                                               "payload": "{not json"})
    assert bad.status_code == 400 and "not JSON" in text(bad)
    response = client.post(url, headers=SAME, data={"csrf_token": csrf_token(page),
                                                    "payload": '{"approved": true, "n": 3}'})
    assert response.status_code == 303
    assert f"Hook #{seq} resumed" in text(client.get(response.headers["Location"]))
    assert run.result(timeout=30) == {"payload": {"approved": True, "n": 3}}
    again = client.post(url, headers=SAME, data={"csrf_token": csrf_token(page),
                                                 "payload": "1"})
    assert again.status_code == 409 and "not live" in text(again)


def test_wake_up_a_sleeping_run(viewer_worker: Any, make_app: Any, proj: Any) -> None:
    run = proj.long_sleeper.start()
    wait_event(proj.durable, run.id, "timer_scheduled")
    client = make_app(actions=True).test_client()
    page = text(client.get(f"/runs/{run.id}"))
    assert "Wake up 1 sleep now" in page
    response = client.post(f"/runs/{run.id}/wake-up", headers=SAME,
                           data={"csrf_token": csrf_token(page)})
    assert response.status_code == 303
    assert "Woke 1 pending sleep(s)" in text(client.get(response.headers["Location"]))
    assert run.result(timeout=30) == "awake"


def test_redrive_a_failed_run(viewer_worker: Any, make_app: Any, proj: Any) -> None:
    run = proj.raiser.start("declined")
    wait_status(proj.durable, run.id, "failed")
    client = make_app(actions=True).test_client()
    page = text(client.get(f"/runs/{run.id}"))
    assert f'action="/runs/{run.id}/redrive"' in page
    assert f'action="/runs/{run.id}/cancel"' not in page  # only what fits a failed run
    response = client.post(f"/runs/{run.id}/redrive", headers=SAME,
                           data={"csrf_token": csrf_token(page)})
    assert response.status_code == 303
    assert "Redriven: 1 step(s) run again" in text(client.get(response.headers["Location"]))
    wait_event(proj.durable, run.id, "run_redriven")
    wait_for_second_failure(proj, run.id)
    done = proj.data_pipeline.start({"name": "x"})
    done.result(timeout=30)
    refused = client.post(f"/runs/{done.id}/redrive", headers=SAME,
                          data={"csrf_token": csrf_token(page)})
    assert refused.status_code == 409 and "not failed" in text(refused)
    missing = client.post("/runs/no-such-run/cancel", headers=SAME,
                          data={"csrf_token": csrf_token(page)})
    assert missing.status_code == 404


def wait_for_second_failure(proj: Any, run_id: str) -> None:
    """The redriven step ran again (and failed again: the step always raises)."""
    wait_for(lambda: sum(e["type"] == "run_failed"
                         for e in proj.durable.runtime.store.events(run_id)) == 2,
             30, what="the redriven run to fail again")
