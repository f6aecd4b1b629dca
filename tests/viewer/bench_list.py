"""Benchmark: the viewer's runs page (first page, HTML, through Flask's test client) at
10, 1,000 and 100,000 runs. Not a test (pytest does not collect it).

Fills store prefixes of its own the way ``bench/listing.py`` does (``populate``: two
workflows, a fifth of the runs completed), renders ``/runs/`` and a few filters
``--repeat`` times each and prints the medians; deletes only its keys.

    .venv/bin/python tests/viewer/bench_list.py [--runs 100000] [--repeat 21]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from celery import Celery  # noqa: E402
from flask import Flask  # noqa: E402

from bench.listing import WORKFLOWS, populate  # noqa: E402
from celery_durable import Durable  # noqa: E402
from celery_durable.devstack import delete_matching, find_or_start_redis  # noqa: E402
from celery_durable.store.connect import connect  # noqa: E402
from celery_durable.store.redis import RedisStore  # noqa: E402

PAGES = ["/runs/", "/runs/?status=completed", f"/runs/?workflow={WORKFLOWS[0]}",
         "/runs/api/runs"]


def viewer_client(redis_url: str, prefix: str):  # noqa: ANN201 - a Flask test client
    app = Celery(f"bench-viewer-{prefix}", broker=redis_url)
    app.conf.update(durable_key_prefix=prefix, durable_redis_url=redis_url)
    flask_app = Flask(f"bench-viewer-{prefix}")
    flask_app.register_blueprint(Durable(app).viewer_blueprint(), url_prefix="/runs")
    return flask_app.test_client()


def median_ms(client, url: str, repeat: int) -> tuple[float, int]:  # noqa: ANN001
    client.get(url)  # the first request builds the runtime and compiles the templates
    times, rows = [], 0
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        body = response.get_data(as_text=True)
        rows = body.count("<tr data-run-id=") or body.count('"run_id"')
    return statistics.median(times), rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args(argv)
    handle = find_or_start_redis()
    tag = f"bench-viewer-{uuid.uuid4().hex[:8]}"
    sizes = (10, 1000, args.runs)
    print(f"redis {handle.url} ({'private' if handle.owned else 'shared'}), prefix {tag}")
    try:
        for size in sizes:
            store = RedisStore(connect(handle.url), prefix=f"{tag}-{size}", lease=30,
                               retention=3600, timer_horizon=300, queue_timeout=3600,
                               timer_grace=2)
            print(f"writing {size} runs: {populate(store, size):.1f}s", flush=True)
        clients = {size: viewer_client(handle.url, f"{tag}-{size}") for size in sizes}
        print(f"\n{'median render of':<40}" + "".join(f"{f'{s} runs':>16}" for s in sizes))
        for url in PAGES:
            cells = [median_ms(clients[size], url, args.repeat) for size in sizes]
            print(f"{url:<40}" + "".join(f"{f'{ms:.2f}ms/{rows}':>16}" for ms, rows in cells))
        print("(ms / rows on the page; the default page holds 50 rows)")
    finally:
        deleted = delete_matching(redis.Redis.from_url(handle.url), f"{tag}*")
        print(f"\ndeleted {deleted} keys under {tag}")
        if handle.owned:
            handle.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
