"""Viewer fixtures: the end-to-end environment (real Redis, real workers), a worker that
also loads :mod:`tests.viewer.proj_viewer`, and Flask apps serving the viewer.

The e2e fixtures are imported from ``tests/e2e/conftest.py`` (pytest refuses
``pytest_plugins`` outside the root conftest). Imported here they are fixtures of this
folder: a session that ran e2e tests first still has their shared worker consuming the
same queues, so :func:`stop_shared_workers` stops it before this folder's worker starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from celery_durable.devstack import WorkerProcess
from tests.e2e.conftest import (  # noqa: F401 - fixtures used by this folder's tests
    e2e_env,
    proj,
    scratch,
    web_base,
)
from tests.support.shared_workers import stop_shared_workers

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def viewer_proj(proj: Any) -> Any:  # noqa: F811 - the fixture imported above
    """:mod:`tests.viewer.proj_viewer`, imported after the environment is set."""
    from tests.viewer import proj_viewer

    return proj_viewer


@pytest.fixture(scope="module")
def viewer_worker(e2e_env: dict[str, str], viewer_proj: Any,  # noqa: F811
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """One worker (prefork, 4 processes: a gather of three runs at once) on the session's
    queues, loading the viewer's workflows too; started once per module."""
    stop_shared_workers()
    queue = e2e_env["DURABLE_TEST_QUEUE"]
    worker = WorkerProcess("tests.e2e.proj", tmp_path_factory.mktemp("viewer") / "worker.log",
                           queues=[queue, f"{queue}-other"], concurrency=4,
                           env=dict(e2e_env), cwd=ROOT,
                           extra_args=["--include", "tests.viewer.proj_viewer"])
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def make_app(proj: Any) -> Callable[..., Flask]:  # noqa: F811
    """``make_app(actions=...)``: a Flask app with the viewer at ``/runs``."""

    def make(actions: bool = False) -> Flask:
        flask_app = Flask("viewer-tests")
        flask_app.register_blueprint(proj.durable.viewer_blueprint(actions=actions),
                                     url_prefix="/runs")
        return flask_app

    return make
