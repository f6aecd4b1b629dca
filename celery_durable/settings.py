"""Settings read from ``app.conf`` (DESIGN section 5), with their defaults."""

from __future__ import annotations

import dataclasses
from typing import Any

from celery import Celery


def _seconds(value: Any) -> float:
    if hasattr(value, "total_seconds"):
        return float(value.total_seconds())
    return float(value)


@dataclasses.dataclass(frozen=True)
class Settings:
    """A snapshot of the ``durable_*`` settings of one Celery app."""

    redis_url: str
    redis_options: dict[str, Any]
    redis_cluster: bool
    key_prefix: str
    webhook_base_url: str
    webhook_max_bytes: int
    webhook_response_timeout: float
    run_retention: float
    default_max_retries: int
    step_lease: float
    timer_horizon: float
    queue_timeout: float
    timer_grace: float
    sweep_interval: float
    cache_size: int
    replay_block_deadline: float

    @classmethod
    def from_app(cls, app: Celery) -> Settings:
        conf = app.conf
        broker = str(conf.broker_url or "")
        default_url = broker if broker.startswith(
            ("redis://", "rediss://", "unix://", "sentinel://")) else "redis://localhost:6379/0"
        redis_url = conf.get("durable_redis_url") or default_url
        redis_options = dict(conf.get("durable_redis_options") or {})
        if redis_url == broker and broker.startswith("sentinel://"):
            # The broker's Sentinel settings serve the store too, unless given apart.
            transport = dict(conf.broker_transport_options or {})
            for key in ("master_name", "sentinel_kwargs"):
                if key in transport:
                    redis_options.setdefault(key, transport[key])
        return cls(
            redis_url=redis_url,
            redis_options=redis_options,
            redis_cluster=bool(conf.get("durable_redis_cluster", False)),
            key_prefix=conf.get("durable_key_prefix") or "durable",
            webhook_base_url=conf.get("durable_webhook_base_url")
            or "http://localhost:5000/durable",
            webhook_max_bytes=int(conf.get("durable_webhook_max_bytes") or 1024 * 1024),
            webhook_response_timeout=_seconds(
                conf.get("durable_webhook_response_timeout") or 30),
            run_retention=_seconds(conf.get("durable_run_retention") or 7 * 86400),
            default_max_retries=int(conf.get("durable_default_max_retries", 3)),
            step_lease=_seconds(conf.get("durable_step_lease") or 30),
            timer_horizon=_seconds(conf.get("durable_timer_horizon") or 300),
            queue_timeout=_seconds(conf.get("durable_queue_timeout") or 3600),
            timer_grace=_seconds(conf.get("durable_timer_grace") or 2.0),
            sweep_interval=_seconds(conf.get("durable_sweep_interval") or 1.0),
            cache_size=int(conf.get("durable_cache_size", 1000)),
            replay_block_deadline=_seconds(conf.get("durable_replay_block_deadline") or 2.0),
        )
