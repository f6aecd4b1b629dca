"""Child runs on real workers: started once whatever replays or duplicates happen, their
results and errors reach the parent, cancelling the parent cancels them, detached runs
outlive it, and a SIGKILL in between loses nothing."""

from __future__ import annotations

import uuid

import pytest

from celery_durable.engine.history import child_run_id

from .conftest import wait_for
from .test_faults import SHORT_LEASE

pytestmark = pytest.mark.e2e


def test_a_gather_of_children_gives_each_its_result_and_names_the_parent(proj, shared_worker):
    run = proj.parent_of_children.start(3)
    results = run.result(timeout=30)
    assert [r["value"] for r in results] == [0, 2, 4]
    assert all(r["parent"] == run.id for r in results)
    for seq in (1, 2, 3):
        child = proj.durable.get_run(child_run_id(run.id, seq))
        assert child.status == "completed" and child.workflow_name == proj.child_double.name
    proj.durable.runtime.dispatcher.wake(run.id)  # a duplicate wake-up changes nothing
    kinds = [e["type"] for e in run.events()]
    assert kinds.count("child_scheduled") == 3 and kinds.count("child_completed") == 3


def test_a_childs_exception_reaches_the_parent_as_its_own_type(proj, shared_worker):
    run = proj.parent_catches.start("declined")
    assert run.result(timeout=30) == "caught CardDeclined: declined"


def test_cancelling_the_parent_cancels_its_live_child(proj, shared_worker):
    token = f"child-cancel:{uuid.uuid4().hex[:8]}"
    run = proj.parent_of_waiting_child.start(token)
    wait_for(lambda: proj.durable.runtime.store.token_info(token), what="the child's hook")
    child = proj.durable.get_run(child_run_id(run.id, 1))
    assert child.status == "running"
    assert run.cancel()
    wait_for(lambda: child.status == "cancelled", what="the child to be cancelled")
    wait_for(lambda: run.status == "cancelled", what="the parent to be cancelled")


def test_a_detached_run_is_started_once_and_the_parent_does_not_wait(proj, shared_worker):
    run = proj.parent_detaches.start(21)
    child_id = run.result(timeout=30)
    assert child_id == child_run_id(run.id, 1)
    assert proj.durable.get_run(child_id).result(timeout=30)["value"] == 42
    assert not any(e["type"].startswith("child_completed") for e in run.events())


def test_a_worker_killed_while_a_child_runs_loses_nothing(proj, start_worker, scratch):
    name = f"child-kill-{uuid.uuid4().hex[:8]}"
    first = start_worker(extra_env=SHORT_LEASE)
    run = proj.parent_of_killed_child.start(name)
    wait_for((scratch / f"{name}.started").exists, what="the child's step to start")
    first.kill()
    (scratch / name).write_text("survived")
    start_worker(extra_env=SHORT_LEASE)
    assert run.result(timeout=60) == "3:survived"
    child = proj.durable.get_run(child_run_id(run.id, 1))
    assert child.result(timeout=5) == "3:survived"
    assert [e["type"] for e in run.events()].count("child_completed") == 1
