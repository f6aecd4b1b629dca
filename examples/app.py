"""The one Celery app (and ``Durable``) every example registers its steps on.

Configured from the environment, so the demo and the tests can point it at any
Redis, key prefix and queue:

=========================  ===================================  ==========================
variable                   default                              sets
=========================  ===================================  ==========================
``EXAMPLES_REDIS_URL``     ``redis://127.0.0.1:6379/0``         broker and durable store
``EXAMPLES_QUEUE``         ``examples``                         ``task_default_queue``
``EXAMPLES_PREFIX``        ``examples``                         ``durable_key_prefix``
``EXAMPLES_WEBHOOK_BASE``  ``http://127.0.0.1:5000/durable``    ``durable_webhook_base_url``
=========================  ===================================  ==========================

Run a worker and, for the webhook examples, the web app::

    celery -A examples.app worker -l INFO
    flask --app examples.app:web run --port 5000
"""

from __future__ import annotations

import os

from celery import Celery
from flask import Flask

from celery_durable import Durable

REDIS_URL = os.environ.get("EXAMPLES_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("EXAMPLES_QUEUE", "examples")
PREFIX = os.environ.get("EXAMPLES_PREFIX", "examples")
WEBHOOK_BASE = os.environ.get("EXAMPLES_WEBHOOK_BASE", "http://127.0.0.1:5000/durable")

# `include`: the worker imports every example module, so it knows all their
# steps and workflows (they are registered when their module is imported).
app = Celery("examples", broker=REDIS_URL, include=[
    "examples.pipeline",
    "examples.parallel_fetch",
    "examples.race_deadline",
    "examples.birthday",
])
app.conf.update(
    task_default_queue=QUEUE,
    durable_key_prefix=PREFIX,
    durable_webhook_base_url=WEBHOOK_BASE,
    worker_prefetch_multiplier=1,  # with acks_late steps: little to redeliver if a worker dies
    broker_connection_retry_on_startup=True,
)
durable = Durable(app)

# The web app: webhooks are served at <EXAMPLES_WEBHOOK_BASE>/webhook/<token>, the run
# viewer at /runs/ (read-only: actions=True adds cancel, wake up, redrive, resume).
web = Flask("examples")
web.register_blueprint(durable.webhooks_blueprint(), url_prefix="/durable")
web.register_blueprint(durable.viewer_blueprint(), url_prefix="/runs")
