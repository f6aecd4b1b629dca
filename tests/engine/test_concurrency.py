"""Concurrency: gather, all_settled, race, tasks, wait, as_completed, TaskGroup."""

from __future__ import annotations

import asyncio

import pytest

from celery_durable.engine.primitives import Settled, all_settled, as_completed, race, wait

from .sim import Sim, needs_py311, step


async def gather3():
    results = await asyncio.gather(step("a", 1), step("b", 2), step("c", 3))
    return await step("sum", results)


def test_gather_schedules_all_at_once_and_returns_in_argument_order(make_sim):
    sim = make_sim(gather3)
    assert [(e["seq"], e["name"], e["args"]) for e in sim.steps] == [
        (1, "a", [1]), (2, "b", [2]), (3, "c", [3])]
    sim.complete("c", 30)
    sim.complete("a", 10)
    assert sim.pending_steps == ["b"]
    sim.complete("b", 20)
    assert sim.steps[-1]["name"] == "sum" and sim.steps[-1]["args"] == [[10, 20, 30]]
    sim.complete("sum", 60)
    assert sim.outcome.value == 60
    sim.verify_replay()


@pytest.mark.parametrize("first", ["b", "c"])
def test_gather_fails_fast_with_the_first_delivered_error(make_sim, first):
    sim = make_sim(gather3)
    second = "c" if first == "b" else "b"
    sim.fail(first, ValueError(f"{first} broke"))
    assert sim.outcome.status == "failed"
    assert str(sim.outcome.error) == f"{first} broke"
    assert second in sim.pending_steps  # not waited for
    sim.verify_replay()


def test_gather_return_exceptions_collects_values_and_errors(make_sim):
    async def workflow():
        results = await asyncio.gather(step("a"), step("b"), return_exceptions=True)
        return [r if not isinstance(r, BaseException) else f"error: {r}" for r in results]

    sim = make_sim(workflow)
    sim.fail("a", LookupError("k"))
    assert not sim.done
    sim.complete("b", "B")
    assert sim.outcome.value == ["error: k", "B"]
    sim.verify_replay()


def test_all_settled_gives_settled_outcomes_in_argument_order(make_sim):
    results = []

    async def workflow():
        settled = await all_settled(step("a"), step("b"), step("c"))
        results.append(settled)
        return [s.ok for s in settled]

    sim = make_sim(workflow)
    sim.complete("c", 3)
    sim.fail("a", ValueError("nope"))
    sim.complete("b", 2)
    assert sim.outcome.value == [False, True, True]
    settled = results[-1]
    assert all(isinstance(s, Settled) for s in settled)
    assert isinstance(settled[0].error, ValueError) and settled[0].value is None
    assert settled[1] == Settled(True, value=2) and settled[2] == Settled(True, value=3)


async def race3():
    winner = await race(step("a"), step("b"), step("c"))
    return await step("after", winner)


def test_race_first_delivered_wins_and_losers_change_nothing(make_sim):
    sim = make_sim(race3)
    assert sim.step_names == ["a", "b", "c"]
    sim.complete("b", "B")
    assert sim.steps[-1]["name"] == "after" and sim.steps[-1]["args"] == ["B"]
    # The losers keep running; their results are recorded and change nothing.
    assert sim.complete("a", "A") == [] and sim.complete("c", "C") == []
    assert sim.pending_steps == ["after"]
    sim.complete("after", "done")
    assert sim.outcome.value == "done"
    sim.verify_replay()


def test_race_winner_error_is_raised(make_sim):
    async def workflow():
        try:
            return await race(step("a"), step("b"))
        except ValueError as exc:
            return await step("handle", str(exc))

    sim = make_sim(workflow)
    sim.fail("b", ValueError("b lost it"))
    assert sim.steps[-1]["name"] == "handle" and sim.steps[-1]["args"] == ["b lost it"]
    sim.complete("a", "A")  # the loser's success arrives too late
    sim.complete("handle", "handled")
    assert sim.outcome.value == "handled"
    sim.verify_replay()


def test_race_with_coalesced_outcomes_takes_the_first_in_history(make_sim):
    sim = make_sim(race3)
    sim.complete("c", "C", drive=False)
    sim.complete("a", "A", drive=False)
    sim.drive()
    assert sim.steps[-1]["args"] == ["C"]
    sim.verify_replay()


@pytest.mark.parametrize("spawn", [asyncio.create_task, asyncio.ensure_future])
def test_task_started_now_and_awaited_later(make_sim, spawn):
    async def workflow():
        background = spawn(step("slow"))
        quick = await step("quick")
        return [quick, await background]

    sim = make_sim(workflow)
    # Both are scheduled in the first replay: the task runs without being awaited.
    assert sorted(sim.step_names) == ["quick", "slow"]
    sim.complete("slow", "S")
    assert not sim.done
    sim.complete("quick", "Q")
    assert sim.outcome.value == ["Q", "S"]
    sim.verify_replay()


def test_add_done_callback_runs_on_completion(make_sim):
    async def workflow():
        seen = []
        task = asyncio.create_task(step("a"))
        task.add_done_callback(lambda t: seen.append(t.result()))
        await step("b")
        return seen

    sim = make_sim(workflow)
    sim.complete("a", "A")
    sim.complete("b", "B")
    assert sim.outcome.value == ["A"]
    sim.verify_replay()


def test_asyncio_wait_first_completed(make_sim):
    async def workflow():
        tasks = [asyncio.create_task(step(name)) for name in "abc"]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return sorted(t.result() for t in done), len(pending)

    sim = make_sim(workflow)
    sim.complete("b", "B")
    assert sim.outcome.value == (["B"], 2)
    sim.verify_replay()


def test_wait_lists_done_in_completion_order(make_sim):
    async def workflow():
        tasks = [asyncio.create_task(step(name)) for name in "abcd"]
        first, rest = await wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        done, pending = await wait(tasks)
        return ([t.result() for t in first], [tasks.index(t) for t in rest],
                [t.result() for t in done], pending)

    sim = make_sim(workflow)
    for name in "cadb":
        sim.complete(name, name.upper())
    assert sim.outcome.value == (["C"], [0, 1, 3], ["C", "A", "D", "B"], [])
    sim.verify_replay()


def test_wait_first_exception(make_sim):
    async def workflow():
        tasks = [asyncio.create_task(step(name)) for name in "abc"]
        done, pending = await wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        return [tasks.index(t) for t in done], [tasks.index(t) for t in pending]

    sim = make_sim(workflow)
    sim.complete("c", 1)
    assert not sim.done
    sim.fail("a", ValueError("x"))
    assert sim.outcome.value == ([2, 0], [1])
    sim.verify_replay()


def test_wait_with_durable_timeout_returns_pending_in_argument_order(make_sim):
    async def workflow():
        tasks = [asyncio.create_task(step(name)) for name in "abc"]
        done, pending = await wait(tasks, timeout=60)
        return [tasks.index(t) for t in done], [tasks.index(t) for t in pending]

    sim = make_sim(workflow)
    assert [e["type"] for e in sim.commands].count("timer_scheduled") == 1
    sim.complete("b", 1)
    sim.fire()
    assert sim.outcome.value == ([1], [0, 2])
    sim.verify_replay()


def test_as_completed_yields_results_in_completion_order(make_sim):
    async def workflow():
        results = []
        for next_result in as_completed([step("a"), step("b"), step("c")]):
            results.append(await next_result)
            await step("seen", results[-1])
        return results

    sim = make_sim(workflow)
    assert sim.step_names == ["a", "b", "c"]
    sim.complete("b", "B")
    assert sim.steps[-1]["name"] == "seen" and sim.steps[-1]["args"] == ["B"]
    sim.complete("c", "C")                    # C waits in the queue while seen(B) runs
    sim.complete(sim.steps[-1]["seq"], None)  # seen(B) done: C is taken, seen(C) scheduled
    assert sim.steps[-1]["args"] == ["C"]
    sim.complete(sim.steps[-1]["seq"], None)
    sim.complete("a", "A")
    sim.complete(sim.steps[-1]["seq"], None)
    assert sim.outcome.value == ["B", "C", "A"]
    assert [e["args"] for e in sim.steps if e["name"] == "seen"] == [["B"], ["C"], ["A"]]
    sim.verify_replay()


def test_as_completed_timeout_raises_at_the_next_await(make_sim):
    async def workflow():
        results = []
        try:
            for next_result in as_completed([step("a"), step("b")], timeout=30):
                results.append(await next_result)
        except asyncio.TimeoutError:
            results.append("timeout")
        return results

    sim = make_sim(workflow)
    sim.complete("b", "B")
    sim.fire()
    assert sim.outcome.value == ["B", "timeout"]
    sim.verify_replay()


@needs_py311
def test_task_group_collects_results(make_sim):
    async def workflow():
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(step(name)) for name in "ab"]
        return [t.result() for t in tasks]

    sim = make_sim(workflow)
    sim.complete("b", 2)
    sim.complete("a", 1)
    assert sim.outcome.value == [1, 2]
    sim.verify_replay()


@needs_py311
def test_task_group_error_cancels_siblings_and_fails_the_run(make_sim):
    async def workflow():
        async with asyncio.TaskGroup() as group:
            for name in "abc":
                group.create_task(step(name))

    sim = make_sim(workflow)
    sim.complete("a", 1)
    sim.fail("b", ValueError("b broke"))
    assert sim.outcome.status == "failed"
    error = sim.outcome.error
    assert isinstance(error, BaseExceptionGroup)  # noqa: F821 - builtin on 3.11+
    assert [type(e) for e in error.exceptions] == [ValueError]
    sim.verify_replay()


@needs_py311
def test_task_group_siblings_are_cancelled_and_compensation_runs(make_sim):
    async def workflow():
        tasks = []
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(step(name)) for name in "abc"]
        except BaseExceptionGroup as group_error:  # noqa: F821 - builtin on 3.11+
            states = ["cancelled" if t.cancelled() else "done" for t in tasks]
            return await step("compensate", states, len(group_error.exceptions))

    sim = make_sim(workflow)
    sim.fail("c", ValueError("c broke"))
    assert sim.steps[-1]["name"] == "compensate"
    assert sim.steps[-1]["args"] == [["cancelled", "cancelled", "done"], 1]
    sim.complete("a", "late")  # a cancelled sibling's result arrives: nothing happens
    sim.complete("compensate", "ok")
    assert sim.outcome.value == "ok"
    sim.verify_replay()


def test_asyncio_as_completed_over_tasks(make_sim):
    async def workflow():
        tasks = [asyncio.create_task(step(name)) for name in "abc"]
        return [await next_result for next_result in asyncio.as_completed(tasks)]

    sim = make_sim(workflow)
    assert sim.step_names == ["a", "b", "c"]
    for name in "bca":
        sim.complete(name, name)
    assert sim.outcome.value == ["b", "c", "a"]
    sim.verify_replay()


def test_asyncio_as_completed_over_coroutines_replays_the_same_way():
    async def workflow():
        coroutines = [step(name) for name in "abcde"]
        return [await next_result for next_result in asyncio.as_completed(coroutines)]

    for _ in range(5):
        sim = Sim(workflow, mode="cached")
        sim.start()
        for name in "abcde":
            sim.complete(name, name)
        sim.verify_replay()
