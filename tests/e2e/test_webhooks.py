"""Webhooks and hooks end to end: a real HTTP server, real workers, real Redis."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid

import pytest

from celery_durable import HookNotFound

from .conftest import wait_for

pytestmark = pytest.mark.e2e


def http(method, url, body=None, headers=None, timeout=15):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def published(scratch, kind, run):
    path = scratch / f"{kind}-{run.id}"
    return wait_for(lambda: path.exists() and path.read_text(), timeout=30,
                    what=f"the run to publish its {kind}")


def test_webhook_request_reaches_the_workflow_with_202(proj, shared_worker, web_base, scratch):
    run = proj.webhook_once.start()
    url = published(scratch, "url", run)
    assert url.startswith(f"{web_base}/webhook/")
    token = url.rsplit("/", 1)[1]
    assert len(token) >= 22  # ≥ 128 random bits, URL-safe
    status, _, body = http("POST", url + "?a=1&b=2", {"hello": "world"}, {"X-Test": "yes",
                           "Content-Type": "application/json"})
    assert status == 202
    assert json.loads(body)["status"] == "accepted"
    assert run.result(timeout=30) == {"method": "POST", "body": {"hello": "world"}, "x": "yes",
                                      "args": {"a": "1", "b": "2"}}
    types = [e["type"] for e in run.events()]
    assert types.index("webhook_created") < types.index("webhook_received")
    # The run has ended: its token is gone.
    assert http("POST", url, {})[0] == 404


def test_unknown_token_is_404_without_a_hint(proj, web_base):
    status, _, body = http("POST", f"{web_base}/webhook/{uuid.uuid4().hex}", {})
    assert status == 404
    assert json.loads(body) == {"error": "not found"}


def test_wrong_method_is_405(proj, shared_worker, web_base, scratch):
    run = proj.webhook_once.start("POST")
    url = published(scratch, "url", run)
    status, headers, _ = http("GET", url)
    assert status == 405 and headers["Allow"] == "POST"
    assert http("POST", url, {"n": 1})[0] == 202
    assert run.result(timeout=30)["method"] == "POST"


def test_oversized_body_is_413_and_the_run_is_untouched(proj, shared_worker, web_base, scratch):
    run = proj.webhook_once.start()
    url = published(scratch, "url", run)
    before = len(run.events())
    assert http("POST", url, b"x" * 5000)[0] == 413  # durable_webhook_max_bytes=4096 here
    assert len(run.events()) == before
    assert http("POST", url, b"not json", {"Content-Type": "text/plain"})[0] == 202
    assert run.result(timeout=30)["body"] == {"bad json": "not json"}


def test_static_response(proj, shared_worker, web_base, scratch):
    run = proj.webhook_static.start()
    url = published(scratch, "url", run)
    status, headers, body = http("PUT", url, {"v": 1})
    assert status == 200
    assert headers["X-Reply"] == "static" and json.loads(body) == {"thanks": True}
    assert run.result(timeout=30)["method"] == "PUT"


def test_manual_response_holds_the_caller_until_the_workflow_answers(
        proj, shared_worker, web_base, scratch):
    run = proj.webhook_manual.start()
    url = published(scratch, "url", run)
    status, headers, body = http("POST", url, {"q": "?"})
    assert status == 201
    assert headers["X-Flow"] == "manual"
    assert json.loads(body) == {"answer": 42, "got": {"q": "?"}}
    assert run.result(timeout=30) == "responded"
    assert any(e["type"] == "webhook_responded" for e in run.events())


def test_async_for_gets_every_request_in_order_then_disposes(
        proj, shared_worker, web_base, scratch):
    run = proj.webhook_many.start(3)
    url = published(scratch, "url", run)
    for n in range(3):
        assert http("POST", url, {"n": n})[0] == 202
    published(scratch, "disposed", run)
    assert http("POST", url, {"n": 99})[0] == 404  # disposed while the run still lives
    assert run.status == "running"
    assert run.result(timeout=30) == [0, 1, 2]


def test_race_webhook_against_a_deadline(proj, shared_worker, web_base, scratch):
    fast = proj.webhook_deadline.start(30)
    http("POST", published(scratch, "url", fast), {})
    assert fast.result(timeout=30) == "webhook"
    slow = proj.webhook_deadline.start(0.5)
    published(scratch, "url", slow)
    assert slow.result(timeout=30) == "deadline"


def test_concurrent_requests_are_all_recorded(proj, shared_worker, web_base, scratch):
    run = proj.webhook_many.start(8)
    url = published(scratch, "url", run)
    statuses = []
    threads = [threading.Thread(target=lambda n=n: statuses.append(http("POST", url, {"n": n})[0]))
               for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [202] * 8
    assert sorted(run.result(timeout=30)) == list(range(8))


def test_hook_resumed_from_code(proj, shared_worker, scratch):
    token = f"order:{uuid.uuid4().hex[:8]}"
    run = proj.hook_wait.start(token)
    assert published(scratch, "hook", run) == token
    assert proj.durable.resume_hook(token, {"approved": True}) == run.id
    assert run.result(timeout=30) == {"payload": {"approved": True}}
    with pytest.raises(HookNotFound):
        proj.durable.resume_hook(token, {})  # the run ended: the token is free


def test_hook_token_held_by_one_live_run(proj, shared_worker, scratch):
    token = f"slack:{uuid.uuid4().hex[:8]}"
    first = proj.hook_wait.start(token)
    published(scratch, "hook", first)
    second = proj.hook_wait.start(token)
    result = second.result(timeout=30)
    assert "held by live run" in result["conflict"] and first.id in result["conflict"]
    proj.durable.resume_hook(token, 1)
    assert first.result(timeout=30) == {"payload": 1}
    third = proj.hook_wait.start(token)  # free again once its holder ended
    published(scratch, "hook", third)
    proj.durable.resume_hook(token, 3)
    assert third.result(timeout=30) == {"payload": 3}


def test_hook_tokens_are_not_webhook_urls(proj, shared_worker, web_base, scratch):
    run = proj.hook_random.start()
    token = published(scratch, "hook", run)
    assert http("POST", f"{web_base}/webhook/{token}", {})[0] == 404
    with pytest.raises(HookNotFound):
        proj.durable.resume_hook("no-such-token", 1)
    proj.durable.resume_hook(token, "x")
    assert run.result(timeout=30) == {"payload": "x"}


def test_hook_recreated_with_the_same_token_keeps_working(proj, shared_worker, scratch):
    token = f"loop:{uuid.uuid4().hex[:8]}"
    run = proj.hook_twice.start(token)
    published(scratch, "hook0", run)
    proj.durable.resume_hook(token, "first")
    published(scratch, "hook1", run)
    wait_for(lambda: proj.durable.runtime.store.token_info(token) and
             proj.durable.runtime.store.token_info(token).seq != 1, what="the second hook")
    proj.durable.resume_hook(token, "second")
    assert run.result(timeout=30) == ["first", "second"]


def test_non_ascii_hook_token(proj, shared_worker, scratch):
    token = f"café:{uuid.uuid4().hex[:6]}"
    run = proj.hook_wait.start(token)
    published(scratch, "hook", run)
    proj.durable.resume_hook(token, "ü")
    assert run.result(timeout=30) == {"payload": "ü"}


def test_options_and_head_are_answered_but_not_recorded(proj, shared_worker, web_base, scratch):
    run = proj.webhook_once.start()
    url = published(scratch, "url", run)
    before = len(run.events())
    assert http("OPTIONS", url)[0] == 204
    assert http("HEAD", url)[0] == 200
    assert len(run.events()) == before
    http("DELETE", url)
    assert run.result(timeout=30)["method"] == "DELETE"


def test_a_malformed_chunked_body_is_a_400_not_a_500(proj, shared_worker, web_base, scratch):
    import socket
    from urllib.parse import urlsplit

    run = proj.webhook_once.start()
    url = urlsplit(published(scratch, "url", run))
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                     "zz-not-hex\r\nhello\r\n0\r\n\r\n".encode())
        reply = sock.recv(4096).decode(errors="replace")
    assert reply.startswith("HTTP/1.1 400"), reply[:200]
    assert not any(e["type"] == "webhook_received" for e in run.events())
    run.cancel()
