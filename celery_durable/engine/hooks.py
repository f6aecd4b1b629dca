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
import json
import re
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import HookConflictError
from . import history as h
from .context import require_replayer

if TYPE_CHECKING:
    from .replay import Replayer

__all__ = ["Headers", "QueryArgs", "WebhookRequest", "Webhook", "Hook", "create_webhook",
           "create_hook", "derive_token"]


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def derive_token(secret: str, kind: str, seq: int) -> str:
    """A URL-safe token with 192 bits from the run's secret: the same on every replay."""
    digest = hmac.new(secret.encode(), f"{kind}/{seq}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


class QueryArgs(Mapping[str, str]):
    """Read-only ``name → first value`` view of repeated pairs; ``getlist`` gives all."""

    def __init__(self, pairs: list[tuple[str, str]] | list[list[str]]) -> None:
        self._pairs = [(str(k), str(v)) for k, v in pairs]
        self._first: dict[str, str] = {}
        for key, value in self._pairs:
            self._first.setdefault(self._key(key), value)

    @staticmethod
    def _key(key: str) -> str:
        return key

    def __getitem__(self, key: str) -> str:
        return self._first[self._key(key)]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._key(key) in self._first

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def getlist(self, key: str) -> list[str]:
        return [v for k, v in self._pairs if self._key(k) == self._key(key)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._pairs!r})"


class Headers(QueryArgs):
    """Case-insensitive, read-only HTTP headers (the first value of each name)."""

    @staticmethod
    def _key(key: str) -> str:
        return key.lower()


class WebhookRequest:
    """One HTTP request to a webhook, as the workflow sees it.

    Bad JSON is the workflow's to handle: ``json()`` raises ``ValueError`` here,
    never in the web app.
    """

    def __init__(self, data: dict[str, Any], webhook: Webhook | None = None) -> None:
        self.id: str = data.get("id", "")
        self.method: str = data.get("method", "")
        self.path: str = data.get("path", "")
        self.headers = Headers(data.get("headers", []))
        self.args = QueryArgs(data.get("args", []))
        self.body: bytes = base64.b64decode(data.get("body", ""))
        self._webhook = webhook

    def __repr__(self) -> str:
        return f"<WebhookRequest {self.id} {self.method} {len(self.body)} bytes>"

    @property
    def text(self) -> str:
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = part.partition("=")
            if name.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip('"')
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:  # the caller named a charset Python does not know
            return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON; ``ValueError`` if it is not JSON."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"webhook request {self.id} body is not valid JSON: {exc}") from None

    async def respond(self, status: int = 200, body: str | bytes | Any = "",
                      headers: Mapping[str, str] | None = None) -> None:
        """Answer the HTTP caller, held open by ``respond_with="manual"`` (a durable command).

        ``body`` may be text, bytes, or any JSON value (sent as JSON).
        """
        if self._webhook is None or self._webhook.respond_with != "manual":
            raise RuntimeError("request.respond() needs create_webhook(respond_with='manual')")
        if not 100 <= int(status) <= 599:
            raise ValueError(f"respond(): status must be an HTTP status code, got {status!r}")
        response = _static_response((status, body, dict(headers or {})))
        replayer = require_replayer("request.respond()")
        replayer.emit_now(h.RespondCommand(request_id=self.id, status=response["status"],
                                           body=response["body"], headers=response["headers"],
                                           base64=bool(response.get("base64"))))
        await asyncio.sleep(0)


def _static_response(spec: Any) -> dict[str, Any]:
    """``(status, body, headers)`` → the JSON form the web app replays to each caller."""
    if not isinstance(spec, (tuple, list)) or not 1 <= len(spec) <= 3:
        raise ValueError("respond_with must be None, 'manual' or (status, body, headers); "
                         f"got {spec!r}")
    status, body, headers = (list(spec) + ["", {}])[:3]
    headers = {str(k): str(v) for k, v in dict(headers or {}).items()}
    for name, value in headers.items():
        # Refused here, in the workflow: a bad header would fail the HTTP answer after
        # the request was recorded, and the caller would retry.
        if not _HEADER_NAME.match(name) or "\r" in value or "\n" in value:
            raise ValueError(f"response header {name!r}: {value!r} is not a valid HTTP header")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"response header {name!r}: {value!r} is not latin-1; "
                             "encode it (e.g. RFC 8187) first") from None
    if not 100 <= int(status) <= 599:
        raise ValueError(f"respond_with status must be an HTTP status code, got {status!r}")
    if isinstance(body, bytes):
        headers.setdefault("Content-Type", "application/octet-stream")
        return {"status": int(status), "body": base64.b64encode(body).decode(),
                "headers": headers, "base64": True}
    if not isinstance(body, str):
        body = json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    return {"status": int(status), "body": body, "headers": headers}


class _Inbox:
    """Items delivered from outside, kept in arrival order, awaited by index."""

    kind = "webhook"

    def __init__(self, replayer: Replayer, seq: int, token: str) -> None:
        self._replayer = replayer
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
            self._replayer.emit_now(h.DisposeCommand(target=self.seq, kind=self.kind))

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

    def __init__(self, replayer: Replayer, seq: int, token: str, method: str | None,
                 respond_with: Any) -> None:
        super().__init__(replayer, seq, token)
        self.method = method
        self.respond_with = respond_with
        self.url = f"{replayer.webhook_base_url.rstrip('/')}/webhook/{token}"

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
    replayer = require_replayer("create_webhook()")
    if method is not None:
        method = str(method).upper()
    if respond_with is not None and respond_with != "manual":
        respond_with = _static_response(respond_with)
    seq = replayer.reserve_seq()
    token = derive_token(replayer.secret, "webhook", seq)
    webhook = Webhook(replayer, seq, token, method, respond_with)
    replayer.emit_now(h.WebhookCommand(token=token, kind="webhook", method=method,
                                       respond_with=respond_with), seq, inbox=webhook)
    return webhook


def create_hook(token: str | None = None) -> Hook:
    """Register a hook resumed from code by ``durable.resume_hook(token, payload)``.

    A token of your choosing (``"slack:C123"``) is held by one live run at a time: a
    second run awaiting it gets :class:`HookConflictError`.
    """
    replayer = require_replayer("create_hook()")
    seq = replayer.reserve_seq()
    if token is None:
        token = derive_token(replayer.secret, "hook", seq)
    elif not isinstance(token, str) or not token or len(token) > 256:
        raise ValueError(f"create_hook(): token must be a non-empty string of at most 256 "
                         f"characters, got {token!r}")
    hook = Hook(replayer, seq, token)
    replayer.emit_now(h.WebhookCommand(token=token, kind="hook"), seq, inbox=hook)
    return hook


def conflict_error(token: str, holder: str) -> HookConflictError:
    return HookConflictError(f"hook token {token!r} is held by live run {holder!r}; it is free "
                             "again once that run disposes it or ends")
