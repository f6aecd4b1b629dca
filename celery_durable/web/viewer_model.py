"""What the run viewer shows, as plain values: times and durations in words, user values
as bounded text, and the history cleaned of what must never reach a page.

Framework-free. Everything here is *data*: the templates escape it (Jinja's autoescape)
and the JSON API sends it as JSON; nothing is marked safe.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from typing import Any

from ..engine import history as h
from ..store.run_index import RunSummary
from ..timeline import TOKEN_SHOWN, mask_token

#: Longest text of one value on a page; the JSON API carries it whole.
VALUE_LIMIT = 4000
#: Header values shown as "(hidden)": the credentials of whoever called a webhook.
HIDDEN_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie",
                            "x-api-key"})
# A webhook's token is its only credential (whoever knows it can call the run): pages show
# its first characters, enough to tell two webhooks apart.
_WEBHOOK_PATH = re.compile(rf"(/webhook/)([^/?#]{{0,{TOKEN_SHOWN}}})[^/?#]*")


# -- time ----------------------------------------------------------------------------
def iso(at: float | None, ms: bool = False) -> str:
    """UTC, ``2026-12-02 04:26:24`` (and ``.123`` with ``ms``); ``-`` for None."""
    if at is None:
        return "-"
    t, millis = _split(at)
    text = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d} {t.tm_hour:02d}:{t.tm_min:02d}:" \
           f"{t.tm_sec:02d}"
    return f"{text}.{millis:03d} UTC" if ms else f"{text} UTC"


def clock(at: float | None) -> str:
    """``04:26:24.123`` (UTC): the time of day of an event within a run."""
    if at is None:
        return "-"
    t, millis = _split(at)
    return f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{millis:03d}"


def _split(at: float) -> tuple[time.struct_time, int]:
    # Rounded to the millisecond first, so .283 never shows as .282; gmtime because a
    # page of hundreds of rows formats thousands of times, and strftime is slow.
    total = round(at * 1000)
    return time.gmtime(total // 1000), total % 1000


def ago(at: float | None, now: float) -> str:
    """``just now``, ``42s ago``, ``5m ago``, ``3h ago``, ``4d ago``."""
    if at is None:
        return "-"
    seconds = max(0.0, now - at)
    if seconds < 2:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def duration(seconds: float | None) -> str:
    """``12ms``, ``3.4s``, ``2m 05s``, ``1h 02m``, ``3d 4h``."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


# -- values --------------------------------------------------------------------------
def pretty(value: Any, limit: int = VALUE_LIMIT) -> str:
    """A user value as indented JSON, cut at ``limit`` characters (saying so)."""
    try:
        text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return clip(text, limit)


def compact(value: Any, limit: int = 160) -> str:
    """A user value on one line, cut at ``limit`` characters."""
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return clip(text, limit, note=False)


def clip(text: str, limit: int, note: bool = True) -> str:
    if len(text) <= limit:
        return text
    rest = len(text) - limit
    return text[:limit] + (f"\n… {rest} more characters (the JSON API has the whole value)"
                           if note else "…")


def error_line(error: dict[str, Any] | None) -> str:
    """``ConnectionError: attempt 1 failed``."""
    if not error:
        return ""
    kind = str(error.get("exc_type") or "Error")
    message = str(error.get("message") or "")
    return clip(f"{kind}: {message}" if message else kind, 300, note=False)


def error_view(error: dict[str, Any] | None) -> dict[str, str] | None:
    """An encoded error as the page shows it: type (with module), message, traceback."""
    if not error:
        return None
    module = str(error.get("exc_module") or "")
    kind = str(error.get("exc_type") or "Error")
    return {"type": f"{module}.{kind}" if module and module != "builtins" else kind,
            "message": clip(str(error.get("message") or ""), VALUE_LIMIT),
            "traceback": clip(str(error.get("traceback") or "").rstrip(), 3 * VALUE_LIMIT)}


def short_name(name: str) -> str:
    """``proj.app.fetch_user`` → ``fetch_user``."""
    return name.rpartition(".")[2] or name


# -- the history, cleaned ---------------------------------------------------------------
def without_webhook_tokens(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history with every whole webhook token cut, wherever it appears: a workflow
    hands ``webhook.url`` to a step, so it sits in arguments and results too, and
    whoever reads a token can fire the webhook."""
    tokens = {e["token"] for e in events
              if e.get("type") == h.WEBHOOK_CREATED and isinstance(e.get("token"), str)
              and len(e["token"]) > TOKEN_SHOWN}
    if not tokens:
        return events

    def cut(value: Any) -> Any:
        if isinstance(value, str):
            for token in tokens:
                if token in value:
                    value = value.replace(token, mask_token(token))
            return value
        if isinstance(value, dict):
            return {key: cut(item) for key, item in value.items()}
        if isinstance(value, list):
            return [cut(item) for item in value]
        return value

    return [cut(event) for event in events]


def public_request(request: Any) -> Any:
    """A recorded webhook request with its token cut and credentials hidden."""
    if not isinstance(request, dict):
        return request
    out = dict(request)
    if isinstance(out.get("path"), str):
        out["path"] = _WEBHOOK_PATH.sub(lambda m: f"{m[1]}{m[2]}…", out["path"])
    headers = out.get("headers")
    if isinstance(headers, list):
        out["headers"] = [[pair[0], _header_value(pair)] if _is_pair(pair) else pair
                          for pair in headers]
    return out


def _is_pair(pair: Any) -> bool:
    return isinstance(pair, (list, tuple)) and len(pair) == 2


def _header_value(pair: Any) -> Any:
    name, value = pair
    if str(name).lower() in HIDDEN_HEADERS:
        return f"(hidden, {len(str(value))} characters)"
    return value


def public_event(event: dict[str, Any]) -> dict[str, Any]:
    """One history event fit for a page: no run secret, no whole webhook token."""
    out = {key: value for key, value in event.items() if key != "secret"}
    kind = out.get("type")
    if kind == h.WEBHOOK_CREATED and isinstance(out.get("token"), str):
        out["token"] = mask_token(out["token"])
    elif kind == h.WEBHOOK_RECEIVED:
        out["request"] = public_request(out.get("request"))
    return out


def request_body(request: dict[str, Any]) -> str:
    """A recorded request body (base64 in the history) as text."""
    raw = request.get("body")
    if not isinstance(raw, str):
        return ""
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return raw
    return clip(data.decode("utf-8", errors="replace"), VALUE_LIMIT)


def event_fields(event: dict[str, Any]) -> str:
    """What an event holds beyond its type, seq and time, on one line."""
    rest = {k: v for k, v in event.items() if k not in ("type", "seq", "at")}
    return compact(rest, 240) if rest else ""


# -- the listing -------------------------------------------------------------------------
def summary_json(row: RunSummary) -> dict[str, Any]:
    return {"run_id": row.run_id, "workflow": row.workflow, "status": row.status,
            "created_at": row.created_at, "ended_at": row.ended_at,
            "duration": row.duration, "cursor": row.cursor}


def summary_view(row: RunSummary, now: float) -> dict[str, Any]:
    """A row of the runs page."""
    running = row.ended_at is None
    return {"run_id": row.run_id, "workflow": row.workflow,
            "workflow_short": short_name(row.workflow),
            "workflow_module": row.workflow.rpartition(".")[0],
            "status": row.status, "created_at": row.created_at,
            "started_ago": ago(row.created_at, now), "started_iso": iso(row.created_at),
            "duration": duration((now if running else row.ended_at or now) - row.created_at),
            "running": running}
