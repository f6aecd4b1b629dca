"""The Flask app gunicorn serves: the durable webhooks and a health check.

Run with ``gunicorn proj.web:app``. ``DURABLE_WEBHOOK_BASE_URL`` must be the public
URL of the ``/durable`` prefix below (for example ``https://example.com/durable``).
"""

from __future__ import annotations

from flask import Flask

from proj.app import durable

app = Flask("proj")
app.register_blueprint(durable.webhooks_blueprint(), url_prefix="/durable")
# The run viewer (durable.viewer_blueprint()) will be mounted at /runs once it exists.


@app.get("/healthz")
def healthz() -> dict[str, str]:
    # Process health only, Redis is not checked: a Redis outage should not make the
    # orchestrator restart every web process at once; webhooks answer 5xx meanwhile.
    return {"status": "ok"}
