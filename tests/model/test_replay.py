"""Replay one example on real workers: ``MODEL_REPLAY='<the "example:" line of a
failure report>'`` (``MODEL_REPLAY_TIMES=n`` runs it n times). Skipped without it."""

from __future__ import annotations

import json
import os

import pytest

from tests.model.harness import run_here

pytestmark = pytest.mark.e2e

EXAMPLE = os.environ.get("MODEL_REPLAY")
TIMES = int(os.environ.get("MODEL_REPLAY_TIMES", "1"))


@pytest.mark.skipif(not EXAMPLE, reason="set MODEL_REPLAY to an example's JSON")
@pytest.mark.timeout(600)
@pytest.mark.parametrize("attempt", range(TIMES))
def test_replay(attempt, model_workers, client):
    example = json.loads(EXAMPLE or "{}")
    outcome = run_here(example, model_workers, client)
    print(outcome.report(model_workers))
    assert not outcome.problems, outcome.report(model_workers)
