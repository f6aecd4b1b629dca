"""Workflows of the viewer's tests, registered on the end-to-end app (its workers load
this module with ``--include tests.viewer.proj_viewer``)."""

from __future__ import annotations

import asyncio

from celery_durable import create_hook, race, sleep
from tests.e2e.proj import add, app, durable, flaky, slow_echo

__all__ = ["app", "durable", "showcase", "tiny"]


@durable.workflow
async def showcase(key: str, token: str) -> dict:
    """A gather of three, a race, a step that fails once and is retried, a sleep and a
    hook: every kind of bar the run page draws."""
    three = await asyncio.gather(slow_echo("a", 0.8), slow_echo("b", 0.8), slow_echo("c", 0.8))
    winner = await race(slow_echo("tortoise", 1.5), add(20, 22))
    retried = await flaky(key, 1)
    await sleep(0.3)
    approval = await create_hook(token)
    return {"three": three, "winner": winner, "attempt": retried["attempt"],
            "approval": approval}


@durable.workflow
async def tiny(i: int) -> int:
    """One quick step: runs to list and page through."""
    return await add(i, 1)
