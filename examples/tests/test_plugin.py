"""What the plugin promises, proved with small workflows of the test's own."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from celery_durable import create_hook, now, sleep
from examples.app import durable


@durable.workflow(name="tests.reminder")
async def reminder(who: str) -> dict:
    before = now()
    await sleep("1 day")
    return {"who": who, "waited": (now() - before).total_seconds()}


@durable.workflow(name="tests.approval")
async def approval(order: str) -> str:
    decision = await create_hook(f"approve:{order}")
    return f"{order}: {decision['answer']}"


def test_a_day_long_sleep_takes_no_time_and_now_moves_a_day(durable_env):
    began = time.monotonic()
    result = reminder.start("ada").result(timeout=10)
    assert time.monotonic() - began < 1.0
    assert result == {"who": "ada", "waited": 86400.0}


def test_time_moves_by_hand_when_skipping_is_off(durable_env):
    durable_env.time_skipping = False
    run = reminder.start("bob")
    time.sleep(0.3)  # would have fired at once with skipping on
    assert run.status == "running"
    assert durable_env.advance(dt.timedelta(hours=23)) == 0
    assert run.status == "running"
    assert durable_env.advance("1 hour") == 1
    assert run.result(timeout=10)["waited"] == 86400.0


def test_a_hook_is_resumed_once_the_run_reaches_it(durable_env):
    run = approval.start("o-1")
    durable_env.resume_hook("approve:o-1", {"answer": "yes"})
    assert run.result(timeout=10) == "o-1: yes"


def test_tests_do_not_see_each_others_runs_first(durable_env):
    run = approval.start("isolated")
    assert durable_env.runtime.list_runs() == durable_env.runtime.list_runs(limit=1)
    assert [r.run_id for r in durable_env.runtime.list_runs()] == [run.id]


def test_tests_do_not_see_each_others_runs_second(durable_env):
    assert durable_env.runtime.list_runs() == []  # the first test's run is not here
    run = approval.start("isolated")  # nor its hook: the same token is free here
    durable_env.resume_hook("approve:isolated", {"answer": "no"})
    assert run.result(timeout=10) == "isolated: no"


def test_a_wrong_expectation_in_a_users_test_fails(tmp_path: Path):
    (tmp_path / "conftest.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.fixture
        def durable_app():
            from examples.app import durable
            return durable
    """))
    (tmp_path / "test_wrong.py").write_text(textwrap.dedent("""
        from examples.pipeline import data_pipeline

        def test_wrong(durable_env):
            run = data_pipeline.start({"name": "Ada", "email": "ada@example.com"})
            assert run.result(timeout=10) == "not what it returns"
    """))
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed" in done.stdout and "not what it returns" in done.stdout
