"""Remove only what one test session, demo or benchmark wrote to a shared Redis.

Never a flush: the keys under the run's own prefix and queue names, kombu's
bindings for those queues, the ``unacked`` entries its SIGKILLed workers left in
kombu's shared hash, and its workers' remote-control queues.
"""

from __future__ import annotations

import json
from typing import Any


def delete_matching(client: Any, *patterns: str) -> int:
    """Delete the keys matching each pattern (SCAN, in batches); returns how many."""
    deleted = 0
    for pattern in patterns:
        keys = list(client.scan_iter(match=pattern, count=1000))
        for i in range(0, len(keys), 500):
            deleted += int(client.delete(*keys[i:i + 500]))
    return deleted


def remove_unacked(client: Any, queue_prefix: str) -> int:
    """Drop kombu's ``unacked`` entries of messages routed to queues named
    ``queue_prefix*`` (left by killed workers); returns how many."""
    removed = 0
    for tag, raw in client.hscan_iter("unacked"):
        try:
            routing_key = json.loads(raw)[2]
        except (ValueError, IndexError, TypeError):
            continue
        if str(routing_key).startswith(queue_prefix):
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)
            removed += 1
    return removed


def clean_tag(client: Any, tag: str) -> int:
    """Everything written under ``tag`` (used as key prefix and queue name); returns the
    number of keys deleted."""
    remove_unacked(client, tag)
    deleted = delete_matching(client, f"{tag}*", f"_kombu.binding*.{tag}*")
    # The workers' remote-control queues are members of the shared pidbox binding set.
    pidbox = "_kombu.binding.celery.pidbox"
    ours = [m for m in client.smembers(pidbox) if tag.encode() in
            (m if isinstance(m, bytes) else str(m).encode())]
    if ours:
        client.srem(pidbox, *ours)
    return deleted
