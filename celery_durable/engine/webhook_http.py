"""The HTTP side of a webhook as workflow code sees it: requests and responses.

A :class:`WebhookRequest` is rebuilt from the ``webhook_received`` event the web
app recorded (method, path, headers, query pairs, body as base64), so replay gives
the workflow the very same request every time. :func:`static_response` checks a
``(status, body, headers)`` answer in the workflow, where a mistake can be reported,
and turns it into the JSON form the web app replays to each caller.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from . import history as h
from .context import require_context

__all__ = ["Headers", "QueryArgs", "WebhookRequest", "static_response"]

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class _Respondable(Protocol):
    """The webhook a request came through: it says whether answers are manual."""

    respond_with: Any


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

    def __init__(self, data: dict[str, Any], webhook: _Respondable | None = None) -> None:
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
        except (LookupError, UnicodeError, ValueError):
            # A charset Python does not know, or one whose codec refuses errors="replace"
            # (punycode, idna): the caller's mistake must not fail the run.
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
        response = static_response((status, body, dict(headers or {})))
        context = require_context("request.respond()")
        context.emit_now(h.RespondCommand(request_id=self.id, status=response["status"],
                                          body=response["body"], headers=response["headers"],
                                          base64=bool(response.get("base64"))))
        await asyncio.sleep(0)


def static_response(spec: Any) -> dict[str, Any]:
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
