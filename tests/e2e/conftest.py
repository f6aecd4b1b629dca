"""End-to-end fixtures: real ``celery worker`` subprocesses on a real Redis.

The worker imports :mod:`tests.e2e.proj`; the environment tells it which Redis,
key prefix and queue this test session uses, so nothing else is disturbed and
nothing is flushed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from celery_durable.devstack import WebServer, WorkerProcess, clean_tag, free_port, wait_for

__all__ = ["Worker", "wait_for"]

ROOT = Path(__file__).resolve().parents[2]


class Worker(WorkerProcess):
    """A ``celery worker`` subprocess on :mod:`tests.e2e.proj`."""

    def __init__(self, env: dict[str, str], log: Path, queues: str, concurrency: int,
                 pool: str) -> None:
        super().__init__("tests.e2e.proj", log, queues=queues.split(","),
                         concurrency=concurrency, pool=pool, env=env, cwd=ROOT)


@pytest.fixture(scope="session")
def e2e_env(redis_server: Any, session_tag: str) -> Iterator[dict[str, str]]:
    scratch = Path(tempfile.mkdtemp(prefix="durable-e2e-"))
    env = dict(os.environ)
    env.update({
        "DURABLE_TEST_REDIS_URL": redis_server.url,
        "DURABLE_TEST_QUEUE": f"durable-{session_tag}",
        "DURABLE_TEST_PREFIX": f"durable-{session_tag}",
        "DURABLE_TEST_SCRATCH": str(scratch),
        "DURABLE_TEST_WEBHOOK_BASE": f"http://127.0.0.1:{free_port()}/durable",
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
    # Remove only what this session wrote (never flush a shared Redis): its keys, and
    # the unacked entries its SIGKILLed workers left in kombu's shared hash.
    clean_tag(redis.Redis.from_url(redis_server.url), f"durable-{session_tag}")
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

    base = e2e_env["DURABLE_TEST_WEBHOOK_BASE"]
    port = int(base.split(":")[2].split("/")[0])
    flask_app = Flask("durable-tests")
    flask_app.register_blueprint(proj.durable.webhooks_blueprint(), url_prefix="/durable")
    server = WebServer(flask_app, port=port, quiet=False)
    yield base
    server.stop()
