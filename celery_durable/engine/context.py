"""How workflow-side code finds the running workflow, without importing the engine.

Workflow code runs on a :class:`~.loop.WorkflowEventLoop` whose ``workflow_context``
is the :class:`~.replay.Replayer` driving it. The primitives (``sleep``, ``now``,
steps, webhooks) look that context up through the running loop, so they need no
globals and work in every task the workflow creates. They only know the
:class:`WorkflowContext` protocol below, which keeps ``replay`` and the primitives
from importing each other.
"""

from __future__ import annotations

import asyncio
import random as _random
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .history import Command


class WorkflowInfo(Protocol):
    """The run a workflow instance belongs to."""

    run_id: str
    workflow_name: str
    started_at: float
    parent_run_id: str | None


class Inbox(Protocol):
    """A webhook or hook as the replayer feeds it: deliveries in history order."""

    kind: str
    seq: int
    token: str
    disposed: bool

    def deliver(self, item: Any) -> None: ...

    def fail(self, error: BaseException) -> None: ...


class WorkflowContext(Protocol):
    """What the primitives ask of the engine driving the running workflow."""

    run_id: str
    #: The run's secret (from ``run_started``): webhook tokens derive from it.
    secret: str
    webhook_base_url: str
    random: _random.Random

    @property
    def info(self) -> WorkflowInfo | None: ...

    def now(self) -> float: ...

    def reserve_seq(self) -> int: ...

    def patched(self, patch: str) -> bool: ...

    def schedule(self, command: Command, seq: int | None = None) -> asyncio.Future[Any]: ...

    def emit_now(self, command: Command, seq: int | None = None,
                 inbox: Inbox | None = None) -> None: ...


def current_context() -> WorkflowContext | None:
    """The context of the workflow running on this thread, or ``None`` outside one."""
    loop = asyncio.events._get_running_loop()
    return getattr(loop, "workflow_context", None) if loop is not None else None


def require_context(what: str) -> WorkflowContext:
    """Like :func:`current_context`, but raise a clear error outside a workflow."""
    context = current_context()
    if context is None:
        raise RuntimeError(f"{what} can only be used inside a @durable.workflow")
    return context
