"""The model check, soak size (``make soak``): hundreds of random programs, not
derandomized, with worker kills and duplicated messages on the session's Redis, then
with Redis restarts (AOF) on a private redis-server as well. Prints its figures.

``MODEL_SOAK_EXAMPLES`` (default 200) and ``MODEL_SOAK_RESTART_EXAMPLES`` (default 60)
set the sizes; ``MODEL_SHRINK=1`` shrinks a failing example (slow: it re-runs runs).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the model check needs hypothesis")

from hypothesis import given, settings  # noqa: E402

from celery_durable.devstack import start_private_redis  # noqa: E402
from tests.model.harness import WORKER_ENV, Workers, run_here, run_in_client  # noqa: E402
from tests.model.strategies import FAULTS, SOAK_FAULTS, examples  # noqa: E402
from tests.model.test_model import HEALTH, PHASES  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.soak]

SOAK = settings(deadline=None, derandomize=False, database=None, phases=PHASES,
                print_blob=True, suppress_health_check=HEALTH)


@pytest.mark.timeout(3 * 3600)
@settings(SOAK, max_examples=int(os.environ.get("MODEL_SOAK_EXAMPLES", "200")))
@given(example=examples(FAULTS))
def test_soak_worker_kills_and_duplicates(example, model_workers, client, figures):
    figures.workers = model_workers
    outcome = run_here(example, model_workers, client)
    figures.add(outcome)
    assert not outcome.problems, outcome.report(model_workers)


class PrivateStack:
    """A private redis-server with AOF (fsync always), used as broker and store by two
    workers and by the client processes."""

    def __init__(self, e2e_env: dict[str, str], scratch: Path) -> None:
        self.server = start_private_redis(("--appendonly", "yes", "--appendfsync", "always"))
        self.env = dict(e2e_env, DURABLE_TEST_REDIS_URL=self.server.url, **WORKER_ENV)
        self.env.pop("DURABLE_TEST_STORE_URL", None)
        self.scratch = scratch
        self.workers = Workers(self.env, scratch)

    def __repr__(self) -> str:  # hypothesis prints the test's arguments
        return f"<PrivateStack {self.server.url}>"


@pytest.fixture
def private_stack(e2e_env: dict[str, str], tmp_path: Path) -> Iterator[PrivateStack]:
    stack = PrivateStack(e2e_env, tmp_path)
    try:
        stack.workers.ensure()
        yield stack
    finally:
        stack.workers.stop()
        stack.server.close()


@pytest.mark.timeout(3 * 3600)
@settings(SOAK, max_examples=int(os.environ.get("MODEL_SOAK_RESTART_EXAMPLES", "60")))
@given(example=examples(SOAK_FAULTS))
def test_soak_with_redis_restarts(example, private_stack, figures):
    stack = private_stack
    figures.workers = stack.workers
    outcome = run_in_client(example, stack.workers, stack.server, stack.env, stack.scratch)
    figures.add(outcome)
    assert not outcome.problems, outcome.report(stack.workers)
