"""The DBOS Transact driver of ``bench/peers.py``; runs in ``bench/.peers/dbos/``.

DBOS runs steps in-process, in the process that runs the workflow: this process is
DBOS's worker, and its CPU is the engine's CPU. Its system database is the PostgreSQL
database ``$BENCH_PG_URL`` (created and dropped by ``bench/peers.py``).

* sequential(n): a ``@DBOS.workflow`` calling ``n`` ``@DBOS.step``\\ s one after another;
* gather(n): a workflow enqueuing ``n`` steps on a DBOS queue (DBOS's fan-out: queues are
  declared after launch, ``DBOS.register_queue``) and waiting for every handle;
* throughput(n): ``n`` ``DBOS.start_workflow`` of a 3-step workflow at once, then
  ``get_result()`` of each.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dbos import DBOS  # noqa: E402

from bench.peer_serve import check, serve  # noqa: E402

QUEUE = "bench_fanout"

DBOS(config={"name": "celery-durable-bench", "system_database_url": os.environ["BENCH_PG_URL"],
             "log_level": "WARNING"})


@DBOS.step()
def noop(i: int) -> int:
    return i


@DBOS.workflow()
def sequential(n: int) -> int:
    total = 0
    for i in range(n):
        total += noop(i)
    return total


@DBOS.workflow()
def fan_out(n: int) -> int:
    queue = DBOS.retrieve_queue(QUEUE)
    assert queue is not None
    handles = [queue.enqueue(noop, i) for i in range(n)]
    return sum(handle.get_result() for handle in handles)


@DBOS.workflow()
def three_steps(i: int) -> int:
    return noop(3 * i) + noop(3 * i + 1) + noop(3 * i + 2)


def run_sequential(n: int) -> None:
    check(sequential(n), sum(range(n)), f"sequential({n})")


def run_gather(n: int) -> None:
    check(fan_out(n), sum(range(n)), f"fan_out({n})")


def run_throughput(n: int) -> None:
    handles = [DBOS.start_workflow(three_steps, i) for i in range(n)]
    for i, handle in enumerate(handles):
        check(handle.get_result(), 9 * i + 3, "three_steps")


_pg = None


def pg_pids(_: int) -> list[int]:
    """The PostgreSQL backends serving this database (DBOS's pool), for their CPU."""
    global _pg
    if _pg is None:
        import psycopg

        _pg = psycopg.connect(os.environ["BENCH_PG_URL"], autocommit=True)
    rows = _pg.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid()").fetchall()
    return [int(row[0]) for row in rows]


def main() -> None:
    t0 = time.perf_counter()
    DBOS.launch()
    DBOS.register_queue(QUEUE)
    print(f"DBOS launched in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    try:
        serve({"sequential": run_sequential, "gather": run_gather,
               "throughput": run_throughput, "pg_pids": pg_pids})
    finally:
        if _pg is not None:
            _pg.close()
        DBOS.destroy()


if __name__ == "__main__":
    main()
