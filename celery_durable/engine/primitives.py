"""Durable primitives workflow code awaits: race, all_settled, wait, sleep...

They are ordinary asyncio code on top of the workflow's loop; what makes them
durable is the loop (timers become durable commands) and the replayer (step
futures settle from history). Each keeps the order of completion in lists, never
in sets, so that replays in other processes make the same choices.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import re
import uuid
from collections.abc import Awaitable, Coroutine, Iterable, Iterator
from typing import Any, Generic, TypeVar

from .context import WorkflowContext, require_context
from .history import ChildCommand, StepCommand, child_run_id

T = TypeVar("T")

__all__ = [
    "Settled", "race", "all_settled", "wait", "as_completed", "sleep", "parse_duration",
    "now", "random", "uuid4", "WorkflowMetadata", "get_workflow_metadata", "patched",
    "deprecate_patch",
]


@dataclasses.dataclass(frozen=True)
class Settled(Generic[T]):
    """One outcome of :func:`all_settled`: ``ok`` with ``value``, or not with ``error``."""

    ok: bool
    value: T | None = None
    error: BaseException | None = None


async def race(*aws: Awaitable[Any]) -> Any:
    """Wait for the first awaitable to settle; return its value or raise its error.

    The others keep running (like ``Promise.race``): their results are recorded
    in the history and ignored.

    >>> winner = await race(fetch_fast(key), fetch_slow(key))   # doctest: +SKIP
    """
    if not aws:
        raise ValueError("race() needs at least one awaitable")
    loop = asyncio.get_running_loop()
    futures = [asyncio.ensure_future(aw) for aw in aws]
    first: asyncio.Future[asyncio.Future[Any]] = loop.create_future()

    def settled(future: asyncio.Future[Any]) -> None:
        if not first.done():
            first.set_result(future)

    for future in futures:
        future.add_done_callback(settled)
    winner = await first
    for future in futures:
        if future is not winner:
            future.remove_done_callback(settled)
            # Losers' errors are expected and ignored: mark them retrieved.
            future.add_done_callback(_retrieve)
    return winner.result()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def all_settled(*aws: Awaitable[T]) -> list[Settled[T]]:
    """Wait for every awaitable; never raise: a list of :class:`Settled`, in argument order.

    >>> results = await all_settled(charge(a), charge(b))          # doctest: +SKIP
    >>> [r.value for r in results if r.ok]                         # doctest: +SKIP
    """
    outcomes = await asyncio.gather(*aws, return_exceptions=True)
    return [Settled(False, error=o) if isinstance(o, BaseException) else Settled(True, value=o)
            for o in outcomes]


async def wait(aws: Iterable[Awaitable[Any]], *, timeout: float | None = None,
               return_when: str = asyncio.ALL_COMPLETED
               ) -> tuple[list[asyncio.Future[Any]], list[asyncio.Future[Any]]]:
    """Like :func:`asyncio.wait`, but ``done`` and ``pending`` are lists.

    ``done`` is in completion order, ``pending`` in argument order, so code that
    iterates them replays identically in any process (asyncio's sets do not).
    ``timeout`` is durable time.
    """
    if return_when not in (asyncio.FIRST_COMPLETED, asyncio.FIRST_EXCEPTION,
                           asyncio.ALL_COMPLETED):
        raise ValueError(f"invalid return_when value: {return_when!r}")
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[Any]] = list(
        dict.fromkeys(asyncio.ensure_future(aw) for aw in aws))
    if not futures:
        raise ValueError("wait() needs at least one awaitable")
    done: list[asyncio.Future[Any]] = [f for f in futures if f.done()]
    ready: asyncio.Future[None] = loop.create_future()

    def satisfied() -> bool:
        if len(done) == len(futures):
            return True
        if return_when == asyncio.FIRST_COMPLETED:
            return bool(done)
        if return_when == asyncio.FIRST_EXCEPTION:
            return any(not f.cancelled() and f.exception() is not None for f in done)
        return False

    def on_done(future: asyncio.Future[Any]) -> None:
        done.append(future)
        if satisfied() and not ready.done():
            ready.set_result(None)

    if not satisfied():
        for future in futures:
            if not future.done():
                future.add_done_callback(on_done)
        timer = None
        if timeout is not None:
            timer = loop.call_later(timeout, _settle, ready)
        try:
            await ready
        finally:
            if timer is not None:
                timer.cancel()
            for future in futures:
                future.remove_done_callback(on_done)
    finished = list(done)
    pending = [f for f in futures if f not in finished]
    return finished, pending


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def as_completed(aws: Iterable[Awaitable[T]], *, timeout: float | None = None
                 ) -> Iterator[Awaitable[T]]:
    """Like :func:`asyncio.as_completed`, in a replay-safe order.

    Tasks are created in argument order (asyncio's creates them from a set), and
    each awaitable yielded gives the next result in completion order.

    >>> for next_result in as_completed([a(), b(), c()]):        # doctest: +SKIP
    ...     print(await next_result)
    """
    loop = asyncio.get_running_loop()
    futures = list(dict.fromkeys(asyncio.ensure_future(aw) for aw in aws))
    finished: asyncio.Queue[asyncio.Future[Any] | None] = asyncio.Queue()
    for future in futures:
        future.add_done_callback(finished.put_nowait)
    timer = None
    if timeout is not None:
        timer = loop.call_later(timeout, finished.put_nowait, None)

    async def next_result() -> T:
        future = await finished.get()
        if future is None:
            raise asyncio.TimeoutError()
        return future.result()

    for _ in futures:
        yield next_result()
    if timer is not None:
        timer.cancel()


_UNITS = {
    "ms": 0.001, "msec": 0.001, "msecs": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}
_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_duration(value: str) -> float:
    """``"30s"``, ``"5 minutes"``, ``"1.5 hours"``, ``"2 weeks"`` → seconds.

    A bare number is seconds. Raises ``ValueError`` quoting the bad string.

    >>> parse_duration("1 day")
    86400.0
    """
    match = _DURATION.match(value)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS and unit != "":
        units = "ms, s, m, h, d, w (or their names: seconds, minutes, hours, days, weeks)"
        raise ValueError(f"cannot read {value!r} as a duration: use a number and a unit "
                         f"such as '30s', '5 minutes', '1 day'; units: {units}")
    return float(match.group(1)) * (_UNITS[unit] if unit else 1)


def _seconds_until(duration: Any, current: float) -> float:
    if isinstance(duration, bool):
        raise TypeError("sleep() takes seconds, a timedelta, a duration string or a datetime; "
                        "got a bool")
    if isinstance(duration, (int, float)):
        return float(duration)
    if isinstance(duration, dt.timedelta):
        return duration.total_seconds()
    if isinstance(duration, str):
        return parse_duration(duration)
    if isinstance(duration, dt.datetime):
        when = duration if duration.tzinfo else duration.replace(tzinfo=dt.timezone.utc)
        return when.timestamp() - current
    raise TypeError("sleep() takes seconds, a timedelta, a duration string such as '5 minutes' "
                    f"or a datetime to sleep until; got {type(duration).__name__}")


async def sleep(duration: float | dt.timedelta | str | dt.datetime) -> None:
    """Durable sleep: the run is suspended (no worker memory held) and woken later.

    >>> await sleep("1 day")                                   # doctest: +SKIP
    >>> await sleep(datetime(2027, 1, 1, 9, 0))               # until then (UTC)
    """
    context = require_context("sleep()")
    seconds = _seconds_until(duration, context.now())
    if not math.isfinite(seconds):
        raise ValueError(f"sleep() needs a finite duration, got {duration!r}")
    if seconds > 0:
        await asyncio.sleep(seconds)
    else:
        await asyncio.sleep(0)


def patched(patch_id: str) -> bool:
    """Change workflow code safely while runs are in flight.

    True in runs that reach this point under code that has the patch (and the choice is
    recorded, so every replay of them says True); False when replaying a history that
    was recorded before the patch existed (its commands here are the old code's). It
    takes no position: the commands after it keep theirs, so old histories replay.

    >>> if patched("fee-v2"):                                  # doctest: +SKIP
    ...     await charge_v2(order)
    ... else:
    ...     await charge(order)
    """
    if not isinstance(patch_id, str) or not patch_id:
        raise ValueError(f"patched() needs a non-empty string id, got {patch_id!r}")
    return require_context("patched()").patched(patch_id)


def deprecate_patch(patch_id: str) -> None:
    """The old branch of ``patched(patch_id)`` is gone: keep only the new code, and still
    record the patch in new runs (histories of both kinds replay). Deploy it once no
    running run's history lacks the patch.

    >>> deprecate_patch("fee-v2")                             # doctest: +SKIP
    >>> await charge_v2(order)                                # doctest: +SKIP
    """
    if not isinstance(patch_id, str) or not patch_id:
        raise ValueError(f"deprecate_patch() needs a non-empty string id, got {patch_id!r}")
    require_context("deprecate_patch()").patched(patch_id)


def now() -> dt.datetime:
    """The workflow's deterministic clock (UTC); it does not move during replay."""
    return dt.datetime.fromtimestamp(require_context("now()").now(), dt.timezone.utc)


def random() -> float:
    """A float in [0, 1), the same on every replay of this run."""
    return require_context("random()").random.random()


def uuid4() -> uuid.UUID:
    """A version-4 UUID, the same on every replay of this run."""
    bits = require_context("uuid4()").random.getrandbits(128)
    return uuid.UUID(int=bits, version=4)


@dataclasses.dataclass(frozen=True)
class WorkflowMetadata:
    """What :func:`get_workflow_metadata` returns (``parent_run_id`` in a child run)."""

    run_id: str
    workflow_name: str
    started_at: dt.datetime
    parent_run_id: str | None = None


def get_workflow_metadata() -> WorkflowMetadata:
    """The running workflow's run id, name and start time."""
    info = require_context("get_workflow_metadata()").info
    assert info is not None
    return WorkflowMetadata(info.run_id, info.workflow_name,
                            dt.datetime.fromtimestamp(info.started_at, dt.timezone.utc),
                            getattr(info, "parent_run_id", None))




def call_step(name: str, args: list[Any], kwargs: dict[str, Any]) -> Coroutine[Any, Any, Any]:
    """A coroutine that schedules step ``name`` when it first runs and awaits its outcome.

    The step's ``seq`` is taken now, at the call site (see ``Replayer.reserve_seq``).
    Arguments must already be JSON-normalised.
    """
    context = require_context(f"step {name!r}")
    seq = context.reserve_seq()
    return _scheduled_step(context, seq, StepCommand(name=name, args=args, kwargs=kwargs))


async def _scheduled_step(context: WorkflowContext, seq: int,
                          command: StepCommand | ChildCommand) -> Any:
    return await context.schedule(command, seq)


def call_child(workflow: str, args: list[Any], kwargs: dict[str, Any]
               ) -> Coroutine[Any, Any, Any]:
    """A coroutine that starts workflow ``workflow`` as a child run when it first runs,
    and awaits the child's result (or its error). Its position is taken now."""
    context = require_context(f"workflow {workflow!r}")
    seq = context.reserve_seq()
    return _scheduled_step(context, seq, ChildCommand(workflow=workflow, args=args,
                                                      kwargs=kwargs))


def start_detached(workflow: str, args: list[Any], kwargs: dict[str, Any]) -> str:
    """Start workflow ``workflow`` as a detached run (recorded: exactly once); its id."""
    context = require_context(f"{workflow}.start()")
    seq = context.reserve_seq()
    context.emit_now(ChildCommand(workflow=workflow, args=args, kwargs=kwargs, detached=True),
                     seq)
    return child_run_id(context.run_id, seq)
