"""A redis-py client for ``durable_redis_url``: plain, TLS, socket, Sentinel or Cluster."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import redis


def connect(url: str, options: dict[str, Any] | None = None, cluster: bool = False) -> Any:
    """A redis-py client for ``durable_redis_url`` (strings decoded as UTF-8).

    ``redis://``, ``rediss://``, ``unix://``; ``sentinel://h1:p1;sentinel://h2:p2``
    (Celery's form, with ``master_name`` in ``options``); or any node of a Redis
    Cluster with ``cluster=True``.
    """
    options = dict(options or {})
    options.setdefault("decode_responses", True)
    if url.startswith("sentinel://"):
        return _connect_sentinel(url, options)
    if cluster:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(url, **options)
    options.setdefault("health_check_interval", 30)
    return redis.Redis.from_url(url, **options)


def _connect_sentinel(url: str, options: dict[str, Any]) -> Any:
    from redis.sentinel import Sentinel

    master_name = options.pop("master_name", None) or options.pop("service_name", None)
    if not master_name:
        raise ValueError(f"durable_redis_url {url!r} is a Sentinel URL: set the master's name, "
                         "e.g. app.conf.durable_redis_options = {'master_name': 'mymaster'}")
    sentinel_kwargs = options.pop("sentinel_kwargs", None)
    hosts, password, db = [], None, 0
    for part in url.split(";"):
        parsed = urlparse(part.strip())
        hosts.append((parsed.hostname or "localhost", parsed.port or 26379))
        password = password or parsed.password
        if parsed.path.strip("/").isdigit():
            db = int(parsed.path.strip("/"))
    if password:
        options.setdefault("password", password)
    options.setdefault("db", db)
    return Sentinel(hosts, sentinel_kwargs=sentinel_kwargs).master_for(master_name, **options)
