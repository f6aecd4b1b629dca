"""The README's "Testing your workflows" section, run as a user runs it: the quickstart's
``proj/app.py`` with the "What composes" block added, the section's ``conftest.py`` and
test file, ``python -m pytest tests`` in that project. The blocks are taken from the
README (each follows a ``<!-- readme-test: NAME -->`` marker; a name ending in ``+`` is
appended to that file) and run unchanged.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .test_quickstart import ROOT, quickstart_blocks

pytestmark = pytest.mark.e2e

BLOCK = re.compile(r"<!-- readme-test: (?P<name>[^ ]+) -->\s*```\w*\n(?P<body>.*?)```", re.S)


def test_the_readme_testing_section_passes_as_written(tmp_path: Path) -> None:
    files = {"proj/app.py": quickstart_blocks()["proj/app.py"]}
    blocks = [(m["name"], m["body"]) for m in BLOCK.finditer((ROOT / "README.md").read_text())]
    assert [name for name, _ in blocks] == ["proj/app.py+", "tests/conftest.py",
                                            "tests/test_orders.py"]
    for name, body in blocks:
        if name.endswith("+"):
            files[name[:-1]] += "\n\n" + body
        else:
            files[name] = body
    for name, body in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    # The user's shell: nothing of this session's settings; the plugin finds Redis
    # ($REDIS_URL under a prefix of its own, else an embedded one).
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH",) and not k.startswith("DURABLE_")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "tests"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "4 passed" in done.stdout, done.stdout[-2000:]
