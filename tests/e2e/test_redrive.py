"""Redrive: a failed run goes on from its intact history under the code deployed now;
recorded steps never run again (each test counts runs in a side channel)."""

from __future__ import annotations

import uuid

import pytest

from celery_durable import NonDeterminismError

from .conftest import wait_for

pytestmark = pytest.mark.e2e


def runs_of(scratch, key: str) -> int:
    path = scratch / f"{key}.runs"
    return len(path.read_text().split()) if path.exists() else 0


def test_a_step_out_of_retries_runs_again_with_fresh_attempts(proj, shared_worker, scratch):
    key = f"redrive-step-{uuid.uuid4().hex[:8]}"
    (scratch / f"{key}.broken").write_text("")
    run = proj.redrivable.start(key, "step")
    with pytest.raises(ConnectionError):
        run.result(timeout=30)
    (scratch / f"{key}.broken").unlink()  # the outage is over
    assert run.redrive() == [2]
    assert run.status == "running"
    assert run.result(timeout=30) == f"counted:{key}+fixed"
    assert runs_of(scratch, key) == 1
    events = run.events()
    assert [e["type"] for e in events].count("run_redriven") == 1
    assert [e["attempt"] for e in events if e["type"] == "step_started" and e["seq"] == 2] \
        == [1, 1]  # fresh attempts


def test_a_workflow_error_is_re_evaluated_by_replaying_the_fixed_code(
        proj, shared_worker, scratch):
    key = f"redrive-code-{uuid.uuid4().hex[:8]}"
    (scratch / f"{key}.bug").write_text("")
    run = proj.redrivable.start(key, "code")
    with pytest.raises(ValueError, match="a bug in workflow code"):
        run.result(timeout=30)
    (scratch / f"{key}.bug").unlink()  # the fix is deployed
    assert run.redrive() == []
    assert run.result(timeout=30) == f"counted:{key}+no bug"
    assert runs_of(scratch, key) == 1


def test_a_non_determinism_failure_goes_on_after_a_code_fix(proj, start_worker, scratch):
    start_worker(extra_env={"DURABLE_TEST_CACHE": "0"})  # every wake-up replays in full
    key = f"redrive-nd-{uuid.uuid4().hex[:8]}"
    run = proj.redrivable.start(key, "nondeterminism")
    wait_for((scratch / f"{key}.started").exists, what="the second step to start")
    (scratch / f"{key}.variant").write_text("b")  # a bad deploy changes the code
    (scratch / key).write_text("done")
    with pytest.raises(NonDeterminismError):
        run.result(timeout=30)
    (scratch / f"{key}.variant").write_text("a")  # the fix
    assert run.redrive() == []
    assert run.result(timeout=30) == f"counted:{key}+done"
    assert runs_of(scratch, key) == 1
    assert len((scratch / f"{key}.started").read_text().split()) == 1


def test_only_a_failed_run_can_be_redriven(proj, shared_worker):
    run = proj.data_pipeline.start({"name": "ada"})
    run.result(timeout=30)
    with pytest.raises(ValueError, match="is completed, not failed"):
        run.redrive()
