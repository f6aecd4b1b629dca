"""The model check's steps and its one generic workflow, on the end-to-end app.

Workers load this module with ``celery -A tests.e2e.proj worker --include
tests.model.proj_model``; the test process imports it after ``e2e_env`` set the
environment. :func:`model_program` interprets a program tree (``language.py``) with the
real primitives.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from celery_durable import (
    FatalError,
    all_settled,
    create_hook,
    get_step_metadata,
    get_workflow_metadata,
    race,
    sleep,
)
from tests.e2e.proj import app, durable
from tests.model.language import hook_token

__all__ = ["app", "durable", "model_program", "ModelError", "STEPS"]


class ModelError(Exception):
    """A step error of a type the workflow rebuilds as its own (this module imports)."""


_ERRORS: dict[str, type[Exception]] = {
    "ModelError": ModelError, "ValueError": ValueError, "FatalError": FatalError}


def _history(run_id: str) -> list[dict[str, Any]]:
    """The run's history; while Redis restarts, again (the model's bookkeeping must not
    make the step fail: only its ``fails`` does)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return list(durable.runtime.store.events(run_id))
        except durable.runtime.store.transient_errors:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _behave(spec: dict[str, Any]) -> str:
    """Fail while fewer than ``fails`` failed attempts of this step are recorded in the
    history (an attempt lost with its worker recorded nothing: it does not count)."""
    meta = get_step_metadata()
    failed = sum(1 for e in _history(meta.run_id)
                 if e.get("type") == "step_retrying" and e.get("seq") == meta.seq)
    if failed < spec["fails"]:
        raise _ERRORS[spec["error"]](f"e{spec['id']}")
    return f"v{spec['id']}"


@durable.step(max_retries=0, retry_backoff=0.05)
def model_step_r0(spec: dict[str, Any]) -> str:
    return _behave(spec)


@durable.step(max_retries=1, retry_backoff=0.05)
def model_step_r1(spec: dict[str, Any]) -> str:
    return _behave(spec)


@durable.step(max_retries=2, retry_backoff=0.05)
async def model_step_r2(spec: dict[str, Any]) -> str:  # an async step, for variety
    await asyncio.sleep(0)
    return _behave(spec)


STEPS = {0: model_step_r0, 1: model_step_r1, 2: model_step_r2}


def _error(exc: BaseException) -> list[str]:
    return [type(exc).__name__, str(exc.args[0]) if exc.args else ""]


async def _node(node: dict[str, Any], path: str, run_id: str) -> Any:
    kind = node["k"]
    children = [_node(c, f"{path}.{i}", run_id) for i, c in enumerate(node.get("c", ()))]
    if kind == "step":
        spec = {"id": node["id"], "fails": node["fails"], "error": node["error"]}
        return await STEPS[node["retries"]](spec)
    if kind == "seq":
        out = []
        for i, child in enumerate(children):
            try:
                out.append(await child)
            except BaseException:
                for rest in children[i + 1:]:
                    rest.close()  # never started: no "never awaited" warning
                raise
        return out
    if kind == "gather":
        return list(await asyncio.gather(*children))
    if kind == "gather_settled":
        results = await asyncio.gather(*children, return_exceptions=True)
        return [["!err", *_error(r)] if isinstance(r, BaseException) else r for r in results]
    if kind == "race":
        return await race(*children)
    if kind == "all_settled":
        return [[True, s.value] if s.ok else [False, _error(s.error or Exception())]
                for s in await all_settled(*children)]
    if kind == "wait_for":
        return await asyncio.wait_for(children[0], node["t"])
    if kind == "sleep":
        await sleep(node["s"])
        return None
    if kind == "hook":
        with create_hook(hook_token(run_id, path)) as hook:
            return await hook
    raise ValueError(f"unknown node kind {kind!r}")


@durable.workflow
async def model_program(program: dict[str, Any]) -> Any:
    """Run a program; its outcome is ``{"value": v}`` or ``{"error": [type, message]}``
    (with ``escape``, the error fails the run instead)."""
    run_id = get_workflow_metadata().run_id
    try:
        value = await _node(program["root"], "r", run_id)
    except Exception as exc:
        if program.get("escape"):
            raise
        return {"error": _error(exc)}
    return {"value": value}
