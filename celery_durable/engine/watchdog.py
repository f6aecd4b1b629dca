"""Interrupt workflow code that blocks the replay loop past its deadline.

The loop can only measure a callback after it returns, so code that blocks for long (a
``time.sleep``, a network read without a timeout) would hold a worker process for as
long as it blocks, or for ever. A watchdog thread sees the callback that has run past
its loop's ``block_deadline`` and sends the main thread a signal (``SIGURG``, whose
default action is to do nothing); the handler raises :class:`BlockedInterrupt` inside
the blocked code, but only while the thread is inside that very callback: it checks
the state in the thread itself, so a signal that arrives late, or one meant for
something else, does nothing. The loop then fails the replay with
:class:`~celery_durable.errors.WorkflowBlockedError`.

Only loops on the main thread are watched (Python runs signal handlers there: the
prefork and solo pools, the CLI); elsewhere (the threads pool) blocking code is still
caught, when it returns. Nothing is installed when the signal already has a handler of
its own, or where the platform lacks it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import weakref
from types import FrameType
from typing import Any, Protocol

logger = logging.getLogger("celery_durable.engine")

#: The signal the watchdog sends (None where the platform has none).
WATCHDOG_SIGNAL: signal.Signals | None = getattr(signal, "SIGURG", None)
#: How often the watchdog looks, at most (it looks four times per shortest deadline).
LONGEST_TICK = 0.5


class BlockedInterrupt(BaseException):
    """Raised inside workflow code that blocked past the deadline.

    A ``BaseException``, so that an ``except Exception`` in the workflow does not
    swallow it; the loop turns it into a ``WorkflowBlockedError`` for the run.
    """


class Watched(Protocol):
    """What the watchdog reads and writes of a loop."""

    #: ``time.monotonic()`` when the running callback began (None between callbacks).
    callback_since: float | None

    @property
    def block_deadline(self) -> float:
        """Seconds a callback may run."""
    #: (callback_since, when) of the last signal sent for it: one per deadline passed.
    watchdog_signalled: tuple[float, float] | None


class _Watchdog:
    """One per process: a daemon thread over the loops that drain on the main thread."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loops: weakref.WeakSet[Any] = weakref.WeakSet()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        #: How long the thread sleeps between looks (a quarter of the shortest deadline).
        self.tick = LONGEST_TICK

    def watch(self, loop: Watched) -> None:
        with self.lock:
            self.loops.add(loop)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="durable-replay-watchdog",
                                               daemon=True)
                self.thread.start()
            shorter = loop.block_deadline / 4 < self.tick
        if shorter:
            self.wake.set()  # it sleeps a longer tick: look again now

    def _snapshot(self) -> list[Any]:
        with self.lock:  # the main thread adds loops (and the GC drops them) meanwhile
            return list(self.loops)

    def _run(self) -> None:
        main = threading.main_thread().ident
        while True:
            loops = self._snapshot()
            self.tick = min([LONGEST_TICK] + [loop.block_deadline / 4 for loop in loops
                                              if loop.block_deadline > 0])
            del loops  # no strong references while asleep: the GC may drop them
            self.wake.wait(self.tick)
            self.wake.clear()
            try:
                self._look(main)
            except Exception:  # noqa: BLE001 - the watchdog must outlive any one look
                logger.exception("replay watchdog: a look at the running loops failed")

    def _look(self, main: int | None) -> None:
        now = time.monotonic()
        for loop in self._snapshot():
            since = loop.callback_since
            if since is None or now - since <= loop.block_deadline:
                continue
            last = loop.watchdog_signalled
            if last is not None and last[0] == since and now - last[1] < loop.block_deadline:
                continue  # signalled for this callback less than a deadline ago
            loop.watchdog_signalled = (since, now)
            if main is not None and WATCHDOG_SIGNAL is not None:
                signal.pthread_kill(main, WATCHDOG_SIGNAL)


_watchdog: _Watchdog | None = None
_installed = False


def _handler(signum: int, frame: FrameType | None) -> None:
    """Raise in the blocked callback, and only there: walk this thread's own stack for
    a loop whose running callback is past its deadline."""
    now = time.monotonic()
    while frame is not None:
        if frame.f_code is _RUN_CODE:
            loop = frame.f_locals.get("self")
            since = getattr(loop, "callback_since", None)
            if since is not None and now - since > loop.block_deadline:  # type: ignore[union-attr]
                raise BlockedInterrupt()
            return
        frame = frame.f_back


#: The code object of the loop's drain (set by :func:`register_drain`).
_RUN_CODE: Any = None


def register_drain(code: Any) -> None:
    """Tell the handler which function's frames are the loop's drain."""
    global _RUN_CODE
    _RUN_CODE = code


def _green() -> bool:
    """True under gevent or eventlet monkey-patching: "threads" are greenlets there, and
    a blocked greenlet is not what the main thread runs."""
    import sys

    for name, check in (("gevent.monkey", "is_module_patched"),
                        ("eventlet.patcher", "is_monkey_patched")):
        module = sys.modules.get(name)
        if module is not None and getattr(module, check)("thread"):
            return True
    return False


def watch(loop: Watched) -> bool:
    """Watch ``loop`` (call it once, on its first drain): True when it drains on the
    main thread and the signal is ours; False, and nothing done, otherwise."""
    global _watchdog, _installed
    if WATCHDOG_SIGNAL is None or threading.current_thread() is not threading.main_thread() \
            or _green():
        return False
    current = signal.getsignal(WATCHDOG_SIGNAL)
    if current is not _handler:
        # None: a handler installed from C. Someone else's, or one that replaced ours:
        # leave it alone.
        if current is not signal.SIG_DFL or _installed:
            return False
        signal.signal(WATCHDOG_SIGNAL, _handler)
        _installed = True
    if _watchdog is None or _watchdog.pid != os.getpid():
        _watchdog = _Watchdog()  # a forked child has none of its parent's threads
    _watchdog.watch(loop)
    return True
