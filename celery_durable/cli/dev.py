"""``dev``: the user's app as a running local stack, stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from ..devstack import WebServer, WorkerProcess, start_private_redis
from ..devstack.redis_server import ping
from ..runtime import Runtime
from . import runtime_of


def _dev_app(runtime: Runtime) -> Any:
    """A Flask app serving the webhooks and the run viewer (with its actions)."""
    from flask import Flask, redirect

    from ..web.viewer import viewer_blueprint
    from ..web.webhooks import webhooks_blueprint

    web = Flask("celery_durable_dev")
    web.register_blueprint(webhooks_blueprint(lambda: runtime), url_prefix="/durable")
    web.register_blueprint(viewer_blueprint(lambda: runtime, actions=True), url_prefix="/runs")

    @web.get("/")
    def index() -> Any:
        return redirect("/runs/")

    return web


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@click.command()
@click.option("--port", type=int, default=5000, show_default=True,
              help="the web app's port (webhooks at /durable)")
@click.option("--concurrency", type=int, default=2, show_default=True)
@click.option("--log", "log_path", type=click.Path(dir_okay=False),
              help="the worker's log file (default: a temporary file)")
@click.pass_context
def dev(ctx: click.Context, port: int, concurrency: int, log_path: str | None) -> None:
    """Run the app locally: its Redis (or an embedded one), a worker on every queue its
    steps use, and a web app with the webhooks and the run viewer. Ctrl-C stops what it
    started."""
    runtime = runtime_of(ctx)
    app_name = str(ctx.find_root().params.get("app") or "")
    if not app_name:
        raise click.UsageError("celery durable dev needs -A: celery -A proj.app durable dev")
    env: dict[str, str] = {}
    redis = None
    url = runtime.settings.redis_url
    if ping(url):
        where = f"{url} (found)"
    else:
        redis = start_private_redis()
        url = redis.url
        where = f"{url} (embedded: nothing answered at {runtime.settings.redis_url})"
        env.update(CELERY_DURABLE_REDIS_URL=url)
        broker = str(runtime.app.conf.broker_url or "")
        if broker.startswith(("redis://", "rediss://", "unix://")) and not ping(broker):
            env["CELERY_BROKER_URL"] = url
    base = f"http://127.0.0.1:{port}/durable"
    env["CELERY_DURABLE_WEBHOOK_BASE_URL"] = base
    os.environ.update(env)
    local = Runtime(runtime.app, runtime.registry)  # the settings as the worker sees them
    queues = runtime.registry.queues(str(runtime.app.conf.task_default_queue or "celery"))
    log = Path(log_path or tempfile.mkstemp(prefix="celery-durable-dev-", suffix=".log")[1])
    worker = WorkerProcess(app_name, log, queues=queues, concurrency=concurrency,
                           env=dict(os.environ), cwd=os.getcwd(),
                           hostname=f"dev-{os.getpid()}@%h")
    web = None
    try:
        web = WebServer(_dev_app(local), port=port)
        click.echo(f"redis   {where}")
        click.echo(f"worker  celery -A {app_name} worker -Q {','.join(queues)} "
                   f"(pid {worker.process.pid}, log {log})")
        worker.wait_ready(60)
        click.echo(f"web     {base}/webhook/<token>")
        click.echo(f"viewer  {web.url}/runs/")
        click.echo(click.style("ready", fg="green", bold=True) + " - Ctrl-C stops everything")
        # Ctrl-C (even where a shell started us with SIGINT ignored) and SIGTERM stop it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _interrupt)
        while worker.alive():
            time.sleep(0.2)
        click.echo(f"the worker exited ({worker.process.returncode}); its log:\n{worker.tail()}",
                   err=True)
        raise SystemExit(1)
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        worker.stop()
        if web is not None:
            web.stop()
        if redis is not None:
            redis.close()


COMMANDS = [dev]
