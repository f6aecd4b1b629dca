"""``celery -A proj.app durable VERB``: operate runs from the terminal.

Registered in the ``celery.commands`` entry point group, so Celery finds the user's
app the way every ``celery`` command does; the verbs reach the runtime of the
``Durable`` on that app.
"""

from __future__ import annotations

from typing import Any

import click

from ..runtime import Runtime
from .output import fail


def runtime_of(ctx: click.Context) -> Runtime:
    """The runtime of the Durable on the app ``-A`` names."""
    app: Any = getattr(ctx.find_root().obj, "app", None)
    durable: Any = getattr(app, "_celery_durable", None)
    if durable is None:
        fail(f"the app {getattr(app, 'main', app)!r} has no Durable: point -A at the module "
             "that creates Durable(app) and defines your workflows (celery -A proj.app "
             "durable ...)")
    # Workers import the app's `include` and `imports` modules at start; the workflows
    # and steps defined there exist for the CLI only once it does the same.
    app.loader.import_default_modules()
    runtime: Runtime = durable.runtime
    return runtime


def workflow_named(runtime: Runtime, name: str) -> str:
    """A registered workflow's full name from its full or its short name."""
    workflows = runtime.registry.workflows
    matches = runtime.registry.workflow_names(name)
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(sorted(workflows)) or "none"
    why = "is ambiguous" if matches else "is not registered"
    fail(f"workflow {name!r} {why} (registered: {known})")
    raise AssertionError  # unreachable: fail() exits


@click.group(name="durable")
def durable() -> None:
    """Operate celery_durable runs: list, show, start, cancel, redrive, replay..."""


def _register() -> None:
    from . import dev, inspect, operate

    for module in (inspect, operate, dev):
        for command in module.COMMANDS:
            durable.add_command(command)


_register()

__all__ = ["durable", "runtime_of", "workflow_named"]
