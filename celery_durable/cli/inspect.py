"""Reading runs: ``runs``, ``show`` (a timeline), ``export`` and ``replay``."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from .. import timeline as tl
from ..engine import history as h
from ..errors import RunNotFound
from ..replay_check import dumps_result, read_exports, replay_record
from ..store.run_index import STATUSES
from . import output as out
from . import runtime_of, workflow_named


@click.command()
@click.option("--status", type=click.Choice(STATUSES), help="only runs in this status")
@click.option("--workflow", help="only runs of this workflow (full or short name)")
@click.option("--limit", type=click.IntRange(1, 10000), default=20, show_default=True)
@click.option("--cursor", help="the page after this one (printed below a full page)")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table")
@click.pass_context
def runs(ctx: click.Context, status: str | None, workflow: str | None, limit: int,
         cursor: str | None, as_json: bool) -> None:
    """The runs, newest first."""
    runtime = runtime_of(ctx)
    name = workflow_named(runtime, workflow) if workflow else None
    try:
        page = runtime.list_runs(status, name, limit, cursor)
    except ValueError as exc:
        out.fail(str(exc))
    if as_json:
        for row in page:
            click.echo(out.json_line({"run_id": row.run_id, "workflow": row.workflow,
                                      "status": row.status, "created_at": out.iso(row.created_at),
                                      "ended_at": out.iso(row.ended_at) if row.ended_at else None,
                                      "duration": row.duration, "cursor": row.cursor}))
        return
    now = time.time()
    click.echo(out.table(["RUN ID", "WORKFLOW", "STATUS", "STARTED", "DURATION"], [
        [row.run_id, row.workflow, out.status(row.status),
         f"{out.ago(row.created_at, now)} ({out.iso(row.created_at)})",
         out.duration(row.duration if row.ended_at else now - row.created_at)]
        for row in page]))
    if not page:
        click.echo("(no runs)")
    elif len(page) == limit:
        click.echo(f"more: --cursor {page[-1].cursor}")


def _history(runtime: Any, run_id: str) -> tuple[str, list[dict[str, Any]]]:
    try:
        state = runtime.run_state(run_id)
    except RunNotFound as exc:
        out.fail(str(exc))
    return state.status, runtime.store.events(run_id)


def _bar(row: tl.Row, start: float, end: float, width: int = 24) -> str:
    """The row's span on the run's time axis, so parallel commands line up."""
    span = max(end - start, 1e-6)
    first = int((row.start - start) / span * width)
    last = int(((row.end if row.end is not None else end) - start) / span * width)
    first, last = min(first, width - 1), min(max(last, first + 1), width)
    return "·" * first + "█" * (last - first) + "·" * (width - last)


def _outcome(row: tl.Row) -> str:
    if row.error:
        return str(row.error.get("message") or row.error.get("exc_type") or "")[:60]
    if row.kind == "child" and row.status == "completed":
        return f"run {row.detail.get('run_id')} -> {out.json_line(row.result)[:40]}"
    if row.kind == "step" and row.status == "completed":
        return out.json_line(row.result)[:60]
    if row.kind == "sleep":
        return f"due {out.iso(row.detail.get('due'))}"
    if row.kind in ("webhook", "hook"):
        return f"{len(row.detail.get('received', []))} received"
    if row.kind == "child":
        return f"run {row.detail.get('run_id')}"
    return ""


def _shown_name(row: tl.Row) -> str:
    return tl.mask_token(row.name) if row.kind == "webhook" else row.name[:24]


def _print_timeline(timeline: tl.Timeline) -> None:
    now = time.time()
    end = timeline.ended or now
    click.echo(f"run {click.style(timeline.run_id, bold=True)}  {timeline.workflow}  "
               f"{out.status(timeline.status)}  started {out.iso(timeline.started)}  "
               f"({out.duration(end - timeline.started)})")
    rows = [[str(row.seq), row.kind, row.name.rsplit(".", 1)[-1] if row.kind == "step"
             else _shown_name(row), str(len(row.attempts) or ""), out.iso(row.start)[11:19],
             out.iso(row.end)[11:19] if row.end else "-", out.duration(row.duration),
             _bar(row, timeline.started, end), out.status(row.status), _outcome(row)]
            for row in timeline.rows]
    if rows:
        click.echo(out.table(["SEQ", "KIND", "NAME", "TRIES", "START", "END", "TOOK",
                              "TIMELINE", "STATUS", "OUTCOME"], rows))
    if timeline.status == "completed":
        click.echo(f"result: {out.json_line(timeline.result)}")
    elif timeline.error:
        error = timeline.error
        click.echo(click.style(f"error: {error.get('exc_module', '')}."
                               f"{error.get('exc_type', '')}: {error.get('message', '')}",
                               fg="red"))
        if error.get("traceback"):
            click.echo(str(error["traceback"]).rstrip())


@click.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="the history as JSON lines")
@click.option("--follow", is_flag=True, help="print new events until the run ends")
@click.pass_context
def show(ctx: click.Context, run_id: str, as_json: bool, follow: bool) -> None:
    """A run's timeline: each step, sleep, webhook and hook, and its outcome."""
    runtime = runtime_of(ctx)
    status, events = _history(runtime, run_id)
    if as_json:
        for event in events:
            event.pop("secret", None)
            click.echo(out.json_line(event))
    else:
        _print_timeline(tl.build(run_id, status, events))
        parent = events[0].get("parent") if events else None
        if parent:
            click.echo(f"parent: run {parent} (#{events[0].get('parent_seq')})")
    if not follow:
        return
    seen = len(events)  # what was shown: every later event is printed as it comes
    while True:
        ended = runtime.run_state(run_id).status != "running"  # read before the events
        events = runtime.store.events(run_id)
        for event in events[seen:]:
            event.pop("secret", None)
            click.echo(out.json_line(event) if as_json else _event_line(event))
        seen = len(events)
        if ended:
            break
        runtime.store.wait_ended(run_id, 0.5)


def _event_line(event: dict[str, Any]) -> str:
    """One followed event: time, position (if it has one), type, name, and the run's
    result or error when it ends."""
    parts = [out.iso(event.get("at"))]
    if event.get("seq") is not None:
        parts.append(f"#{event['seq']}")
    parts += [str(event.get("type")), str(event.get("name") or "")]
    if event.get("type") == h.RUN_COMPLETED:
        parts.append(f"result: {out.json_line(event.get('result'))}")
    elif event.get("error"):
        error = event["error"]
        parts.append(f"{error.get('exc_type', 'Error')}: {error.get('message', '')}")
    return "  ".join(p for p in parts if p)


@click.command()
@click.argument("run_ids", nargs=-1, required=True)
@click.option("-o", "--output", type=click.File("w"), default="-",
              help="the file to write (default: standard output)")
@click.pass_context
def export(ctx: click.Context, run_ids: tuple[str, ...], output: Any) -> None:
    """The runs' histories, one JSON object per line (they hold the runs' secrets)."""
    runtime = runtime_of(ctx)
    lines = []
    for run_id in run_ids:
        try:
            lines.append(runtime.export(run_id))
        except RunNotFound as exc:
            out.fail(str(exc))
    for line in lines:
        output.write(line + "\n")


@click.command()
@click.argument("run_ids", nargs=-1)
@click.option("--file", "path", type=click.File("r"), help="an export (JSON lines; - for stdin)")
@click.option("--workflow", help="only runs of this workflow")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True,
              help="at most this many live runs (with --workflow, or no ids and no file)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per run")
@click.pass_context
def replay(ctx: click.Context, run_ids: tuple[str, ...], path: Any, workflow: str | None,
           limit: int, as_json: bool) -> None:
    """Replay histories against the code deployed now, with no side effects; exit 1 if
    any diverged."""
    runtime = runtime_of(ctx)
    name = workflow_named(runtime, workflow) if workflow else None
    records: list[dict[str, Any]] = []
    try:
        if path is not None:
            records = [r for r in read_exports(path) if name is None or r.get("workflow") == name]
    except ValueError as exc:
        out.fail(f"{getattr(path, 'name', 'the file')}: {exc}")
    ids = list(run_ids)
    if not ids and path is None:
        ids = [row.run_id for row in runtime.list_runs(None, name, limit)]
    for run_id in ids:
        try:
            records.append(read_one(runtime.export(run_id)))
        except RunNotFound as exc:
            out.fail(str(exc))
    results = [replay_record(record, runtime) for record in records]
    for result in results:
        if as_json:
            click.echo(dumps_result(result))
        else:
            text = str(result)
            word = text.split()[0]
            click.echo(click.style(word, fg="green" if result.ok else "red", bold=True)
                       + text[len(word):])
    bad = sum(not r.ok for r in results)
    if not as_json:
        click.echo(f"{len(results) - bad} ok, {bad} diverged or failed", err=True)
    sys.exit(1 if bad else 0)


def read_one(line: str) -> dict[str, Any]:
    return next(iter(read_exports([line])))


COMMANDS = [runs, show, export, replay]
