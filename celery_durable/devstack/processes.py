"""Processes of a local stack: free ports, waiting on conditions, ``celery worker``s.

Used by the test suite, ``make demo``, ``make bench`` and ``celery durable dev``:
each starts real ``celery worker`` subprocesses in their own process group (so a
SIGKILL takes the pool children too) and waits on a condition with a deadline,
never on a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

STOP_DEADLINE_S = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], object], deadline_s: float,
               interval_s: float = 0.05) -> bool:
    """Poll ``predicate()`` until true or ``deadline_s`` passes; return whether it came true."""
    end = time.monotonic() + deadline_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(interval_s)


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05,
             what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy (returned); ``AssertionError``
    naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class WorkerProcess:
    """One ``celery -A <app> worker`` subprocess, logging to a file.

    >>> worker = WorkerProcess("proj.app", Path("worker.log"), queues=["celery", "io"])
    ... # doctest: +SKIP
    >>> worker.wait_ready(); ...; worker.stop()                       # doctest: +SKIP
    """

    def __init__(self, app: str, log: Path, *, queues: Sequence[str] = (),
                 concurrency: int = 2, pool: str = "prefork", env: dict[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None, loglevel: str = "INFO",
                 hostname: str | None = None, extra_args: Sequence[str] = ()) -> None:
        self.app = app
        self.log = Path(log)
        cmd = [sys.executable, "-m", "celery", "-A", app, "worker",
               f"--loglevel={loglevel}", f"--concurrency={concurrency}", f"--pool={pool}",
               "--without-gossip", "--without-mingle", "--without-heartbeat",
               "-n", hostname or f"w{time.monotonic_ns()}@%h", *extra_args]
        if queues:
            cmd += ["-Q", ",".join(queues)]
        self._spawn(cmd, env, cwd)

    @classmethod
    def from_command(cls, command: Sequence[str], log: Path, *, app: str = "",
                     env: dict[str, str] | None = None,
                     cwd: str | os.PathLike[str] | None = None) -> WorkerProcess:
        """A worker started with a command line of the caller's (a README's, say)."""
        worker = cls.__new__(cls)
        worker.app = app or next((command[i + 1] for i, arg in enumerate(command[:-1])
                                  if arg in ("-A", "--app")), "?")
        worker.log = Path(log)
        worker._spawn(list(command), env, cwd)
        return worker

    def _spawn(self, command: list[str], env: dict[str, str] | None,
               cwd: str | os.PathLike[str] | None) -> None:
        self.command = command
        self._log_file = self.log.open("ab")
        self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=self._log_file,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def __repr__(self) -> str:
        state = "running" if self.alive() else f"exited {self.process.returncode}"
        return f"<WorkerProcess -A {self.app} pid={self.process.pid} {state}>"

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout: float = 30.0,
                   probe: Callable[[], bool] | None = None) -> float:
        """Wait until the worker logs ``ready.`` (or ``probe()``, a round trip through
        it, succeeds); returns the seconds it took."""
        started = time.monotonic()

        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"the worker exited early (code {self.process.returncode}):"
                                   f"\n{self.tail()}")
            return probe() if probe is not None else b"ready." in self.log.read_bytes()

        if not wait_until(ready, timeout):
            raise RuntimeError(f"the worker was not ready within {timeout:.0f}s:\n{self.tail()}")
        return time.monotonic() - started

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def problems(self, n: int = 30) -> list[str]:
        """The last log lines that look like trouble."""
        lines = self.log.read_text(errors="replace").splitlines()
        words = ("ERROR", "CRITICAL", "Traceback", "WARNING", "Error")
        return [line for line in lines if any(w in line for w in words)][-n:]

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children)."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM to the group); SIGKILL after a deadline."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log_file.close()
