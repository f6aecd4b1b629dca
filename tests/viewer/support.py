"""Helpers of the viewer tests: hostile strings, reading pages, waiting on runs."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

from celery_durable.devstack import wait_for

#: Everything a page must show as text and never run: a script, both quotes, a Jinja
#: expression (a template that rendered user data as a template would print 49).
HOSTILE = '<script>alert("pwn")</script> \' " {{ 7*7 }} </pre><b>bold</b>'
ESCAPED_SCRIPT = "&lt;script&gt;alert("  # then &#34; (or \\&#34; inside JSON)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def text(response: Any) -> str:
    return response.get_data(as_text=True)


def run_ids(page: str) -> list[str]:
    """The run ids of a runs page, in page order."""
    return re.findall(r'<tr data-run-id="([^"]+)"', page)


def older_link(page: str) -> str | None:
    """The "older »" link of a runs page (unescaped), if there is a next page."""
    match = re.search(r'<a class="older" href="([^"]+)"', page)
    return html.unescape(match[1]) if match else None


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the page holds no CSRF token (are actions on?)"
    return match[1]


def wait_status(durable: Any, run_id: str, status: str, timeout: float = 30.0) -> None:
    wait_for(lambda: durable.runtime.run_state(run_id).status == status, timeout,
             what=f"run {run_id} to be {status}")


def wait_event(durable: Any, run_id: str, kind: str, timeout: float = 30.0) -> dict[str, Any]:
    """The first event of type ``kind`` in the run's history, once it is there."""
    def found() -> dict[str, Any] | None:
        return next((e for e in durable.runtime.store.events(run_id) if e["type"] == kind),
                    None)

    return wait_for(found, timeout, what=f"a {kind} event in run {run_id}")


def wait_hook(durable: Any, token: str, timeout: float = 30.0) -> Any:
    """The live hook's token info, once the run has reached its ``create_hook()``."""
    return wait_for(lambda: durable.runtime.store.token_info(token), timeout,
                    what=f"hook {token!r} to be live")


def secret_of(durable: Any, run_id: str) -> str:
    secret = durable.runtime.store.events(run_id)[0]["secret"]
    assert isinstance(secret, str) and len(secret) >= 32
    return secret
