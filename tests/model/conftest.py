"""Model-check fixtures: the end-to-end environment, two workers that also load
``tests.model.proj_model``, and soak figures.

Soak tests (``@pytest.mark.soak``) run only when the marker expression selects them
(``make soak`` is ``pytest -m soak tests``); a plain ``pytest`` / ``make test`` skips
them, since nothing else keeps them out of the default run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import e2e_env, proj  # noqa: F401 - fixtures used here
from tests.support.shared_workers import stop_shared_workers

FIGURES: list[str] = []


def _selects_soak(markexpr: str) -> bool:
    if not markexpr.strip():
        return False
    try:
        from _pytest.mark.expression import Expression

        return bool(Expression.compile(markexpr).evaluate(lambda name, **_: name == "soak"))
    except Exception:  # noqa: BLE001 - another pytest: a plain reading
        return "soak" in markexpr and "not soak" not in markexpr


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _selects_soak(config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="soak test: run with `make soak` (pytest -m soak)")
    here = Path(__file__).parent
    for item in items:
        if item.get_closest_marker("soak") is not None and here in Path(item.path).parents:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("model check figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def stop_e2e_shared_worker(request: pytest.FixtureRequest) -> None:
    """If e2e tests ran earlier in this session, their shared worker (which does not
    load the model module) consumes the same queues: stop it, as ``start_worker`` does.
    It starts again when a later test asks for it."""
    stop_shared_workers()


@pytest.fixture(scope="module")
def model(proj: Any) -> Any:  # noqa: F811 - the fixture imported above
    """``tests.model.proj_model``, imported in the test process after ``e2e_env``."""
    from tests.model import proj_model

    return proj_model


@pytest.fixture(scope="module")
def client(model: Any) -> Any:
    """Starts and resumes runs with the workers' lease (the test process's app has the
    e2e default of 30 s, which is what a lost first message would wait)."""
    from tests.model.driver import Client
    from tests.model.harness import LEASE

    return Client.with_lease(model.durable, model.model_program, LEASE)


@pytest.fixture(scope="module")
def model_workers(e2e_env: dict[str, str], model: Any,  # noqa: F811
                  tmp_path_factory: pytest.TempPathFactory,
                  request: pytest.FixtureRequest) -> Iterator[Any]:
    """Two workers on the session's Redis and queues, started once per module."""
    from tests.model.harness import Workers

    stop_e2e_shared_worker(request)
    workers = Workers(e2e_env, tmp_path_factory.mktemp("model-workers"))
    try:
        workers.ensure()
        yield workers
    finally:
        workers.stop()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A :class:`~tests.model.harness.Figures` for this test, printed at its end and in
    the "model check figures" section of the summary (also when the test fails)."""
    from tests.model.harness import Figures

    collected = Figures(request.node.name)
    yield collected
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    for line in collected.lines():
        FIGURES.append(f"[{request.node.name}] {line}")
        if reporter is None or capture is None:
            print(line)
        else:
            with capture.global_and_fixture_disabled():
                reporter.write_line(line)
