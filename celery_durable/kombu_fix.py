"""Guards around one upstream bug: Celery 5.7's consumer, after losing the broker,
closes the transport before its channel, and kombu's Redis transport then works on
unacknowledged messages through the closed transport (``AttributeError: 'NoneType'
object has no attribute 'hostname'`` / ``'client'`` in ``Channel._connparams``), which
ends the worker with "Unrecoverable error". Two paths do it: restoring the unacked
messages as the channel closes, and the late ack of a task that finishes after the
broker came back but before the consumer reconnected.

The guards make those calls skip Redis when the transport is already closed: the
messages stay in kombu's ``unacked`` hash (kombu restores them after its visibility
timeout; a step delivered again is skipped, its outcome being recorded), and the steps
among the unacked ones are sent again by the sweeper within a lease (the worker's marks
change identity when its consumer reconnects). Installed once, in worker processes, by
the sweeper's bootstep; they change nothing while the transport is open.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("celery_durable.sweeper")


def guard_restore_unacked() -> bool:
    """Install the guard (once); False if kombu's Redis transport is not there."""
    try:
        from kombu.transport import redis as kombu_redis
    except ImportError:  # pragma: no cover - kombu without its Redis transport
        return False
    qos: Any = getattr(kombu_redis, "QoS", None)
    original = getattr(qos, "restore_unacked", None)
    if original is None or getattr(original, "celery_durable_guard", False):
        return original is not None

    def restore_unacked(self: Any, client: Any = None) -> Any:
        transport = getattr(self.channel, "connection", None)
        if client is None and getattr(transport, "client", None) is None:
            count = len(self._delivered)
            self._delivered.clear()
            logger.warning(
                "durable: kombu cannot restore %d unacknowledged message(s) through an "
                "already closed connection (a Celery 5.7 / kombu 5.7 bug after a lost "
                "broker); they wait in its unacked hash for the visibility timeout, and "
                "the steps among them are sent again within a lease", count)
            return None
        return original(self, client)

    restore_unacked.celery_durable_guard = True  # type: ignore[attr-defined]
    qos.restore_unacked = restore_unacked
    for name in ("ack", "reject"):
        setattr(qos, name, _guarded_ack(getattr(qos, name)))
    return True


def _guarded_ack(original: Any) -> Any:
    """``QoS.ack``/``reject`` that keep only the in-memory bookkeeping when the
    transport is closed (the message stays unacked in Redis, for the visibility timeout)."""
    from kombu.transport import virtual

    def call(self: Any, delivery_tag: Any, *args: Any, **kwargs: Any) -> Any:
        transport = getattr(self.channel, "connection", None)
        if getattr(transport, "client", None) is None:
            logger.warning("durable: kombu cannot settle message %s through an already "
                           "closed connection (a Celery 5.7 / kombu 5.7 bug after a lost "
                           "broker); it stays unacked until the visibility timeout",
                           delivery_tag)
            return virtual.QoS.ack(self, delivery_tag)
        return original(self, delivery_tag, *args, **kwargs)

    call.celery_durable_guard = True  # type: ignore[attr-defined]
    return call
