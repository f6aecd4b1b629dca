"""Workflow code that blocks is interrupted at the replay deadline (engine/watchdog.py).

These run the replay on pytest's main thread, as a prefork or solo worker does.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest

from celery_durable.engine import watchdog
from celery_durable.errors import WorkflowBlockedError

from .sim import Sim, step

pytestmark = pytest.mark.skipif(watchdog.WATCHDOG_SIGNAL is None,
                                reason="this platform has no SIGURG for the watchdog")


def blocked_within(seconds: float, sim: Sim) -> float:
    started = time.monotonic()
    with pytest.raises(WorkflowBlockedError, match="must not block"):
        sim.start()
    elapsed = time.monotonic() - started
    assert elapsed < seconds, f"the replay was interrupted only after {elapsed:.2f}s"
    return elapsed


def test_a_blocking_sleep_is_interrupted_at_the_deadline():
    async def workflow():
        time.sleep(30)

    assert blocked_within(1.0, Sim(workflow, block_deadline=0.2)) >= 0.2


def test_busy_python_code_is_interrupted_too():
    async def workflow():
        end = time.monotonic() + 30
        while time.monotonic() < end:
            pass

    blocked_within(1.0, Sim(workflow, block_deadline=0.2))


def test_except_exception_in_the_workflow_does_not_swallow_the_interrupt():
    caught = []

    async def workflow():
        try:
            time.sleep(30)
        except Exception as exc:  # noqa: BLE001 - what a careless workflow might write
            caught.append(exc)
            time.sleep(30)

    blocked_within(1.0, Sim(workflow, block_deadline=0.2))
    assert caught == []


def test_code_within_the_deadline_is_left_alone_and_so_is_a_stray_signal():
    async def workflow():
        time.sleep(0.05)  # short: allowed
        first = await step("a")
        return first

    sim = Sim(workflow, block_deadline=0.5)
    sim.start()
    # The same signal outside any blocked callback (late, or sent by someone else) does
    # nothing at all.
    signal.pthread_kill(threading.main_thread().ident, watchdog.WATCHDOG_SIGNAL)
    time.sleep(0.05)
    sim.complete("a", "done")
    assert sim.outcome.status == "completed" and sim.outcome.value == "done"


def test_a_replay_off_the_main_thread_is_still_caught_when_the_code_returns():
    async def workflow():
        time.sleep(0.4)

    errors: list[BaseException] = []

    def replay() -> None:
        try:
            Sim(workflow, block_deadline=0.1).start()
        except BaseException as exc:  # noqa: BLE001 - handed to the assertion below
            errors.append(exc)

    thread = threading.Thread(target=replay)
    thread.start()
    thread.join(10)
    assert len(errors) == 1 and isinstance(errors[0], WorkflowBlockedError)


def test_the_watchdog_outlives_many_loops_coming_and_going():
    async def quick():
        return 1

    async def stuck():
        time.sleep(30)

    for _ in range(3000):  # each registers its loop; most are collected at once
        Sim(quick, block_deadline=0.2).start()
    assert watchdog._watchdog is not None and watchdog._watchdog.thread is not None
    assert watchdog._watchdog.thread.is_alive()
    blocked_within(1.0, Sim(stuck, block_deadline=0.2))
