"""How workflow-side functions find the running workflow.

Workflow code runs on a :class:`~.loop.WorkflowEventLoop`; each loop points at
its :class:`~.replay.Replayer`. Functions such as ``now()`` look the running
loop up, so they need no globals and work in every task the workflow creates.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .replay import Replayer


def current_replayer() -> Replayer | None:
    """The replayer of the workflow running on this thread, or ``None`` outside one."""
    loop = asyncio.events._get_running_loop()
    return getattr(loop, "replayer", None) if loop is not None else None


def require_replayer(what: str) -> Replayer:
    """Like :func:`current_replayer`, but raise a clear error outside a workflow."""
    replayer = current_replayer()
    if replayer is None:
        raise RuntimeError(f"{what} can only be used inside a @durable.workflow")
    return replayer
