"""The examples' tests, written as a user writes them: name the Durable, use durable_env.

Run with `make test` (or `cd examples && python -m pytest tests`): no Redis or broker
needs to run; the celery_durable pytest plugin gives the app a private one.
"""

import pytest


@pytest.fixture
def durable_app():
    from examples.app import durable

    return durable
