"""The history store on a real Redis Cluster (every script stays in one slot) and
behind Redis Sentinel."""

from __future__ import annotations

import json

import pytest

from tests.support.redis_cluster import start_private_cluster, start_private_sentinel

from .test_redis_restart import client

pytestmark = pytest.mark.e2e

CHECK = """
import asyncio, uuid
from tests.e2e import proj
print(type(proj.durable.runtime.store.client).__name__)
out = []
out.append(proj.data_pipeline.start({"name": "ada"}).result(timeout=60))
out.append(proj.fan_out.start(30).result(timeout=60))
out.append(proj.sleeper.start(0.5).result(timeout=60)["timed_out"])
out.append(proj.tasks_and_waits.start().result(timeout=60)["taskgroup"])
token = "cluster:" + uuid.uuid4().hex[:6]
run = proj.hook_wait.start(token)
import time
deadline = time.time() + 30
while proj.durable.runtime.store.token_info(token) is None and time.time() < deadline:
    time.sleep(0.05)
proj.durable.resume_hook(token, "hi")
out.append(run.result(timeout=60))
print(out)
"""


def test_runs_complete_with_the_store_on_a_cluster(e2e_env, start_worker):
    try:
        nodes = start_private_cluster()
    except RuntimeError:  # a free port taken meanwhile, a slow start: try once more
        try:
            nodes = start_private_cluster()
        except RuntimeError as exc:  # pragma: no cover - a redis-server without cluster mode
            pytest.skip(f"cannot start a local Redis Cluster here: {exc}")
    try:
        env = dict(e2e_env, DURABLE_TEST_STORE_URL=nodes[0].url, DURABLE_TEST_STORE_CLUSTER="1")
        worker = start_worker(extra_env=env)
        try:
            printed = client(env, CHECK, timeout=120)
        except AssertionError:
            print(worker.tail())
            raise
        assert printed.splitlines() == [
            "RedisCluster", "['stored:VALID:ADA', 435, True, [16, 18], {'payload': 'hi'}]"]
    finally:
        for node in nodes:
            node.close()


def test_runs_complete_with_the_store_behind_sentinel(e2e_env, start_worker):
    master, sentinel = start_private_sentinel("durable-master")
    try:
        env = dict(e2e_env, DURABLE_TEST_STORE_URL=f"sentinel://127.0.0.1:{sentinel.port}",
                   DURABLE_TEST_STORE_OPTIONS=json.dumps({"master_name": "durable-master"}))
        worker = start_worker(extra_env=env)
        try:
            printed = client(env, CHECK, timeout=120)
        except AssertionError:
            print(worker.tail())
            raise
        assert printed.splitlines() == [
            "Redis", "['stored:VALID:ADA', 435, True, [16, 18], {'payload': 'hi'}]"]
        # The data went to the master the sentinel names.
        assert any(key.startswith(b"durable-") for key in master.client().scan_iter(count=1000))
    finally:
        sentinel.close()
        master.close()
