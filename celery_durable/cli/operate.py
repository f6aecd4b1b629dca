"""Acting on runs: ``start``, ``cancel``, ``wake-up``, ``resume-hook``, ``redrive``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..errors import HookNotFound, RunConflictError, RunNotFound, WorkflowCancelled
from ..run import Run
from ..store.run_index import STATUSES
from . import output as out
from . import runtime_of, workflow_named


def _json(text: str | None, what: str, default: Any) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError as exc:
        out.fail(f"{what} is not JSON ({exc}): {text!r}")


@click.command()
@click.argument("workflow")
@click.argument("args_json", required=False)
@click.option("--kwargs", "kwargs_json", help="keyword arguments, a JSON object")
@click.option("--run-id", help="start idempotently under this id (e.g. order-42)")
@click.option("--wait", "wait", is_flag=False, flag_value=300.0, type=float, default=None,
              help="wait for the result (at most SECONDS, 300 if none given: then put "
              "--wait last, or write --wait=SECONDS); exit 3 if the run is still going")
@click.pass_context
def start(ctx: click.Context, workflow: str, args_json: str | None, kwargs_json: str | None,
          run_id: str | None, wait: float | None) -> None:
    """Start a run of WORKFLOW with ARGS_JSON (a JSON list, or one JSON value)."""
    runtime = runtime_of(ctx)
    name = workflow_named(runtime, workflow)
    args = _json(args_json, "ARGS_JSON", [])
    args = args if isinstance(args, list) else [args]
    kwargs = _json(kwargs_json, "--kwargs", {})
    if not isinstance(kwargs, dict):
        out.fail(f"--kwargs must be a JSON object, got {kwargs_json!r}")
    try:
        started = runtime.start_run(name, args, kwargs, run_id)
    except (TypeError, ValueError, RunConflictError) as exc:
        out.fail(str(exc))
    click.echo(started)
    if wait is None:
        return
    try:
        value = Run(runtime, started).result(timeout=wait)
    except TimeoutError as exc:  # not a failure: the run goes on
        out.fail(str(exc), code=3)
    except WorkflowCancelled as exc:
        out.fail(str(exc), code=1)
    except Exception as exc:  # noqa: BLE001 - the run's own error: report it, exit 1
        out.fail(f"the run failed: {type(exc).__name__}: {exc}", code=1)
    click.echo(out.json_line(value))


@click.command()
@click.argument("run_ids", nargs=-1)
@click.option("--status", type=click.Choice(STATUSES), help="cancel every run in this status")
@click.option("--workflow", help="with --status: only runs of this workflow")
@click.pass_context
def cancel(ctx: click.Context, run_ids: tuple[str, ...], status: str | None,
           workflow: str | None) -> None:
    """Cancel runs by id, or every run in a status (e.g. --status running)."""
    runtime = runtime_of(ctx)
    if bool(run_ids) == bool(status):
        out.fail("give run ids, or --status (with --workflow), not both and not neither")
    ids = list(run_ids)
    if status:
        name = workflow_named(runtime, workflow) if workflow else None
        cursor = None
        while True:
            page = runtime.list_runs(status, name, 500, cursor)
            ids += [row.run_id for row in page]
            if len(page) < 500:
                break
            cursor = page[-1].cursor
    for run_id in ids:
        try:
            runtime.run_state(run_id)
        except RunNotFound as exc:
            out.fail(str(exc))
    for run_id in ids:
        done = runtime.cancel(run_id)
        click.echo(f"{run_id}  {'cancel requested' if done else 'already ended'}")
    if status and not ids:
        click.echo("(no runs to cancel)")


@click.command(name="wake-up")
@click.argument("run_id")
@click.pass_context
def wake_up(ctx: click.Context, run_id: str) -> None:
    """Fire the run's pending sleeps now."""
    runtime = runtime_of(ctx)
    try:
        runtime.run_state(run_id)
    except RunNotFound as exc:
        out.fail(str(exc))
    click.echo(f"{run_id}  {runtime.timers.wake_up(run_id)} sleep(s) woken")


@click.command(name="resume-hook")
@click.argument("token")
@click.argument("payload_json", required=False)
@click.option("--wait", type=float, default=0.0, help="seconds to wait for the hook to exist")
@click.pass_context
def resume_hook(ctx: click.Context, token: str, payload_json: str | None, wait: float) -> None:
    """Deliver PAYLOAD_JSON to the live hook holding TOKEN."""
    runtime = runtime_of(ctx)
    payload = _json(payload_json, "PAYLOAD_JSON", None)
    try:
        run_id = runtime.resume_hook(token, payload, wait=wait)
    except (HookNotFound, TypeError) as exc:
        out.fail(str(exc))
    click.echo(f"{run_id}  resumed")


@click.command()
@click.argument("run_id")
@click.pass_context
def redrive(ctx: click.Context, run_id: str) -> None:
    """Continue a failed run under the code deployed now (recorded steps are kept)."""
    runtime = runtime_of(ctx)
    try:
        again = runtime.redrive(run_id)
    except RunNotFound as exc:
        out.fail(str(exc))
    except ValueError as exc:
        out.fail(str(exc), code=1)
    steps = ", ".join(f"#{seq}" for seq in again) or "none (the workflow code is replayed)"
    click.echo(f"{run_id}  redriven; steps that run again: {steps}")
    sys.stdout.flush()


COMMANDS = [start, cancel, wake_up, resume_hook, redrive]
