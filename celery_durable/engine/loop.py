"""A small deterministic asyncio event loop for workflow code.

It implements just what asyncio's futures, tasks, ``gather``, ``wait``,
``wait_for``, ``timeout`` and ``TaskGroup`` use: a FIFO ready queue, a clock that
only moves when the replay says so, and timers that become durable commands
instead of waiting on a selector. There is no I/O: everything else raises
``NotImplementedError`` with a message that says why.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import time
from collections.abc import Callable
from typing import Any

from ..errors import WorkflowBlockedError
from . import watchdog

logger = logging.getLogger("celery_durable.engine")

#: Workflow code that holds the loop longer than this in one callback is
#: treated as blocking (``time.sleep``, network I/O) rather than as replaying.
DEFAULT_BLOCK_DEADLINE = 2.0


class WorkflowEventLoop(asyncio.AbstractEventLoop):
    """The loop a workflow runs on; driven by :class:`~.replay.Replayer`.

    ``on_timer(handle)`` is called when workflow code asks for a callback in the
    future (``asyncio.sleep(5)``, ``wait_for(..., timeout=...)``); the replayer
    turns it into a durable timer command and runs the handle when it fires.
    """

    def __init__(self, start_time: float, on_timer: Callable[[asyncio.TimerHandle], None],
                 block_deadline: float = DEFAULT_BLOCK_DEADLINE) -> None:
        self._ready: collections.deque[asyncio.Handle] = collections.deque()
        self._time = start_time
        self._on_timer = on_timer
        self._block_deadline = block_deadline
        #: When the running callback began (read by the watchdog thread; None between).
        self.callback_since: float | None = None
        self.watchdog_signalled: tuple[float, float] | None = None
        self._watched: bool | None = None  # decided on the first drain
        self._closed = False
        self._running = False
        self._exception_handler: Any = None
        #: What the primitives reach through the running loop (the replayer).
        self.workflow_context: Any = None
        #: The last errors raised by callbacks that no task could receive (logged).
        self.unhandled: collections.deque[dict[str, Any]] = collections.deque(maxlen=20)

    # -- the clock: moves only when the replayer advances it ------------------
    def time(self) -> float:
        return self._time

    def advance_to(self, when: float) -> None:
        """Move the clock forward (never backward) to ``when``."""
        if when > self._time:
            self._time = when

    # -- scheduling --------------------------------------------------------
    def call_soon(self, callback: Callable[..., Any], *args: Any,
                  context: contextvars.Context | None = None) -> asyncio.Handle:
        self._check_closed()
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any,
                             context: contextvars.Context | None = None) -> asyncio.Handle:
        raise NotImplementedError(
            "workflow code cannot receive callbacks from other threads: do that work in a step")

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any,
                   context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        return self.call_at(self._time + delay, callback, *args, context=context)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any,
                context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        self._check_closed()
        handle = asyncio.TimerHandle(when, callback, args, self, context)
        if when <= self._time:
            # Already due on the workflow's clock: no durable timer needed.
            self._ready.append(handle)
        else:
            self._on_timer(handle)
        return handle

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        # A cancelled timer simply does nothing when it fires.
        pass

    def fire(self, handle: asyncio.Handle) -> None:
        """Queue a timer handle whose durable timer fired."""
        if not handle.cancelled():
            self._ready.append(handle)

    # -- futures and tasks ---------------------------------------------------
    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(self, coro: Any, *, name: str | None = None,
                    context: contextvars.Context | None = None) -> asyncio.Task[Any]:
        self._check_closed()
        if context is None:
            return asyncio.Task(coro, loop=self, name=name)
        return asyncio.Task(coro, loop=self, name=name, context=context)

    # -- running -------------------------------------------------------------
    def run_until_idle(self) -> None:
        """Run ready callbacks, FIFO, until none is left."""
        previous = asyncio.events._get_running_loop()
        deadline = self._block_deadline
        try:
            asyncio.events._set_running_loop(self)
            self._running = True
            if self._watched is None:
                self._watched = watchdog.watch(self)
            ready = self._ready
            while ready:
                handle = ready.popleft()
                if handle._cancelled:
                    continue
                started = self.callback_since = time.monotonic()
                try:
                    handle._run()
                finally:
                    self.callback_since = None
                if time.monotonic() - started > deadline:
                    raise self._blocked()
        except watchdog.BlockedInterrupt:
            # Mostly the interrupt ends up on the workflow's task (asyncio keeps any
            # BaseException but KeyboardInterrupt/SystemExit there) and the elapsed time
            # above fails the replay; here, it arrived between two of our own lines.
            raise self._blocked() from None
        finally:
            self.callback_since = None
            self._running = False
            asyncio.events._set_running_loop(previous)

    def _blocked(self) -> WorkflowBlockedError:
        deadline = self._block_deadline
        return WorkflowBlockedError(
            f"workflow code held the event loop for more than {deadline:.1f}s in one "
            "callback; workflow code must not block (time.sleep, network or disk "
            "I/O): move that work into a @durable.step")

    @property
    def block_deadline(self) -> float:
        """Seconds one callback of workflow code may run (the watchdog reads it)."""
        return self._block_deadline

    def is_running(self) -> bool:
        return self._running

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._ready.clear()
        self._closed = True

    def _check_closed(self) -> None:
        if self._closed:
            raise RuntimeError("the workflow's event loop is closed")

    def get_debug(self) -> bool:
        return False

    def set_debug(self, enabled: bool) -> None:
        pass

    # -- errors --------------------------------------------------------------
    def get_exception_handler(self) -> Any:
        return self._exception_handler

    def set_exception_handler(self, handler: Any) -> None:
        self._exception_handler = handler

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.unhandled.append(context)
        logger.debug("workflow loop: %s", context.get("message"), exc_info=context.get("exception"))

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        if self._exception_handler is not None:
            self._exception_handler(self, context)
        else:
            self.default_exception_handler(context)

    # -- what workflow code must not do -----------------------------------------
    def _no_io(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "workflow code cannot do I/O, start threads or subprocesses; "
            "do that in a @durable.step and await the step")

    run_in_executor = _no_io
    getaddrinfo = _no_io
    getnameinfo = _no_io
    create_connection = _no_io
    create_server = _no_io
    create_datagram_endpoint = _no_io
    create_unix_connection = _no_io
    create_unix_server = _no_io
    subprocess_exec = _no_io
    subprocess_shell = _no_io
    add_reader = _no_io
    add_writer = _no_io
    sock_recv = _no_io
    sock_sendall = _no_io
    sock_connect = _no_io
    sock_accept = _no_io
    add_signal_handler = _no_io

    def run_forever(self) -> None:
        raise NotImplementedError("the workflow loop is driven by the replayer, not run_forever()")

    def run_until_complete(self, future: Any) -> Any:
        raise NotImplementedError(
            "the workflow loop is driven by the replayer, not run_until_complete()")

    def stop(self) -> None:
        pass

    async def shutdown_asyncgens(self) -> None:
        pass

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        pass

    def __repr__(self) -> str:
        return f"<WorkflowEventLoop time={self._time:.3f} ready={len(self._ready)}>"


watchdog.register_drain(WorkflowEventLoop.run_until_idle.__code__)
