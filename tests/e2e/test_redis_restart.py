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
