"""The webhook endpoint: ``/webhook/<token>`` for any method.

The request is recorded as a ``webhook_received`` event in the run's history
*before* the answer goes out, then the run is woken. Unknown and spent tokens get
the same 404; a method the webhook did not ask for gets 405; a body over
``durable_webhook_max_bytes`` gets 413 without touching the run.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request

from .. import codec
from ..engine import history as h

if TYPE_CHECKING:
    from ..app import Durable

logger = logging.getLogger("celery_durable.web")

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _error(status: int, message: str, **headers: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    response.headers.update(headers)
    return response


def webhooks_blueprint(durable: Durable, name: str = "celery_durable_webhooks") -> Blueprint:
    """A blueprint serving ``/webhook/<token>``; mount it where ``durable_webhook_base_url``
    points.

    >>> flask_app.register_blueprint(durable.webhooks_blueprint(), url_prefix="/durable")
    ... # doctest: +SKIP
    """
    blueprint = Blueprint(name, __name__)

    def receive(token: str) -> Response:
        info = durable.store.token_info(token)
        if info is None or info.get("kind") != "webhook":
            return _error(404, "not found")
        allowed = info.get("method") or ""
        if allowed and request.method != allowed:
            return _error(405, f"this webhook accepts {allowed} only", Allow=allowed)
        if not allowed and request.method in ("OPTIONS", "HEAD"):
            # Preflights and link checkers are not callers: answer, record nothing.
            return Response(status=204 if request.method == "OPTIONS" else 200,
                            headers={"Allow": ", ".join(m for m in METHODS if m != "HEAD")})
        limit = durable.settings.webhook_max_bytes
        if request.content_length is not None and request.content_length > limit:
            return _error(413, f"request body over {limit} bytes")
        body = request.stream.read(limit + 1)
        if len(body) > limit:
            return _error(413, f"request body over {limit} bytes")
        run_id, seq = info["run"], int(info["seq"])
        request_id = uuid.uuid4().hex
        event = {"type": h.WEBHOOK_RECEIVED, "seq": seq, "at": time.time(), "request": {
            "id": request_id, "method": request.method, "path": request.path,
            "headers": [[k, v] for k, v in request.headers.items()],
            "args": [[k, v] for k, v in request.args.items(multi=True)],
            "body": base64.b64encode(body).decode()}}
        if not durable.store.deliver(run_id, event, "webhook", token):
            return _error(404, "not found")  # the run ended meanwhile
        try:
            durable.wake(run_id)
        except Exception:  # noqa: BLE001 - recorded and watched: the sweeper wakes it
            logger.warning("run %s: could not send the wake-up; the sweeper will", run_id,
                           exc_info=True)
        respond_with = codec.loads(info.get("respond_with") or "null")
        if respond_with is None:
            response = jsonify({"status": "accepted", "request_id": request_id})
            response.status_code = 202
            return response
        if respond_with == "manual":
            answer = durable.store.wait_response(run_id, request_id,
                                                 durable.settings.webhook_response_timeout)
            if answer is None:
                return _error(504, "the workflow did not respond in time")
            return _response(answer)
        return _response(respond_with)

    blueprint.add_url_rule("/webhook/<token>", "webhook", receive, methods=METHODS,
                           provide_automatic_options=False)
    return blueprint


def _response(spec: dict[str, Any]) -> Response:
    body = spec.get("body", "")
    data = base64.b64decode(body) if spec.get("base64") else str(body).encode()
    return Response(data, status=int(spec.get("status", 200)), headers=spec.get("headers") or {})
