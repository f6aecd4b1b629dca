"""The webhook rules without Flask: the handler against a real Redis store.

The handler only needs a store and something that sends wake-ups; here the
wake-ups are collected in a list, and the run is set up through the store's own
scripts as a commit would leave it (a live webhook at seq 1).
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from celery_durable.store.base import Commit, TokenClaim
from celery_durable.store.connect import connect
from celery_durable.store.redis import RedisStore
from celery_durable.web.webhook_handler import IncomingRequest, WebhookHandler


class Wakes(list):
    """Records the runs the handler wakes (the broker is not under test here)."""

    def wake(self, run_id: str, *, recover: bool = False) -> None:
        self.append(run_id)

    def send_step(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the webhook handler never sends steps")

    def send_timer(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the webhook handler never sends timers")


@pytest.fixture
def store(redis_server, session_tag: str) -> Iterator[RedisStore]:
    prefix = f"durable-{session_tag}-handler"
    store = RedisStore(connect(redis_server.url), prefix=prefix, lease=30, retention=60,
                       timer_horizon=300, queue_timeout=3600, timer_grace=2)
    yield store
    client = redis.Redis.from_url(redis_server.url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


def live_webhook(store: RedisStore, method: str | None = None,
                 respond_with: object = None) -> tuple[str, str]:
    """A running run with a committed webhook at seq 1: (run id, token)."""
    run_id, token = f"hook-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    started = {"type": "run_started", "at": time.time(), "workflow": "w", "args": [],
               "kwargs": {}}
    assert store.create_run(run_id, "w", started, watch_at=time.time() + 30) is None
    assert store.load(run_id, "lease", 0) is not None
    claim = TokenClaim(token, "webhook", 1, method, respond_with)
    assert store.claim_tokens(run_id, [claim]) == []
    created = {"type": "webhook_created", "at": time.time(), "seq": 1, "token": token,
               "method": method, "respond_with": respond_with}
    store.commit(run_id, "lease", Commit(events=[created], inboxes=[(1, "webhook", token)]))
    return run_id, token


def request(method: str = "POST", body: bytes = b"{}", length: int | None = -1
            ) -> IncomingRequest:
    stream = io.BytesIO(body)
    return IncomingRequest(method=method, path="/durable/webhook/x",
                           headers=[("Content-Type", "application/json")], args=[("a", "1")],
                           content_length=len(body) if length == -1 else length,
                           read_body=stream.read)


def test_a_request_is_recorded_before_the_answer_and_wakes_the_run(store):
    wakes = Wakes()
    handler = WebhookHandler(store, wakes, max_bytes=100, response_timeout=1)
    run_id, token = live_webhook(store)
    answer = handler.handle(token, request(body=b'{"ok": true}'))
    assert answer.status == 202
    received = [e for e in store.events(run_id) if e["type"] == "webhook_received"]
    assert len(received) == 1 and received[0]["seq"] == 1
    assert received[0]["request"]["args"] == [["a", "1"]]
    assert wakes == [run_id]


def test_unknown_tokens_wrong_methods_and_big_bodies_touch_nothing(store):
    wakes = Wakes()
    handler = WebhookHandler(store, wakes, max_bytes=10, response_timeout=1)
    run_id, token = live_webhook(store, method="POST")
    before = store.events(run_id)
    assert handler.handle("no-such-token", request()).status == 404
    wrong = handler.handle(token, request(method="PUT"))
    assert (wrong.status, wrong.headers.get("Allow")) == (405, "POST")
    assert handler.handle(token, request(body=b"x" * 11)).status == 413
    assert handler.handle(token, request(body=b"x" * 11, length=None)).status == 413  # chunked
    assert store.events(run_id) == before and wakes == []


def test_preflights_are_answered_and_not_recorded(store):
    handler = WebhookHandler(store, Wakes(), max_bytes=100, response_timeout=1)
    run_id, token = live_webhook(store)
    before = store.events(run_id)
    assert handler.handle(token, request(method="OPTIONS")).status == 204
    assert handler.handle(token, request(method="HEAD")).status == 200
    assert store.events(run_id) == before


def test_a_static_response_is_replayed_and_a_manual_one_times_out(store):
    static = {"status": 201, "body": "made", "headers": {"X-Made": "1"}}
    handler = WebhookHandler(store, Wakes(), max_bytes=100, response_timeout=0.2)
    _, token = live_webhook(store, respond_with=static)
    answer = handler.handle(token, request())
    assert (answer.status, answer.body, answer.headers["X-Made"]) == (201, b"made", "1")
    _, manual = live_webhook(store, respond_with="manual")
    assert handler.handle(manual, request()).status == 504


def test_an_unreadable_body_is_a_400_and_touches_nothing(store):
    handler = WebhookHandler(store, Wakes(), max_bytes=100, response_timeout=1)
    run_id, token = live_webhook(store)
    before = store.events(run_id)

    def broken(n: int) -> bytes:
        raise OSError("Invalid chunk header")

    bad = IncomingRequest(method="POST", path="/x", headers=[], args=[], content_length=None,
                          read_body=broken)
    assert handler.handle(token, bad).status == 400
    assert store.events(run_id) == before
