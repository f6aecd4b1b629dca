"""patched(): new runs take the new branch and record it; histories recorded before the
patch replay on the old branch, with no divergence and no shifted positions."""

from __future__ import annotations

from celery_durable.engine.primitives import deprecate_patch, patched
from celery_durable.engine.replay import Replayer

from .sim import Sim, roundtrip, step

VERSION = {"code": "old"}


async def checkout(order: str) -> str:
    first = await step("reserve", order)
    if VERSION["code"] == "old":
        fee = await step("charge", order)
    elif VERSION["code"] == "patched":
        if patched("fee-v2"):
            fee = await step("charge_v2", order)
        else:
            fee = await step("charge", order)
    else:  # the old branch removed once no running history lacks the patch
        deprecate_patch("fee-v2")
        fee = await step("charge_v2", order)
    receipt = await step("receipt", order)
    return f"{first}/{fee}/{receipt}"


def run_to_end(sim: Sim) -> None:
    while not sim.done:
        name = next(e["name"] for e in sim.pending.values() if e["type"] == "step_scheduled")
        sim.complete(name, name)


def test_a_new_run_takes_the_patched_branch_and_records_it(make_sim):
    VERSION["code"] = "patched"
    sim = make_sim(checkout, args=["o1"])
    run_to_end(sim)
    assert sim.outcome.value == "reserve/charge_v2/receipt"
    markers = [e for e in sim.history if e["type"] == "patch_marked"]
    assert [(m["patch"], m["at_seq"]) for m in markers] == [("fee-v2", 2)]
    assert "seq" not in markers[0]
    assert [e["seq"] for e in sim.commands] == [1, 2, 3]  # the marker took no position
    sim.verify_replay()


def test_an_old_history_replays_on_the_old_branch_without_divergence(make_sim):
    VERSION["code"] = "old"
    sim = make_sim(checkout, args=["o2"])
    sim.complete("reserve", "reserve")  # charge #2 is recorded by the old code
    VERSION["code"] = "patched"         # a deploy: the next replay runs patched code
    run_to_end(sim)
    assert sim.outcome.value == "reserve/charge/receipt"
    assert not any(e["type"] == "patch_marked" for e in sim.history)
    sim.verify_replay()


def test_a_run_that_reaches_the_patch_after_the_deploy_takes_it(make_sim):
    VERSION["code"] = "old"
    sim = make_sim(checkout, args=["o3"])  # waits on reserve: charge not recorded yet
    VERSION["code"] = "patched"
    run_to_end(sim)
    assert sim.outcome.value == "reserve/charge_v2/receipt"
    sim.verify_replay()


def test_deprecate_patch_replays_patched_histories_and_records_in_new_runs(make_sim):
    VERSION["code"] = "patched"
    sim = make_sim(checkout, args=["o4"])
    run_to_end(sim)
    VERSION["code"] = "deprecated"
    replayer = Replayer(checkout, run_id="r")
    replayer.feed(roundtrip(sim.history))  # no divergence
    assert replayer.outcome.value == "reserve/charge_v2/receipt"
    replayer.discard()
    fresh = make_sim(checkout, args=["o5"])
    run_to_end(fresh)
    assert [e["patch"] for e in fresh.history if e["type"] == "patch_marked"] == ["fee-v2"]
