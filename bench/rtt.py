"""Counting Redis round trips inside the worker's processes (for case 4 of ``bench/run.py``).

``INFO commandstats`` counts commands, not round trips: a pipeline of five commands is
five calls there. This hook, installed in a worker by ``bench/proj.py`` when
``$BENCH_RTT_DIR`` is set (and in the driver by ``install()``), patches redis-py:

* ``AbstractConnection.send_packed_command``: every write on any connection, from any
  client (kombu's BRPOP and publishes, Celery's result backend, the store, health-check
  PINGs): **all round trips** of the process.
* ``Redis.execute_command`` and ``Pipeline.execute`` on the **store's client** (its
  connection pool, registered by ``register(pool)``): one command alone is one round
  trip (EVALSHA counted apart), one pipeline execution is one round trip carrying
  ``len(command_stack)`` commands.

Each process writes its counters into its own small file ``<dir>/<pid>.cnt`` (an mmap of
int64s, written by that process only), so the driver sums them while the worker runs.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import Any

FIELDS = ("all_writes", "store_single", "store_evalsha", "store_pipelines",
          "store_pipeline_cmds")
_FMT = f"<{len(FIELDS)}q"
_SIZE = struct.calcsize(_FMT)

_dir: Path | None = None
_pid = -1
_map: mmap.mmap | None = None
_counts = [0] * len(FIELDS)
_store_pools: list[Any] = []


def _bump(index: int, by: int = 1) -> None:
    global _pid, _map
    if _dir is None:
        return
    if os.getpid() != _pid:  # first use, or a forked child: a file of its own
        _pid = os.getpid()
        _counts[:] = [0] * len(FIELDS)
        path = _dir / f"{_pid}.cnt"
        with open(path, "wb") as fh:
            fh.write(b"\0" * _SIZE)
        fd = os.open(path, os.O_RDWR)
        _map = mmap.mmap(fd, _SIZE)
        os.close(fd)
    _counts[index] += by
    assert _map is not None
    struct.pack_into(_FMT, _map, 0, *_counts)


def _is_store(client: Any) -> bool:
    pool = getattr(client, "connection_pool", None)
    return any(pool is p for p in _store_pools)


def register(pool: Any) -> None:
    """Count what goes through this connection pool (the store client's) as store traffic."""
    if not any(pool is p for p in _store_pools):
        _store_pools.append(pool)


def install(directory: str | os.PathLike[str]) -> None:
    """Patch redis-py in this process (and the children it forks later)."""
    global _dir
    if _dir is not None:
        return
    _dir = Path(directory)
    _dir.mkdir(parents=True, exist_ok=True)
    import redis.client
    import redis.connection

    send = redis.connection.AbstractConnection.send_packed_command
    execute_command = redis.client.Redis.execute_command
    pipeline_execute = redis.client.Pipeline.execute

    def counted_send(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        _bump(0)
        return send(self, command, *args, **kwargs)

    def counted_execute_command(self: Any, *args: Any, **options: Any) -> Any:
        if _is_store(self):
            _bump(1)
            if args and str(args[0]).upper() == "EVALSHA":
                _bump(2)
        return execute_command(self, *args, **options)

    def counted_pipeline_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        stack = len(getattr(self, "command_stack", ()) or ())
        if stack and _is_store(self):
            _bump(3)
            _bump(4, stack)
        return pipeline_execute(self, *args, **kwargs)

    redis.connection.AbstractConnection.send_packed_command = counted_send  # type: ignore
    redis.client.Redis.execute_command = counted_execute_command  # type: ignore
    redis.client.Pipeline.execute = counted_pipeline_execute  # type: ignore


def read(directory: str | os.PathLike[str], pids: set[int] | None = None) -> dict[str, int]:
    """The counters summed over the processes (all, or those in ``pids``) of ``directory``."""
    total = dict.fromkeys(FIELDS, 0)
    for path in Path(directory).glob("*.cnt"):
        if pids is not None and int(path.stem) not in pids:
            continue
        try:
            values = struct.unpack(_FMT, path.read_bytes()[:_SIZE])
        except (OSError, struct.error):
            continue
        for name, value in zip(FIELDS, values, strict=True):
            total[name] += value
    return total


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after}
