"""The Flask blueprint serving ``/webhook/<token>`` for any method.

A thin view: it turns Flask's request into an
:class:`~.webhook_handler.IncomingRequest` and the handler's
:class:`~.webhook_handler.Answer` into a response; the rules live in
:mod:`.webhook_handler`.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, request

from ..runtime import Runtime
from .webhook_handler import METHODS, IncomingRequest, WebhookHandler


def webhooks_blueprint(runtime: Callable[[], Runtime],
                       name: str = "celery_durable_webhooks") -> Blueprint:
    """A blueprint serving ``/webhook/<token>``; mount it where ``durable_webhook_base_url``
    points. ``runtime`` gives the runtime when the first request comes.

    >>> flask_app.register_blueprint(durable.webhooks_blueprint(), url_prefix="/durable")
    ... # doctest: +SKIP
    """
    blueprint = Blueprint(name, __name__)
    handlers: list[WebhookHandler] = []

    def handler() -> WebhookHandler:
        # Built at the first request, when the app's configuration is final.
        if not handlers:
            parts = runtime()
            handlers.append(WebhookHandler(
                parts.store, parts.dispatcher, max_bytes=parts.settings.webhook_max_bytes,
                response_timeout=parts.settings.webhook_response_timeout))
        return handlers[0]

    def receive(token: str) -> Response:
        incoming = IncomingRequest(
            method=request.method, path=request.path,
            headers=list(request.headers.items()),
            args=list(request.args.items(multi=True)),
            content_length=request.content_length, read_body=request.stream.read)
        answer = handler().handle(token, incoming)
        return Response(answer.body, status=answer.status, headers=answer.headers)

    blueprint.add_url_rule("/webhook/<token>", "webhook", receive, methods=list(METHODS),
                           provide_automatic_options=False)
    return blueprint
