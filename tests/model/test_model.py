"""The model check, normal size: random programs on two real workers and the session's
Redis give the reference interpreter's outcome, under no fault, a worker SIGKILLed
mid-run, or duplicated messages; every step is recorded at most once.

Derandomized: the same examples every run (``MODEL_EXAMPLES`` changes how many).
"""

from __future__ import annotations

import os

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the model check needs hypothesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from tests.model.harness import run_here  # noqa: E402
from tests.model.strategies import FAULTS, examples  # noqa: E402

pytestmark = pytest.mark.e2e

#: Shrinking re-runs examples on real workers (seconds each): opt in with MODEL_SHRINK=1.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + (
    [Phase.shrink] if os.environ.get("MODEL_SHRINK") == "1" else [])
HEALTH = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
          HealthCheck.filter_too_much, HealthCheck.data_too_large]


def _step(i: int, fails: int = 0, retries: int = 0, error: str = "ModelError") -> dict:
    return {"k": "step", "id": i, "fails": fails, "retries": retries, "error": error}


#: Always run first: a failing step beating a long sleep in a race, a timeout cutting a
#: sequence and escaping the workflow (with a kill), a fail-fast gather beside a late hook
#: (with duplicates), FatalError against retries (with a kill).
EXPLICIT = [
    {"program": {"root": {"k": "race", "c": [
        {"k": "sleep", "s": 1.5}, _step(0, 1, 2, "FatalError")]}, "escape": False},
     "fault": {"kind": "none", "at": 0.5}, "trigger": 1},
    {"program": {"root": {"k": "wait_for", "t": 0.5, "c": [{"k": "seq", "c": [
        _step(0), {"k": "hook", "after": None}, _step(1)]}]}, "escape": True},
     "fault": {"kind": "kill", "at": 0.5, "worker": 0}, "trigger": 2},
    {"program": {"root": {"k": "gather", "c": [
        _step(0), {"k": "hook", "after": 2.0}, _step(1, 99, 1, "ValueError")]},
        "escape": False},
     "fault": {"kind": "duplicate", "at": 0.5, "steps": True, "timers": True, "wake": True},
     "trigger": 3},
    {"program": {"root": {"k": "all_settled", "c": [
        _step(0, 2, 2, "FatalError"), _step(1, 2, 2), {"k": "sleep", "s": 0.5}]},
        "escape": False}, "fault": {"kind": "kill", "at": 0.5, "worker": 1}, "trigger": 4},
]


def with_explicit(test):
    for example_ in reversed(EXPLICIT):
        test = hypothesis.example(example=example_)(test)
    return test


@pytest.mark.timeout(600)
@settings(max_examples=int(os.environ.get("MODEL_EXAMPLES", "28")), deadline=None,
          derandomize=True, database=None, phases=PHASES, print_blob=True,
          suppress_health_check=HEALTH)
@given(example=examples(FAULTS))
@with_explicit
def test_real_engine_agrees_with_the_reference(example, model_workers, client, figures):
    figures.workers = model_workers
    outcome = run_here(example, model_workers, client)
    figures.add(outcome)
    assert not outcome.problems, outcome.report(model_workers)
