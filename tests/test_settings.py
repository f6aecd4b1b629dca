"""Settings come from app.conf with DESIGN.md's defaults."""

import datetime as dt

import pytest
from celery import Celery

from celery_durable.settings import Settings
from celery_durable.store.redis import connect


def test_defaults_follow_a_redis_broker():
    s = Settings.from_app(Celery("t", broker="redis://127.0.0.1:6379/3"))
    assert s.redis_url == "redis://127.0.0.1:6379/3"
    assert (s.key_prefix, s.webhook_max_bytes, s.default_max_retries) == ("durable", 2**20, 3)
    assert (s.step_lease, s.timer_horizon, s.run_retention) == (30, 300, 7 * 86400)
    assert s.webhook_base_url == "http://localhost:5000/durable"


def test_non_redis_broker_falls_back_to_local_redis():
    s = Settings.from_app(Celery("t", broker="amqp://guest@127.0.0.1//"))
    assert s.redis_url == "redis://localhost:6379/0"


def test_timedelta_settings_and_explicit_url():
    app = Celery("t", broker="amqp://")
    app.conf.durable_redis_url = "redis://127.0.0.1:6380/1"
    app.conf.durable_step_lease = dt.timedelta(seconds=12)
    app.conf.durable_run_retention = dt.timedelta(days=1)
    s = Settings.from_app(app)
    assert (s.redis_url, s.step_lease, s.run_retention) == ("redis://127.0.0.1:6380/1", 12, 86400)


def test_sentinel_broker_lends_its_master_name_to_the_store():
    app = Celery("t", broker="sentinel://127.0.0.1:26379;sentinel://127.0.0.1:26380")
    app.conf.broker_transport_options = {"master_name": "mymaster"}
    s = Settings.from_app(app)
    assert s.redis_url.startswith("sentinel://")
    assert s.redis_options["master_name"] == "mymaster"


def test_sentinel_url_without_master_name_is_a_clear_error():
    with pytest.raises(ValueError, match="master_name"):
        connect("sentinel://127.0.0.1:26379")


def test_zero_is_a_value_not_a_missing_setting():
    app = Celery("t", broker="redis://127.0.0.1:6379/3")
    app.conf.durable_timer_grace = 0
    app.conf.durable_timer_horizon = 0
    s = Settings.from_app(app)
    assert (s.timer_grace, s.timer_horizon) == (0, 0)


def test_a_bad_setting_is_refused_by_name():
    app = Celery("t", broker="redis://127.0.0.1:6379/3")
    app.conf.durable_step_lease = "30 seconds"
    with pytest.raises(ValueError, match="durable_step_lease"):
        Settings.from_app(app)
    app.conf.durable_step_lease = 0
    with pytest.raises(ValueError, match="durable_step_lease must be above zero"):
        Settings.from_app(app)


def test_every_default_is_in_one_table():
    from celery_durable.settings import DEFAULTS

    s = Settings.from_conf({})
    assert s.step_lease == DEFAULTS["durable_step_lease"]
    assert s.webhook_base_url == DEFAULTS["durable_webhook_base_url"]
    assert s.redis_url == "redis://localhost:6379/0"
