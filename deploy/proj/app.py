"""The Celery app and its durable steps and workflows.

Configured only from the environment, so one image serves every environment:

* ``REDIS_URL`` (``redis://localhost:6379/0``): the durable store, ``durable_redis_url``.
* ``BROKER_URL`` (``REDIS_URL``): the Celery broker.
* ``DURABLE_WEBHOOK_BASE_URL`` (``http://localhost:8000/durable``):
  ``durable_webhook_base_url``, the public URL of proj.web's ``/durable`` prefix.
* ``DURABLE_KEY_PREFIX`` (``durable``): ``durable_key_prefix``.
* ``DURABLE_STEP_LEASE`` (``30`` seconds): ``durable_step_lease``.
* ``DURABLE_REDIS_CLUSTER`` (off; ``1`` or ``true`` turns it on): ``durable_redis_cluster``.
* ``REDIS_SENTINEL_MASTER`` (``mymaster``): the master name when a URL is
  ``sentinel://...``.

Importing this module connects to nothing: celery_durable opens its Redis
connection the first time it needs it.
"""

from __future__ import annotations

import os

from celery import Celery

from celery_durable import Durable

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
# One Redis can be both broker and store; a separate broker (Redis or RabbitMQ)
# is required when the store is a Redis Cluster, which Celery cannot use as broker.
BROKER_URL = os.environ.get("BROKER_URL") or REDIS_URL
REDIS_CLUSTER = os.environ.get("DURABLE_REDIS_CLUSTER", "").lower() in ("1", "true", "yes")
SENTINEL_MASTER = os.environ.get("REDIS_SENTINEL_MASTER", "mymaster")

if REDIS_CLUSTER and BROKER_URL == REDIS_URL:
    # Fail at start-up with a clear message rather than at the first task.
    raise RuntimeError("DURABLE_REDIS_CLUSTER is set: set BROKER_URL to a plain Redis or "
                       "RabbitMQ, a Redis Cluster cannot be the Celery broker")

app = Celery("proj", broker=BROKER_URL)
app.conf.update(
    durable_redis_url=REDIS_URL,
    durable_redis_cluster=REDIS_CLUSTER,
    durable_key_prefix=os.environ.get("DURABLE_KEY_PREFIX", "durable"),
    # Must be the public URL at which proj.web serves the webhooks blueprint.
    durable_webhook_base_url=os.environ.get("DURABLE_WEBHOOK_BASE_URL",
                                            "http://localhost:8000/durable"),
    # How long a lost step (its worker killed) waits before it is sent again.
    durable_step_lease=float(os.environ.get("DURABLE_STEP_LEASE", "30")),
    # Steps are acks_late: a worker holding one message at a time has little to
    # hand back if it dies, and idle workers get the next message.
    worker_prefetch_multiplier=1,
    # Workers may start before Redis is up (compose, Kubernetes): keep retrying.
    broker_connection_retry_on_startup=True,
)
if REDIS_URL.startswith("sentinel://"):
    app.conf.durable_redis_options = {"master_name": SENTINEL_MASTER}
if BROKER_URL.startswith("sentinel://"):
    app.conf.broker_transport_options = {"master_name": SENTINEL_MASTER}

durable = Durable(app)


@durable.step
def greet(name: str) -> str:
    """A step: runs as an ordinary Celery task (default queue ``celery``)."""
    return f"hello, {name}"


@durable.workflow
async def hello(name: str) -> str:
    """A workflow: ``hello.start("ada").result(timeout=30)`` returns ``"hello, ada"``."""
    return await greet(name)
