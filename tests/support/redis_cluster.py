"""A private Redis Cluster, or a master with a Sentinel, on loopback, for the store's
scale-out tests.

Built with plain ``redis-server`` processes (``--cluster-enabled yes``); slots are
assigned and nodes introduced with CLUSTER ADDSLOTS / MEET, so no ``redis-cli`` is
needed. Only servers this module started are ever stopped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import redis

from celery_durable.devstack.redis_server import (
    RedisHandle,
    free_port,
    ping,
    start_private_redis,
    wait_until,
)

SLOTS = 16384


def start_private_cluster(nodes: int = 3, deadline: float = 30.0) -> list[RedisHandle]:
    handles: list[RedisHandle] = []
    try:
        for _ in range(nodes):
            handles.append(start_private_redis((
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000")))
        clients = [redis.Redis(host="127.0.0.1", port=h.port) for h in handles]
        share = SLOTS // nodes
        for i, client in enumerate(clients):
            first = i * share
            last = SLOTS - 1 if i == nodes - 1 else first + share - 1
            slots = list(range(first, last + 1))
            for j in range(0, len(slots), 1000):
                client.execute_command("CLUSTER", "ADDSLOTS", *slots[j:j + 1000])
        for handle in handles[1:]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", handle.port)

        def ready() -> bool:
            for client in clients:
                info = client.execute_command("CLUSTER", "INFO")
                if isinstance(info, bytes):
                    info = info.decode()
                if "cluster_state:ok" not in str(info):
                    return False
            return True

        if not wait_until(ready, deadline):
            raise RuntimeError(f"the test cluster did not reach cluster_state:ok in {deadline}s")
        return handles
    except Exception:
        for handle in handles:
            handle.close()
        raise


class SentinelProcess:
    """A ``redis-server --sentinel`` this module started (its config file first)."""

    def __init__(self, binary: str, port: int, folder: str, master_name: str,
                 master_port: int) -> None:
        self.port = port
        self.folder = folder
        conf = os.path.join(folder, "sentinel.conf")
        with open(conf, "w") as f:
            f.write(f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                    f"sentinel monitor {master_name} 127.0.0.1 {master_port} 1\n")
        log = open(os.path.join(folder, "sentinel.log"), "ab")  # noqa: SIM115 - kept open
        self.process = subprocess.Popen([binary, conf, "--sentinel"], stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if not wait_until(lambda: ping(f"redis://127.0.0.1:{port}"), 10.0):
            self.close()
            raise RuntimeError(f"the test sentinel did not answer on port {port}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_private_sentinel(master_name: str) -> tuple[RedisHandle, SentinelProcess]:
    """A private master and one Sentinel watching it."""
    master = start_private_redis()
    try:
        assert master.binary is not None
        return master, SentinelProcess(master.binary, free_port(),
                                       tempfile.mkdtemp(prefix="celery-durable-sentinel-"),
                                       master_name, int(master.port or 0))
    except Exception:
        master.close()
        raise
