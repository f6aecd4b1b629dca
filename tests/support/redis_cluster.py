"""A private three-node Redis Cluster on loopback, for the store's Cluster tests.

Built with plain ``redis-server`` processes (``--cluster-enabled yes``); slots are
assigned and nodes introduced with CLUSTER ADDSLOTS / MEET, so no ``redis-cli`` is
needed. Only servers this module started are ever stopped.
"""

from __future__ import annotations

import redis

from .redis_server import RedisHandle, start_private_redis, wait_until

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
