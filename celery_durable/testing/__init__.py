"""The pytest plugin for testing your own workflows (registered as ``pytest11``).

Name the Durable under test in your ``conftest.py``; every test that asks for
``durable_env`` then runs on a private store and broker with an in-process worker,
with durable time that skips ahead::

    @pytest.fixture
    def durable_app():
        from proj.app import durable
        return durable

    def test_reminder_a_day_later(durable_env):
        run = reminder.start("ada")                    # awaits sleep("1 day")
        assert run.result(timeout=10) == "reminded"    # no real day passes
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .env import DurableEnv, Session

__all__ = ["DurableEnv", "durable_app", "durable_env"]


@pytest.fixture
def durable_app() -> Any:
    """Override it: return the ``Durable`` your tests run."""
    raise pytest.UsageError(
        "durable_env needs to know your app: define a durable_app fixture in conftest.py "
        "that returns your Durable (from proj.app import durable; return durable)")


@pytest.fixture(scope="session")
def _durable_sessions() -> Iterator[dict[int, Session]]:
    sessions: dict[int, Session] = {}
    yield sessions
    for session in sessions.values():
        session.close()


@pytest.fixture
def durable_env(durable_app: Any, _durable_sessions: dict[int, Session],
                request: pytest.FixtureRequest) -> Iterator[DurableEnv]:
    """A private store and broker, an in-process worker, time skipping, and ``post``,
    ``wait_for_webhook``, ``resume_hook``, ``advance`` for the outside world."""
    session = _durable_sessions.get(id(durable_app))
    if session is None:
        session = _durable_sessions[id(durable_app)] = Session(durable_app)
    env = DurableEnv(session, request.node.name)
    yield env
    env.close()
