"""Live instances: feeding a history in pieces equals feeding it whole; discard; the LRU."""

from __future__ import annotations

import asyncio
import random as stdlib_random

import pytest

from celery_durable.engine.cache import InstanceCache
from celery_durable.engine.primitives import all_settled, now, race, random, sleep, uuid4
from celery_durable.engine.replay import Replayer

from .sim import Sim, command_events, roundtrip, same_outcome, step


async def busy(n):
    token = str(uuid4())
    first = await asyncio.gather(step("a", n), step("b", token))
    winner = await race(step("fast"), sleep("10 minutes"))
    await sleep(5)
    settled = await all_settled(step("c", now().isoformat()), step("d", random()))
    try:
        await asyncio.wait_for(step("e"), 60)
    except asyncio.TimeoutError:
        await step("timed_out")
    return [first, winner, [s.ok for s in settled]]


def busy_history(mode="fresh", last_drive=True):
    """A full run of ``busy``; with ``last_drive=False`` the last outcome is recorded
    but not replayed yet (so a replay of it has new commands to emit)."""
    sim = Sim(busy, args=[3], mode=mode)
    sim.start()
    sim.complete("b", "B", drive=False)
    sim.complete("a", "A")
    sim.advance(20)
    sim.fire()                              # the race's sleep wins
    sim.complete("fast", "late")            # the loser: changes nothing
    sim.fire()                              # sleep(5)
    sim.fail("d", ValueError("d"))
    sim.complete("c", "C")
    sim.fire(drive=last_drive)              # wait_for's timeout
    if last_drive:
        sim.complete("timed_out", None)
    return sim


def feed_in_chunks(history, sizes):
    replayer = Replayer(busy, run_id="run-1")
    events = roundtrip(history)
    start = 0
    for size in sizes:
        replayer.feed(events[start:start + size])
        start += size
    replayer.feed(events[start:])
    return replayer


def full_feed(history):
    replayer = Replayer(busy, run_id="run-1")
    replayer.feed(roundtrip(history))
    return replayer


def assert_same_state(a, b):
    assert command_events(a.take_new_commands()) == command_events(b.take_new_commands())
    assert same_outcome(a.outcome, b.outcome)
    assert a.position == b.position and a.waiting_on == b.waiting_on
    a.discard()
    b.discard()


def test_busy_run_is_identical_in_both_modes():
    fresh, cached = busy_history("fresh"), busy_history("cached")
    assert fresh.history == cached.history
    assert fresh.outcome.value == [["A", "B"], None, [True, False]]
    assert fresh.step_names[-1] == "timed_out"
    fresh.verify_replay()


@pytest.mark.parametrize("last_drive", [True, False], ids=["ended", "tail-unreplayed"])
@pytest.mark.parametrize("chunking", ["singles", "random-0", "random-1", "random-2"])
def test_feeding_in_chunks_equals_one_feed(chunking, last_drive):
    history = busy_history(last_drive=last_drive).history
    if chunking == "singles":
        sizes = [1] * len(history)
    else:
        rng = stdlib_random.Random(chunking)
        sizes = [rng.randint(1, 4) for _ in range(len(history))]
    whole = full_feed(history)
    if not last_drive:
        assert [c.name for c in whole.take_new_commands()] == ["timed_out"]
        whole.discard()
        whole = full_feed(history)
    assert_same_state(feed_in_chunks(history, sizes), whole)


def test_every_prefix_fed_in_two_pieces_equals_one_feed():
    history = busy_history().history
    for end in range(1, len(history) + 1):
        for split in sorted({1, end // 2, end - 1}):
            assert_same_state(feed_in_chunks(history[:end], [split]), full_feed(history[:end]))


async def two_steps():
    await asyncio.gather(step("a"), step("b"))


def waiting_replayer(workflow=two_steps):
    sim = Sim(workflow)
    sim.start()
    replayer = sim.replayer()
    replayer.feed(roundtrip(sim.history))
    assert replayer.take_new_commands() == [] and replayer.outcome is None
    return replayer


def test_discard_cancels_every_task_and_emits_nothing():
    async def workflow():
        background = asyncio.create_task(sleep("1 day"))
        try:
            await asyncio.gather(step("a"), step("b"))
        finally:
            background.cancel()
        return await step("never")

    replayer = waiting_replayer(workflow)
    tasks = asyncio.all_tasks(replayer.loop)
    assert len(tasks) == 4
    replayer.discard()
    assert all(task.done() for task in tasks)
    assert replayer.loop.is_closed()
    assert replayer.take_new_commands() == [] and replayer.outcome is None
    replayer.discard()  # twice is fine


def test_discard_drops_commands_a_cancelled_workflow_emits():
    async def workflow():
        try:
            await step("a")
        except asyncio.CancelledError:
            await step("cleanup")

    replayer = waiting_replayer(workflow)
    replayer.discard()
    assert replayer.take_new_commands() == [] and replayer.outcome is None


def test_discard_leaves_no_pending_task_when_the_workflow_cleans_up():
    async def workflow():
        try:
            await step("a")
        except asyncio.CancelledError:
            await step("cleanup")

    replayer = waiting_replayer(workflow)
    replayer.discard()
    assert [t for t in asyncio.all_tasks(replayer.loop) if not t.done()] == []
    assert -1 not in replayer.waiting_on


def test_discard_before_any_history():
    Replayer(busy, run_id="r").discard()


def test_cache_hits_misses_and_lru_eviction():
    cache = InstanceCache(size=2)
    assert cache.take("r1") is None and cache.misses == 1
    r1, r2, r3 = (waiting_replayer() for _ in range(3))
    r1.run_id, r2.run_id, r3.run_id = "r1", "r2", "r3"
    cache.put(r1)
    cache.put(r2)
    assert cache.take("r1") is r1 and cache.hits == 1
    cache.put(r1)          # r1 is now the most recently used
    cache.put(r1)          # putting the same instance again keeps it
    assert not r1.loop.is_closed()
    cache.put(r3)          # evicts r2, the least recently used
    assert len(cache) == 2 and r2.loop.is_closed()
    assert cache.take("r2") is None
    cache.clear()
    assert len(cache) == 0 and r1.loop.is_closed() and r3.loop.is_closed()


def test_cache_of_size_zero_keeps_nothing():
    cache = InstanceCache(size=0)
    replayer = waiting_replayer()
    cache.put(replayer)
    assert len(cache) == 0 and replayer.loop.is_closed()


def test_cached_instance_continues_where_it_stopped():
    """The orchestrator's loop: take from the cache, feed the tail, put back."""
    sim = Sim(busy, args=[3])
    sim.start()
    cache = InstanceCache(size=4)
    first = Replayer(busy, run_id=sim.run_id)
    first.feed(roundtrip(sim.history))
    cache.put(first)
    sim.complete("a", "A", drive=False)
    sim.complete("b", "B", drive=False)
    live = cache.take(sim.run_id)
    assert live is first
    live.feed(roundtrip(sim.history[live.position:]))
    assert live.position == len(sim.history)
    new = command_events(live.take_new_commands())
    assert [(e["type"], e["seq"]) for e in new] == [("step_scheduled", 3), ("timer_scheduled", 4)]
    assert command_events(sim.replay_fresh()[0]) == new
    live.discard()
