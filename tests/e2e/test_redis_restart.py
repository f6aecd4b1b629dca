"""Redis restarted with AOF persistence: in-flight runs continue (guarantee 3)."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from celery_durable.devstack.redis_server import start_private_redis

from .conftest import ROOT, wait_for

pytestmark = pytest.mark.e2e


def client(env: dict[str, str], code: str, timeout: float = 90) -> str:
    """Run client code (start a run, wait for it) in a process of its own, so that it
    talks to this test's private Redis rather than the session's."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_redis_restart_with_aof_keeps_in_flight_runs(e2e_env, start_worker, scratch):
    server = start_private_redis(("--appendonly", "yes", "--appendfsync", "always"))
    try:
        env = dict(e2e_env, DURABLE_TEST_REDIS_URL=server.url, DURABLE_TEST_LEASE="2")
        worker = start_worker(extra_env=env)
        name = f"aof-{uuid.uuid4().hex}"
        run_id = client(env, f"from tests.e2e import proj; print(proj.kill_me.start({name!r}).id)")
        wait_for((scratch / f"{name}.started").exists, what="the step to start")
        before = server.process.pid
        server.restart()  # stop, start again on the same port and AOF file
        assert server.process.pid != before
        (scratch / name).write_text("persisted")
        try:
            result = client(env, "from tests.e2e import proj; "
                                 f"print(proj.durable.get_run({run_id!r}).result(timeout=60))")
        except AssertionError:
            print(worker.tail())
            raise
        assert result == "3:persisted"
        counts = client(env, "import collections; from tests.e2e import proj; "
                             f"e = proj.durable.get_run({run_id!r}).events(); "
                             "print(sorted(collections.Counter(x['seq'] for x in e "
                             "if x['type'] == 'step_completed').items()))")
        assert counts == "[(1, 1), (2, 1)]"
    finally:
        server.close()


def test_an_outcome_reached_while_redis_is_down_is_recorded_once_it_is_back(
        e2e_env, start_worker, scratch):
    """The step ends while Redis (broker and store) is down: its outcome waits, is
    recorded when Redis answers again, and the step is not counted as lost."""
    server = start_private_redis(("--appendonly", "yes", "--appendfsync", "always"))
    try:
        env = dict(e2e_env, DURABLE_TEST_REDIS_URL=server.url, DURABLE_TEST_LEASE="2")
        worker = start_worker(extra_env=env)
        name = f"down-{uuid.uuid4().hex}"
        run_id = client(env, "from tests.e2e import proj; "
                             f"print(proj.kill_me_once.start({name!r}).id)")
        wait_for((scratch / f"{name}.started").exists, what="the step to start")
        server.stop()
        (scratch / name).write_text("kept")  # the step ends: Redis cannot take its outcome
        wait_for(lambda: "unreachable while recording its outcome" in worker.log.read_text(),
                 what="the outcome to wait for Redis")
        server.restart()
        try:
            result = client(env, "from tests.e2e import proj; "
                                 f"print(proj.durable.get_run({run_id!r}).result(timeout=60))")
        except AssertionError:
            print(worker.tail())
            raise
        assert result == "3:kept"
        attempts = client(env, "from tests.e2e import proj; "
                               f"e = proj.durable.get_run({run_id!r}).events(); "
                               "print([x['attempt'] for x in e "
                               "if x['type'] == 'step_started' and x['seq'] == 2])")
        assert attempts == "[1]"
        assert worker.alive(), worker.tail()
    finally:
        server.close()


def test_prefetched_steps_dropped_by_a_broker_reconnection_are_sent_again(
        e2e_env, start_worker, scratch):
    """Redis (broker and store) is SIGKILLed and restarted with AOF while a worker holds
    prefetched step messages: kombu drops them on reconnecting (they wait in its unacked
    hash for the visibility timeout); the runs still complete."""
    server = start_private_redis(("--appendonly", "yes", "--appendfsync", "always"))
    try:
        env = dict(e2e_env, DURABLE_TEST_REDIS_URL=server.url, DURABLE_TEST_LEASE="2",
                   DURABLE_TEST_PREFETCH="4")
        worker = start_worker(concurrency=1, extra_env=env)
        name = f"reconnect-{uuid.uuid4().hex[:8]}"
        ids = client(env, "from tests.e2e import proj; "
                          f"print(' '.join(proj.kill_me.start('{name}' + str(i)).id "
                          "for i in range(4)))").split()
        wait_for((scratch / f"{name}0.started").exists, what="a step to start")
        server.kill()
        server.restart()
        wait_for(lambda: "the consumer reconnected" in worker.log.read_text(),
                 what="the worker to reconnect")
        for i in range(4):
            (scratch / f"{name}{i}").write_text("x")
        try:
            results = client(env, "from tests.e2e import proj; print([proj.durable.get_run("
                                  f"r).result(timeout=60) for r in {ids!r}])", timeout=120)
        except AssertionError:
            print(worker.tail())
            raise
        assert results == "['3:x', '3:x', '3:x', '3:x']"
        assert worker.alive()
    finally:
        server.close()
