"""The webhook endpoint's rules, with no web framework: request in, answer out.

:meth:`WebhookHandler.handle` looks the token up, checks the method and the body
size, records the request as a ``webhook_received`` event in the run's history
*before* the answer goes out, wakes the run, and answers: ``202`` by default, the
webhook's static response, or -- for ``respond_with="manual"`` -- the workflow's
own answer (``504`` if none comes in time). Unknown and spent tokens get the same
``404``; a method the webhook did not ask for ``405``; a body over the limit ``413``
without touching the run. The Flask view in :mod:`.webhooks` only translates.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..engine import history as h
from ..messages import Dispatcher
from ..store.base import HistoryStore

logger = logging.getLogger("celery_durable.web")

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclasses.dataclass(frozen=True)
class IncomingRequest:
    """An HTTP request to ``/webhook/<token>``, as any framework can give it."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    #: Query pairs, repeated names kept.
    args: list[tuple[str, str]]
    #: The declared length (None when the body is chunked).
    content_length: int | None
    #: Reads up to n bytes of the body.
    read_body: Callable[[int], bytes]


@dataclasses.dataclass(frozen=True)
class Answer:
    """What to send back."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: Any, **headers: str) -> Answer:
        return cls(status, json.dumps(value).encode(),
                   {"Content-Type": "application/json", **headers})

    @classmethod
    def error(cls, status: int, message: str, **headers: str) -> Answer:
        return cls.json(status, {"error": message}, **headers)

    @classmethod
    def replay(cls, spec: dict[str, Any]) -> Answer:
        """A response the workflow chose (static or manual), in its JSON form."""
        body = spec.get("body", "")
        data = base64.b64decode(body) if spec.get("base64") else str(body).encode()
        return cls(int(spec.get("status", 200)), data, dict(spec.get("headers") or {}))


class WebhookHandler:
    """Receives webhook requests for one runtime's store."""

    def __init__(self, store: HistoryStore, dispatcher: Dispatcher, *, max_bytes: int,
                 response_timeout: float) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.max_bytes = max_bytes
        self.response_timeout = response_timeout

    def __repr__(self) -> str:
        return f"<WebhookHandler max_bytes={self.max_bytes}>"

    def handle(self, token: str, request: IncomingRequest) -> Answer:
        info = self.store.token_info(token)
        if info is None or info.kind != "webhook":
            return Answer.error(404, "not found")
        allowed = info.method or ""
        if allowed and request.method != allowed:
            return Answer.error(405, f"this webhook accepts {allowed} only", Allow=allowed)
        if not allowed and request.method in ("OPTIONS", "HEAD"):
            # Preflights and link checkers are not callers: answer, record nothing.
            return Answer(204 if request.method == "OPTIONS" else 200,
                          headers={"Allow": ", ".join(m for m in METHODS if m != "HEAD")})
        limit = self.max_bytes
        if request.content_length is not None and request.content_length > limit:
            return Answer.error(413, f"request body over {limit} bytes")
        try:
            body = request.read_body(limit + 1)
        except (OSError, ValueError) as exc:  # a malformed chunked body, a dropped client
            logger.info("webhook request with an unreadable body: %s", exc)
            return Answer.error(400, "the request body could not be read")
        if len(body) > limit:
            return Answer.error(413, f"request body over {limit} bytes")
        request_id = uuid.uuid4().hex
        event = {"type": h.WEBHOOK_RECEIVED, "seq": info.seq, "at": time.time(), "request": {
            "id": request_id, "method": request.method, "path": request.path,
            "headers": [[k, v] for k, v in request.headers],
            "args": [[k, v] for k, v in request.args],
            "body": base64.b64encode(body).decode()}}
        if not self.store.deliver(info.run_id, event, "webhook", token):
            return Answer.error(404, "not found")  # the run ended meanwhile
        try:
            self.dispatcher.wake(info.run_id)
        except Exception:  # noqa: BLE001 - recorded and watched: the sweeper wakes it
            logger.warning("run %s: could not send the wake-up; the sweeper will", info.run_id,
                           exc_info=True)
        if info.respond_with is None:
            return Answer.json(202, {"status": "accepted", "request_id": request_id})
        if info.respond_with == "manual":
            answer = self.store.wait_response(info.run_id, request_id, self.response_timeout)
            if answer is None:
                return Answer.error(504, "the workflow did not respond in time")
            return Answer.replay(answer)
        return Answer.replay(info.respond_with)
