"""The engine on Celery's other worker pools (prefork is covered everywhere else)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_pipeline_and_fan_out_on_pool(proj, start_worker, pool):
    worker = start_worker(pool=pool, concurrency=1 if pool == "solo" else 4)
    try:
        assert proj.data_pipeline.start({"name": "ada"}).result(timeout=30) == "stored:VALID:ADA"
        assert proj.fan_out.start(50).result(timeout=30) == sum(range(50))
        assert proj.tasks_and_waits.start().result(timeout=30)["taskgroup"] == [16, 18]
    except TimeoutError:
        print(worker.tail())
        raise
