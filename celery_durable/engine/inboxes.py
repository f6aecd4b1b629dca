"""Webhooks and hooks: awaitables fed from outside the run.

``create_webhook()`` / ``create_hook()`` register their token at once (a durable
command) and return an object that is awaitable (the first request or payload),
async-iterable (each one, in arrival order) and a context manager (the token is
disposed when the block ends). Requests and payloads arrive as history events, so
replay sees them in the same order every time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Generator
from typing import Any

from . import history as h
from .context import WorkflowContext, require_context
from .webhook_http import WebhookRequest, static_response

__all__ = ["Webhook", "Hook", "create_webhook", "create_hook", "derive_token"]


def derive_token(secret: str, kind: str, seq: int) -> str:
    """A URL-safe token with 192 bits from the run's secret: the same on every replay."""
    digest = hmac.new(secret.encode(), f"{kind}/{seq}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


class _Inbox:
    """Items delivered from outside, kept in arrival order, awaited by index."""

    kind = "webhook"

    def __init__(self, context: WorkflowContext, seq: int, token: str) -> None:
        self._context = context
        self.seq = seq
        self.token = token
        self._items: list[Any] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._error: BaseException | None = None
        self.disposed = False

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def deliver(self, item: Any) -> None:
        self._items.append(item)
        self._wake()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._wake()

    async def _get(self, index: int) -> Any:
        while len(self._items) <= index:
            if self._error is not None:
                raise self._error
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        return self._items[index]

    def __await__(self) -> Generator[Any, None, Any]:
        return self._get(0).__await__()

    async def __aiter__(self) -> AsyncIterator[Any]:
        index = 0
        while True:
            yield await self._get(index)
            index += 1

    def dispose(self) -> None:
        """Stop accepting: later requests or resumes with this token are refused."""
        if not self.disposed:
            self.disposed = True
            self._context.emit_now(h.DisposeCommand(target=self.seq, kind=self.kind))

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.dispose()


class Webhook(_Inbox):
    """A URL that feeds HTTP requests into the run.

    >>> webhook = create_webhook()                                  # doctest: +SKIP
    >>> await send_approval_email(webhook.url)                      # doctest: +SKIP
    >>> request = await webhook                                     # doctest: +SKIP
    """

    kind = "webhook"

    def __init__(self, context: WorkflowContext, seq: int, token: str, method: str | None,
                 respond_with: Any) -> None:
        super().__init__(context, seq, token)
        self.method = method
        self.respond_with = respond_with
        self.url = f"{context.webhook_base_url.rstrip('/')}/webhook/{token}"

    def __repr__(self) -> str:
        return f"<Webhook #{self.seq} {self.url}>"

    def deliver(self, item: Any) -> None:
        super().deliver(WebhookRequest(item, self))


class Hook(_Inbox):
    """A token that code resumes with ``durable.resume_hook(token, payload)``."""

    kind = "hook"

    def __repr__(self) -> str:
        return f"<Hook #{self.seq} {self.token!r}>"


def create_webhook(*, method: str | None = None, respond_with: Any = None) -> Webhook:
    """Register a webhook for this run; its ``.url`` exists as soon as this returns.

    ``method`` restricts the HTTP method (others get 405). ``respond_with``: ``None``
    answers ``202 Accepted``; ``(status, body, headers)`` answers every caller so;
    ``"manual"`` holds the caller until ``await request.respond(...)``.

    >>> with create_webhook(method="POST") as webhook:             # doctest: +SKIP
    ...     await notify(webhook.url)
    ...     request = await race(webhook, sleep("1 day"))
    """
    context = require_context("create_webhook()")
    if method is not None:
        method = str(method).upper()
    if respond_with is not None and respond_with != "manual":
        respond_with = static_response(respond_with)
    seq = context.reserve_seq()
    token = derive_token(context.secret, "webhook", seq)
    webhook = Webhook(context, seq, token, method, respond_with)
    context.emit_now(h.WebhookCommand(token=token, kind="webhook", method=method,
                                       respond_with=respond_with), seq, inbox=webhook)
    return webhook


def create_hook(token: str | None = None) -> Hook:
    """Register a hook resumed from code by ``durable.resume_hook(token, payload)``.

    A token of your choosing (``"slack:C123"``) is held by one live run at a time: a
    second run awaiting it gets :class:`HookConflictError`.
    """
    context = require_context("create_hook()")
    seq = context.reserve_seq()
    if token is None:
        token = derive_token(context.secret, "hook", seq)
    elif not isinstance(token, str) or not token or len(token) > 256:
        raise ValueError(f"create_hook(): token must be a non-empty string of at most 256 "
                         f"characters, got {token!r}")
    hook = Hook(context, seq, token)
    context.emit_now(h.WebhookCommand(token=token, kind="hook"), seq, inbox=hook)
    return hook
