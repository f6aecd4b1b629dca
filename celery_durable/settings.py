"""The ``durable_*`` settings read from ``app.conf``, with their defaults in one place.

Every default lives in :data:`DEFAULTS`; nothing else in the package repeats one. A
setting left unset (or ``None``) takes its default; any other value is used as
given, so ``durable_timer_grace = 0`` means zero. A value of the wrong kind is
refused with an error that names the setting.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Mapping
from typing import Any

from .engine.loop import DEFAULT_BLOCK_DEADLINE

#: Environment variables that override a setting: how ``celery durable dev`` and the
#: test kit point an app at their own Redis and web app without editing it.
ENV_OVERRIDES = {"durable_redis_url": "CELERY_DURABLE_REDIS_URL",
                 "durable_webhook_base_url": "CELERY_DURABLE_WEBHOOK_BASE_URL"}

#: The Redis URL used when the broker is not Redis and none is set.
FALLBACK_REDIS_URL = "redis://localhost:6379/0"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "sentinel://")

#: Setting name → default (durations in seconds).
DEFAULTS: dict[str, Any] = {
    "durable_redis_url": None,  # the broker URL if it is Redis, else FALLBACK_REDIS_URL
    "durable_redis_options": {},
    "durable_redis_cluster": False,
    "durable_key_prefix": "durable",
    "durable_webhook_base_url": "http://localhost:5000/durable",
    "durable_webhook_max_bytes": 1024 * 1024,
    "durable_webhook_response_timeout": 30.0,
    "durable_run_retention": 7 * 86400.0,
    "durable_default_max_retries": 3,
    "durable_max_lost_attempts": 3,
    "durable_inline_steps": 10,
    "durable_step_lease": 30.0,
    "durable_timer_horizon": 300.0,
    "durable_queue_timeout": 3600.0,
    "durable_timer_grace": 2.0,
    "durable_sweep_interval": 1.0,
    "durable_sweeper": True,
    "durable_cache_size": 1000,
    "durable_replay_block_deadline": DEFAULT_BLOCK_DEADLINE,
}

#: Durations that must be above zero (a zero lease would expire at once).
_POSITIVE = {"durable_step_lease", "durable_sweep_interval", "durable_replay_block_deadline",
             "durable_webhook_response_timeout"}


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds or a timedelta, got {value!r}")
    seconds = float(value)
    if seconds < 0 or (seconds == 0 and name in _POSITIVE):
        bound = "above zero" if name in _POSITIVE else "zero or more"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return seconds


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Settings:
    """A snapshot of the ``durable_*`` settings of one Celery app.

    >>> Settings.from_conf({"broker_url": "redis://127.0.0.1:6379/3"}).redis_url
    'redis://127.0.0.1:6379/3'
    """

    redis_url: str
    redis_options: dict[str, Any]
    redis_cluster: bool
    key_prefix: str
    webhook_base_url: str
    webhook_max_bytes: int
    webhook_response_timeout: float
    run_retention: float
    default_max_retries: int
    max_lost_attempts: int
    inline_steps: int
    step_lease: float
    timer_horizon: float
    queue_timeout: float
    timer_grace: float
    sweep_interval: float
    sweeper: bool
    cache_size: int
    replay_block_deadline: float

    @classmethod
    def from_app(cls, app: Any) -> Settings:
        """The settings of a Celery app (read from ``app.conf``)."""
        return cls.from_conf(app.conf)

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> Settings:
        def get(name: str) -> Any:
            value = os.environ.get(ENV_OVERRIDES[name]) if name in ENV_OVERRIDES else None
            value = conf.get(name) if not value else value
            return DEFAULTS[name] if value is None else value

        broker = str(conf.get("broker_url") or "")
        redis_url = str(get("durable_redis_url") or "") or (
            broker if broker.startswith(REDIS_SCHEMES) else FALLBACK_REDIS_URL)
        redis_options = dict(get("durable_redis_options"))
        if redis_url == broker and broker.startswith("sentinel://"):
            # The broker's Sentinel settings serve the store too, unless given apart.
            transport = dict(conf.get("broker_transport_options") or {})
            for key in ("master_name", "sentinel_kwargs"):
                if key in transport:
                    redis_options.setdefault(key, transport[key])
        prefix = str(get("durable_key_prefix"))
        if not prefix:
            raise ValueError("durable_key_prefix must not be empty")
        return cls(
            redis_url=redis_url,
            redis_options=redis_options,
            redis_cluster=bool(get("durable_redis_cluster")),
            key_prefix=prefix,
            webhook_base_url=str(get("durable_webhook_base_url")),
            webhook_max_bytes=_count("durable_webhook_max_bytes",
                                     get("durable_webhook_max_bytes")),
            webhook_response_timeout=_seconds("durable_webhook_response_timeout",
                                              get("durable_webhook_response_timeout")),
            run_retention=_seconds("durable_run_retention", get("durable_run_retention")),
            default_max_retries=_count("durable_default_max_retries",
                                       get("durable_default_max_retries")),
            max_lost_attempts=_count("durable_max_lost_attempts",
                                     get("durable_max_lost_attempts")),
            inline_steps=_count("durable_inline_steps", get("durable_inline_steps")),
            step_lease=_seconds("durable_step_lease", get("durable_step_lease")),
            timer_horizon=_seconds("durable_timer_horizon", get("durable_timer_horizon")),
            queue_timeout=_seconds("durable_queue_timeout", get("durable_queue_timeout")),
            timer_grace=_seconds("durable_timer_grace", get("durable_timer_grace")),
            sweep_interval=_seconds("durable_sweep_interval", get("durable_sweep_interval")),
            sweeper=bool(get("durable_sweeper")),
            cache_size=_count("durable_cache_size", get("durable_cache_size")),
            replay_block_deadline=_seconds("durable_replay_block_deadline",
                                           get("durable_replay_block_deadline")),
        )
