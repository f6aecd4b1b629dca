"""Bugs the model check found, each pinned by a deterministic test."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from celery_durable.devstack import WorkerProcess, start_private_redis, wait_for
from tests.model.harness import ROOT

pytestmark = pytest.mark.e2e


def client(env: dict[str, str], code: str, timeout: float = 60) -> str:
    """Client code in a process of its own (it talks to the private Redis)."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.mark.timeout(180)
def test_a_worker_survives_a_task_finishing_across_a_redis_restart(e2e_env, tmp_path: Path):
    """It used to exit ('Unrecoverable error: AttributeError: NoneType object has no
    attribute client', kombu's Redis QoS.ack through the closed transport) when a task it
    received before a Redis restart finished before its consumer had reconnected."""
    server = start_private_redis(("--appendonly", "yes", "--appendfsync", "always"))
    scratch = Path(e2e_env["DURABLE_TEST_SCRATCH"])
    worker = None
    try:
        env = dict(e2e_env, DURABLE_TEST_REDIS_URL=server.url, DURABLE_TEST_LEASE="2")
        queue = env["DURABLE_TEST_QUEUE"]
        worker = WorkerProcess("tests.e2e.proj", tmp_path / "worker.log",
                               queues=[queue, f"{queue}-other"], env=env, cwd=ROOT)
        worker.wait_ready()
        name = f"model-restart-{uuid.uuid4().hex}"
        run_id = client(env, f"from tests.e2e import proj; print(proj.kill_me.start({name!r}).id)")
        wait_for((scratch / f"{name}.started").exists, what="the step to start")
        server.restart()
        # The step ends now: after Redis is back, before the consumer reconnects (it
        # retries after 2 s), so its late ack runs on the old channel.
        (scratch / name).write_text("done")
        assert client(env, "from tests.e2e import proj; "
                           f"print(proj.durable.get_run({run_id!r}).result(timeout=30))"
                      ) == "3:done"
        wait_for(lambda: "Connected to" in worker.log.read_text().split("Connection to broker "
                                                                        "lost")[-1],
                 what="the consumer to reconnect")
        # The same worker goes on: a new run completes on it.
        assert client(env, "from tests.e2e import proj; "
                           "print(proj.one_arg.start(1).result(timeout=20))") == "2", \
            worker.tail()
        assert worker.alive(), worker.tail()
    finally:
        if worker is not None:
            worker.stop()
        server.close()
