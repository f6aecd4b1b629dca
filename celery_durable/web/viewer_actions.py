"""The viewer's buttons (``actions=True``): cancel, wake up, redrive, resume a hook.

Each is a POST from a form on the viewer's own pages and nothing else can trigger one:
the request must come from the same host (its ``Origin``, or else its ``Referer``) and
carry the CSRF token of the form, which must equal the token in the viewer's cookie (a
double-submit token: no server-side session needed, so it works across processes and
whatever the app's ``secret_key``). Each action redirects to the run's page with a
code saying what it did (never a user value in the URL).
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, g, redirect, request, url_for

from ..engine import history as h
from ..errors import HookNotFound, RunNotFound
from ..runtime import Runtime

COOKIE = "celery_durable_csrf"
FIELD = "csrf_token"
#: Largest hook payload the form takes (the JSON text), in characters.
PAYLOAD_LIMIT = 64 * 1024

#: What the run page says after each action (keyed by the redirect's ``done``).
DONE = {
    "cancel-requested": "Cancellation requested: the workflow sees CancelledError at its "
                        "next await.",
    "already-ended": "The run had already ended: there was nothing to cancel.",
    "woken": "Woke {n} pending sleep(s): a worker continues the run.",
    "redriven": "Redriven: {n} step(s) run again; a worker continues the run.",
    "resumed": "Hook #{n} resumed with the payload given.",
}


def done_message(code: str | None, n: str | None) -> str | None:
    """The confirmation for ``?done=<code>&n=<count>`` (None for anything else)."""
    template = DONE.get(code or "")
    if template is None:
        return None
    count = n if n is not None and n.isdigit() and len(n) < 10 else "0"
    return template.format(n=count)


# -- CSRF ----------------------------------------------------------------------------
def csrf_token() -> str:
    """The token for this page's forms: the cookie's, or a new one set by
    :func:`set_csrf_cookie` on the response."""
    current = request.cookies.get(COOKIE, "")
    if _well_formed(current):
        return current
    if "celery_durable_csrf" not in g:
        g.celery_durable_csrf = secrets.token_urlsafe(32)
    return str(g.celery_durable_csrf)


def set_csrf_cookie(response: Response, path: str) -> Response:
    token = g.get("celery_durable_csrf")
    if token:
        response.set_cookie(COOKIE, token, path=path, httponly=True, samesite="Strict",
                            secure=request.is_secure)
    return response


def _well_formed(token: str) -> bool:
    return 32 <= len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum()


def same_origin() -> bool:
    """The request comes from a page of this host: ``Origin`` says so or, lacking it,
    ``Referer`` does. Neither (or ``Origin: null``) is refused."""
    host = request.host.lower()
    origin = request.headers.get("Origin")
    source = origin if origin is not None else request.headers.get("Referer")
    if not source:
        return False
    netloc = urlsplit(source).netloc.lower()
    return bool(netloc) and hmac.compare_digest(netloc, host)


def refusal() -> str | None:
    """Why this POST is refused, or None."""
    if not same_origin():
        return "cross-origin request refused: actions are taken from the viewer's own pages"
    cookie = request.cookies.get(COOKIE, "")
    form = request.form.get(FIELD, "")
    if not (_well_formed(cookie) and hmac.compare_digest(cookie.encode(), form.encode())):
        return "missing or wrong CSRF token: reload the run's page and try again"
    return None


# -- the routes ----------------------------------------------------------------------
def register(blueprint: Blueprint, runtime: Callable[[], Runtime],
             problem: Callable[[int, str], Any]) -> None:
    """Add the POST routes; ``problem(status, message)`` renders a refusal."""

    def confirmed(run_id: str, code: str, n: int = 0) -> Any:
        return redirect(url_for(".run", run_id=run_id, done=code, n=n), code=303)

    def guarded(action: Callable[..., Any]) -> Callable[..., Any]:
        def view(run_id: str, **kwargs: Any) -> Any:
            why = refusal()
            if why is not None:
                return problem(403, why)
            try:
                runtime().run_state(run_id)
                return action(run_id, **kwargs)
            except RunNotFound as exc:
                return problem(404, str(exc))
        view.__name__ = action.__name__
        return view

    def cancel(run_id: str) -> Any:
        asked = runtime().cancel(run_id)
        return confirmed(run_id, "cancel-requested" if asked else "already-ended")

    def wake_up(run_id: str) -> Any:
        return confirmed(run_id, "woken", runtime().timers.wake_up(run_id))

    def redrive(run_id: str) -> Any:
        try:
            seqs = runtime().redrive(run_id)
        except ValueError as exc:
            return problem(409, str(exc))
        return confirmed(run_id, "redriven", len(seqs))

    def resume(run_id: str, seq: int) -> Any:
        text = request.form.get("payload", "").strip() or "null"
        if len(text) > PAYLOAD_LIMIT:
            return problem(413, f"the payload is over {PAYLOAD_LIMIT} characters")
        try:
            payload = json.loads(text)
        except ValueError as exc:
            return problem(400, f"the payload is not JSON ({exc}): write it as JSON, "
                                'for example {"approved": true} or "yes"')
        token = _live_hook_token(runtime(), run_id, seq)
        if token is None:
            return problem(409, f"hook #{seq} of this run is not live any more (it was "
                                "resumed and disposed, or the run ended)")
        try:
            runtime().resume_hook(token, payload)
        except HookNotFound:
            return problem(409, f"hook #{seq} of this run is not live any more")
        except (TypeError, ValueError) as exc:
            return problem(400, str(exc))
        return confirmed(run_id, "resumed", seq)

    for rule, action in (("/<run_id>/cancel", cancel), ("/<run_id>/wake-up", wake_up),
                         ("/<run_id>/redrive", redrive),
                         ("/<run_id>/hooks/<int:seq>/resume", resume)):
        blueprint.add_url_rule(rule, action.__name__, guarded(action), methods=["POST"])


def _live_hook_token(runtime: Runtime, run_id: str, seq: int) -> str | None:
    """The token of hook ``seq`` of this run if it is live and still this run's (a
    token of one's choosing may be held by another run by now)."""
    created = next((e for e in runtime.store.events(run_id)
                    if e.get("type") == h.HOOK_CREATED and e.get("seq") == seq), None)
    if created is None or not isinstance(created.get("token"), str):
        return None
    info = runtime.store.token_info(created["token"])
    if info is None or info.kind != "hook" or info.run_id != run_id or info.seq != seq:
        return None
    return str(created["token"])
