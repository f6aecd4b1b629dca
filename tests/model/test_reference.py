"""The reference interpreter and the repair on their own (no workers, no Redis)."""

from __future__ import annotations

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the model check needs hypothesis")

from hypothesis import given, settings  # noqa: E402

from tests.model.language import (  # noqa: E402
    INF,
    LONG,
    NORMAL,
    Undetermined,
    bounds_for,
    estimate_events,
    reference,
    repair,
)
from tests.model.strategies import MAX_MIN_SECONDS, examples, raw_programs  # noqa: E402


def step(i: int, fails: int = 0, retries: int = 0, error: str = "ModelError") -> dict:
    return {"k": "step", "id": i, "fails": fails, "retries": retries, "error": error}


def prog(root: dict, escape: bool = False) -> dict:
    return {"root": root, "escape": escape}


def test_seq_stops_at_the_first_error_and_later_steps_are_never_called():
    res = reference(prog({"k": "seq", "c": [step(0), step(1, fails=1), step(2)]}))
    assert (res.ok, res.error) == (False, ("ModelError", "e1"))
    assert res.required == {"s:0", "s:1"} and res.possible == {"s:0", "s:1"}


def test_retries_until_the_budget_is_spent_and_fatal_error_is_never_retried():
    assert reference(prog(step(0, fails=2, retries=2))).value == "v0"
    assert reference(prog(step(0, fails=3, retries=2))).error == ("ModelError", "e0")
    assert reference(prog(step(0, fails=1, retries=2, error="FatalError"))).error == (
        "FatalError", "e0")


def test_gather_fails_fast_with_the_first_error_settled_settled_kinds_never_raise():
    children = [step(0), {"k": "seq", "c": [{"k": "sleep", "s": 2.0}, step(1, fails=9)]},
                step(2, fails=1, error="ValueError")]
    res = reference(prog({"k": "gather", "c": children}))
    assert res.error == ("ValueError", "e2") and res.required == {"s:2"}
    assert res.possible == {"s:0", "s:1", "s:2"}
    settled = reference(prog({"k": "gather_settled", "c": children})).value
    assert settled == ["v0", ["!err", "ModelError", "e1"], ["!err", "ValueError", "e2"]]
    assert reference(prog({"k": "all_settled", "c": children})).value == [
        [True, "v0"], [False, ["ModelError", "e1"]], [False, ["ValueError", "e2"]]]


def test_two_failing_steps_in_a_gather_are_undetermined_and_repaired():
    program = prog({"k": "gather", "c": [step(0, fails=9), step(1, fails=9)]})
    with pytest.raises(Undetermined):
        reference(program)
    fixed = repair(program)
    assert [c["id"] for c in fixed["root"]["c"]] == [0]


def test_race_a_step_wins_against_a_long_sleep_only_without_faults():
    program = prog({"k": "race", "c": [{"k": "sleep", "s": 2.0}, step(0)]})
    assert reference(program).value == "v0"
    with pytest.raises(Undetermined):
        reference(program, bounds_for("kill"))
    assert repair(program, bounds_for("kill"))["root"]["c"] == [step(0)]  # the sleep may win


def test_race_against_a_hook_never_resumed_and_a_timeout_on_it():
    never = {"k": "hook", "after": None}
    assert reference(prog({"k": "race", "c": [never, step(0, fails=1)]})).error == (
        "ModelError", "e0")
    res = reference(prog({"k": "wait_for", "t": 0.5, "c": [never]}))
    assert (res.error, res.lo) == (("TimeoutError", ""), 0.5)
    assert reference(prog({"k": "seq", "c": [{"k": "hook", "after": 0.0}]})).value == [
        {"hook": "r.0"}]


def test_undetermined_timeout_becomes_long_and_unbounded_programs_resume_their_hooks():
    program = prog({"k": "wait_for", "t": 0.5, "c": [step(0)]})
    assert repair(program)["root"]["t"] == LONG
    unbounded = prog({"k": "seq", "c": [{"k": "hook", "after": None}]})
    assert reference(unbounded).hi == INF
    assert repair(unbounded)["root"]["c"][0]["after"] == 0.0


@settings(max_examples=300, deadline=None)
@given(raw_programs(), hypothesis.strategies.sampled_from(
    ["none", "kill", "duplicate", "redis_restart"]))
def test_repair_always_gives_a_determined_bounded_program(program, kind):
    bounds = bounds_for(kind)
    fixed = repair(program, bounds)
    res = reference(fixed, bounds)  # raises Undetermined otherwise
    assert res.hi < INF and res.required <= res.possible
    # Determined under slow bounds is determined, the same way, under faster ones.
    fast = reference(fixed, NORMAL)
    assert (fast.ok, fast.value, fast.error, fast.required) == (
        res.ok, res.value, res.error, res.required)


@settings(max_examples=100, deadline=None)
@given(examples())
def test_examples_place_their_fault_before_the_end_of_the_history(example):
    program = example["program"]
    res = reference(program, bounds_for(example["fault"]["kind"]))
    assert 1 <= example["trigger"] <= estimate_events(program, res)
    assert res.lo <= MAX_MIN_SECONDS
