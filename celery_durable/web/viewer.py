"""The run viewer: a Flask blueprint of server-rendered pages over the run listing and
each run's timeline, and the same data as JSON.

>>> flask_app.register_blueprint(durable.viewer_blueprint(), url_prefix="/runs")
... # doctest: +SKIP

Routes (under the prefix): ``/`` the runs, newest first (``?status=``, ``?workflow=``,
``?cursor=``); ``/<run_id>`` one run (``/<run_id>/commands/<seq>``: one command's panel);
``/api/runs`` and ``/api/runs/<run_id>`` as JSON;
``/static/...`` its CSS and JS. With ``actions=True`` also the POST routes of
:mod:`.viewer_actions`; without, they do not exist. The pages hold no inline script and
load nothing from elsewhere (a Content-Security-Policy says so), so they work offline.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request, url_for

from ..errors import RunNotFound
from ..runtime import Runtime
from ..store.run_index import STATUSES
from . import viewer_actions as actions_mod
from . import viewer_model as vm
from . import viewer_run

STATIC = Path(__file__).parent / "static"
TEMPLATES = "celery_durable_viewer"
PAGE_SIZE = 50
MAX_PAGE = 200
#: Most runs one ``/api/runs?ids=`` asks about (what the runs page polls).
MAX_IDS = 200
# What a run id looked up may hold: the ids users choose, and "~" of a child run's id.
# Anything else cannot be a run: 404 without asking the store.
LOOKUP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@~-]{0,255}")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")


def _static_version() -> str:
    # In the static URLs, so a browser left open picks up new CSS/JS after an upgrade.
    digest = hashlib.sha256()
    for path in sorted(STATIC.glob("*")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


class BadRequest(Exception):
    """A query argument the viewer cannot use; its message says which and why."""


def viewer_blueprint(runtime: Callable[[], Runtime], *, actions: bool = False,
                     name: str = "celery_durable_viewer") -> Blueprint:
    """The viewer's blueprint; ``runtime`` gives the runtime when the first request
    comes (the app's configuration is final by then)."""
    blueprint = Blueprint(name, __name__, template_folder="templates",
                          static_folder="static", static_url_path="/static")
    parts: list[Runtime] = []
    version = _static_version()

    def rt() -> Runtime:
        if not parts:
            parts.append(runtime())
        return parts[0]

    def render(template: str, http_status: int = 200, **context: Any) -> Response:
        html = render_template(
            f"{TEMPLATES}/{template}", actions=actions, version=version,
            csrf_token=actions_mod.csrf_token() if actions else "", **context)
        response = Response(html, status=http_status, mimetype="text/html")
        return actions_mod.set_csrf_cookie(response, url_for(".runs")) if actions \
            else response

    def problem(status: int, message: str) -> Response:
        if request.path.startswith(url_for(".api_runs")):
            response = jsonify({"error": message})
            response.status_code = status
            return response
        return render("problem.html", http_status=status, code=status, message=message)

    # -- pages ----------------------------------------------------------------------
    def runs_page() -> Response:
        try:
            status, workflow, cursor, limit = _filters(rt())
            rows, next_cursor = _page(rt(), status, workflow, cursor, limit)
        except (BadRequest, ValueError) as exc:
            return problem(400, str(exc))
        now = time.time()
        return render("runs.html", runs=[vm.summary_view(r, now) for r in rows],
                      status=status, workflow=workflow, cursor=cursor, limit=limit,
                      next_cursor=next_cursor, statuses=STATUSES,
                      workflows=sorted(rt().registry.workflows), now=now)

    def run_page(run_id: str) -> Response:
        try:
            state, events = _load(rt(), run_id)
        except RunNotFound as exc:
            return problem(404, str(exc))
        data = viewer_run.page(run_id, state, events, time.time(),
                               all_events=request.args.get("events") == "all")
        done = actions_mod.done_message(request.args.get("done"), request.args.get("n")) \
            if actions else None
        return render("run.html", done=done, **data)

    def command_panel(run_id: str, seq: int) -> Response:
        # The panel of one command of a big run, fetched when its bar is clicked.
        try:
            state, events = _load(rt(), run_id)
        except RunNotFound as exc:
            return problem(404, str(exc))
        found = viewer_run.command(run_id, state, events, seq)
        if found is None:
            return problem(404, f"run {run_id!r} has no command #{seq}")
        return render("command.html", d=found)

    # -- JSON -----------------------------------------------------------------------
    def api_runs() -> Response:
        try:
            ids = request.args.get("ids")
            if ids is not None:
                return jsonify({"runs": _by_ids(rt(), ids)})
            status, workflow, cursor, limit = _filters(rt())
            rows, next_cursor = _page(rt(), status, workflow, cursor, limit)
        except (BadRequest, ValueError) as exc:
            return problem(400, str(exc))
        return jsonify({"runs": [_with_urls(vm.summary_json(r)) for r in rows],
                        "next_cursor": next_cursor})

    def api_run(run_id: str) -> Response:
        try:
            state, events = _load(rt(), run_id)
        except RunNotFound as exc:
            return problem(404, str(exc))
        return jsonify(_with_urls(viewer_run.as_json(
            run_id, state, events, brief=request.args.get("brief") == "1")))

    def headers(response: Response) -> Response:
        # Live data: never cached; static files are, under their versioned URLs.
        if request.endpoint != f"{blueprint.name}.static":
            response.headers["Cache-Control"] = "no-store"
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.mimetype == "text/html":
            response.headers["Content-Security-Policy"] = CSP
            response.headers["X-Frame-Options"] = "DENY"
        return response

    blueprint.add_url_rule("/", "runs", runs_page)
    blueprint.add_url_rule("/<run_id>", "run", run_page)
    blueprint.add_url_rule("/<run_id>/commands/<int:seq>", "command", command_panel)
    blueprint.add_url_rule("/api/runs", "api_runs", api_runs)
    blueprint.add_url_rule("/api/runs/<run_id>", "api_run", api_run)
    blueprint.after_request(headers)
    if actions:
        actions_mod.register(blueprint, rt, problem)
    return blueprint


def _filters(runtime: Runtime) -> tuple[str | None, str | None, str | None, int]:
    args = request.args
    status = args.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequest(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
    limit_text = args.get("limit") or str(PAGE_SIZE)
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_PAGE}")
    workflow = (args.get("workflow") or "").strip() or None
    if workflow:
        # A short name, as the CLI takes it; a name this process does not know is kept
        # as given (runs of a workflow no longer deployed are still listed by it).
        names = runtime.registry.workflow_names(workflow)
        workflow = names[0] if len(names) == 1 else workflow
    return status, workflow, args.get("cursor") or None, int(limit_text)


def _page(runtime: Runtime, status: str | None, workflow: str | None, cursor: str | None,
          limit: int) -> tuple[list[Any], str | None]:
    """A page and the cursor of the next one (None on the last): one more row than
    shown is read to know whether there is a next page."""
    rows = runtime.list_runs(status, workflow, limit + 1, cursor)
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].cursor
    return rows, None


def _by_ids(runtime: Runtime, ids: str) -> list[dict[str, Any]]:
    """The current state of the runs named (unknown ids are left out)."""
    wanted = [i for i in ids.split(",") if i][:MAX_IDS]
    out = []
    for run_id in wanted:
        try:
            state, _ = _load(runtime, run_id, events=False)
        except RunNotFound:
            continue
        out.append(_with_urls({
            "run_id": run_id, "workflow": state.workflow, "status": state.status,
            "created_at": state.created_at, "ended_at": state.ended_at,
            "duration": None if state.ended_at is None
            else state.ended_at - state.created_at}))
    return out


def _load(runtime: Runtime, run_id: str, events: bool = True
          ) -> tuple[Any, list[dict[str, Any]]]:
    """The run's state and history; :class:`RunNotFound` for no such run."""
    if not LOOKUP_ID.fullmatch(run_id):
        raise RunNotFound("no run with that id (it is not a usable run id)")
    state = runtime.run_state(run_id)
    return state, vm.without_webhook_tokens(runtime.store.events(run_id)) if events else []


def _with_urls(row: dict[str, Any]) -> dict[str, Any]:
    row["url"] = url_for(".run", run_id=row["run_id"])
    row["api_url"] = url_for(".api_run", run_id=row["run_id"])
    return row
