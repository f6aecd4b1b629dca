"""End-to-end fixtures: real ``celery worker`` subprocesses on a real Redis.

The worker imports :mod:`tests.e2e.proj`; the environment tells it which Redis,
key prefix and queue this test session uses, so nothing else is disturbed and
nothing is flushed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05,
             what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Worker:
    """One ``celery worker`` subprocess."""

    def __init__(self, env: dict[str, str], log: Path, queues: str, concurrency: int,
                 pool: str) -> None:
        self.log = log
        cmd = [sys.executable, "-m", "celery", "-A", "tests.e2e.proj", "worker",
               "--loglevel=INFO", f"--concurrency={concurrency}", f"--pool={pool}",
               "-Q", queues, "--without-gossip", "--without-mingle", "--without-heartbeat",
               "-n", f"w{time.monotonic_ns()}@%h"]
        self._log_file = log.open("ab")
        self.process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log_file,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.tail()}")
            return b"ready." in self.log.read_bytes()
        wait_for(ready, timeout, what="the worker to be ready")

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log_file.close()


@pytest.fixture(scope="session")
def e2e_env(redis_server: Any, session_tag: str) -> Iterator[dict[str, str]]:
    scratch = Path(tempfile.mkdtemp(prefix="durable-e2e-"))
    env = dict(os.environ)
    env.update({
        "DURABLE_TEST_REDIS_URL": redis_server.url,
        "DURABLE_TEST_QUEUE": f"durable-{session_tag}",
        "DURABLE_TEST_PREFIX": f"durable-{session_tag}",
        "DURABLE_TEST_SCRATCH": str(scratch),
        "DURABLE_TEST_WEBHOOK_BASE": f"http://127.0.0.1:{_free_port()}/durable",
        "PYTHONPATH": str(ROOT),
    })
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # tests.e2e.proj reads the same settings in this process
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    client = redis.Redis.from_url(redis_server.url)
    # Remove only what this session wrote (never flush a shared Redis): its keys, and
    # the unacked entries its SIGKILLed workers left in kombu's shared hash.
    queue = env["DURABLE_TEST_QUEUE"]
    for tag, raw in client.hscan_iter("unacked"):
        try:
            routing_key = json.loads(raw)[2]
        except (ValueError, IndexError, TypeError):
            continue
        if str(routing_key).startswith(queue):
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)
    for pattern in (f"durable-{session_tag}*", f"_kombu.binding*.durable-{session_tag}*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i:i + 500])
    shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="session")
def proj(e2e_env: dict[str, str]) -> Any:
    from tests.e2e import proj as module

    return module


class SharedWorker:
    """The one worker most tests share; stopped while a test runs its own workers,
    so that every message of such a test reaches the workers it controls."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.worker: Worker | None = None

    def ensure(self) -> Worker:
        if self.worker is None or self.worker.process.poll() is not None:
            queue = self.env["DURABLE_TEST_QUEUE"]
            self.worker = Worker(self.env, self.log, f"{queue},{queue}-other", 2, "prefork")
            self.worker.wait_ready()
        return self.worker

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None


@pytest.fixture(scope="session")
def _shared(e2e_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[SharedWorker]:
    shared = SharedWorker(e2e_env, tmp_path_factory.mktemp("shared") / "worker.log")
    yield shared
    shared.stop()


@pytest.fixture
def shared_worker(_shared: SharedWorker) -> Worker:
    """A running worker shared with other tests (prefork, concurrency 2)."""
    return _shared.ensure()


@pytest.fixture
def start_worker(e2e_env: dict[str, str], tmp_path: Path, _shared: SharedWorker
                 ) -> Iterator[Callable[..., Worker]]:
    """Start workers of this test's own; the shared worker is stopped meanwhile."""
    _shared.stop()
    workers: list[Worker] = []

    def start(concurrency: int = 2, pool: str = "prefork", extra_env: dict[str, str] | None = None,
              queues: str | None = None) -> Worker:
        env = dict(e2e_env, **(extra_env or {}))
        queue = e2e_env["DURABLE_TEST_QUEUE"]
        worker = Worker(env, tmp_path / f"worker{len(workers)}.log",
                        queues or f"{queue},{queue}-other", concurrency, pool)
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def scratch(e2e_env: dict[str, str]) -> Path:
    return Path(e2e_env["DURABLE_TEST_SCRATCH"])


@pytest.fixture(scope="session")
def web_base(proj: Any, e2e_env: dict[str, str]) -> Iterator[str]:
    """A real HTTP server (werkzeug) on loopback serving the webhooks blueprint."""
    from flask import Flask
    from werkzeug.serving import make_server

    base = e2e_env["DURABLE_TEST_WEBHOOK_BASE"]
    port = int(base.split(":")[2].split("/")[0])
    flask_app = Flask("durable-tests")
    flask_app.register_blueprint(proj.durable.webhooks_blueprint(), url_prefix="/durable")
    server = make_server("127.0.0.1", port, flask_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base
    server.shutdown()
