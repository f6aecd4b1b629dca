"""A local stack on one machine: find or start Redis, start workers and a web app,
and clean up only what was written.

The test suite, ``make demo``, ``make bench`` (and ``celery durable dev``) all use
this, so there is one way to start each piece.
"""

from .cleanup import clean_tag, delete_matching, remove_unacked
from .processes import WorkerProcess, free_port, wait_for, wait_until
from .redis_server import RedisHandle, find_or_start_redis, start_private_redis
from .web import WebServer

__all__ = ["RedisHandle", "find_or_start_redis", "start_private_redis", "WorkerProcess",
           "WebServer", "free_port", "wait_for", "wait_until", "clean_tag", "delete_matching",
           "remove_unacked"]
