"""Shared fixtures: one Redis for the session (found or started), never flushed
unless we started it; every test run uses its own key prefix and queue names."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from celery_durable.devstack.redis_server import RedisHandle, describe_choice, find_or_start_redis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisHandle]:
    # DURABLE_TEST_PRIVATE_REDIS=1 behaves as a fresh machine would: own redis-server.
    handle = find_or_start_redis(use_existing=os.environ.get("DURABLE_TEST_PRIVATE_REDIS") != "1")
    yield handle
    if handle.owned:
        handle.close()


@pytest.fixture(scope="session")
def session_tag() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def pytest_report_header(config: pytest.Config) -> str:
    """Which Redis this session uses, said before the tests run."""
    return "celery_durable tests; " + describe_choice(
        use_existing=os.environ.get("DURABLE_TEST_PRIVATE_REDIS") != "1")
