"""Static checks of deploy/: schemas, commands, settings, Dockerfile.

No Docker engine exists where these run and nothing here uses the network: the
schemas come from installed packages (check-jsonschema vendors the Compose
Specification schema, kubernetes-validate bundles the Kubernetes ones). The deploy
commands are checked by running them with ``--help`` / ``--check-config`` against
the real sample project, in subprocesses with deploy/ on the path.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from celery_durable.settings import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent  # the venv's console scripts: celery, gunicorn

# The settings celery_durable reads from app.conf that deploy files may name.
# The settings that exist: the one table of them in the package.
SETTINGS = frozenset(DEFAULTS)
CELERY_APP = "proj.app"
WSGI_APP = "proj.web:app"
# The oldest Kubernetes release we claim to support, and the newest one bundled.
K8S_OLDEST = "1.28"
# Stands in for $HOSTNAME in shell commands (the Kubernetes liveness probe).
HOST = "probe-host"

YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))
K8S_FILES = sorted((DEPLOY / "kubernetes").glob("*.y*ml"))
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _yaml() -> Any:
    return pytest.importorskip("yaml", reason="PyYAML is not installed (pip install pyyaml)")


def _load_all(path: Path) -> list[Any]:
    return [doc for doc in _yaml().safe_load_all(path.read_text()) if doc is not None]


def _compose() -> dict[str, Any]:
    (doc,) = _load_all(DEPLOY / "compose.yaml")
    return doc


def _env() -> dict[str, str]:
    """The environment for subprocesses: deploy/ importable, nothing written into it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(DEPLOY), env.get("PYTHONPATH")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ left in deploy/proj
    for name in list(env):
        if name in ("BROKER_URL", "REDIS_SENTINEL_MASTER") or name.startswith("DURABLE_"):
            del env[name]
    # Port 9 (discard): nothing answers there, should anything try to connect.
    env["REDIS_URL"] = "redis://127.0.0.1:9/0"
    return env


def _run_all(jobs: list[tuple[str, list[str]]]) -> list[tuple[str, int, str]]:
    """Run the commands at once (each loads Python and the app: ~1 s of CPU)."""
    running = []
    for label, argv in jobs:
        out = tempfile.TemporaryFile()
        proc = subprocess.Popen(argv, cwd=DEPLOY, env=_env(), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
        running.append((label, proc, out))
    results = []
    for label, proc, out in running:
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        out.seek(0)
        results.append((label, code, out.read().decode(errors="replace")[-3000:]))
        out.close()
    return results


# -- the sample project -------------------------------------------------------------

PROBE = """
import json, socket

def refuse(*args, **kwargs):
    raise OSError("deploy/proj tried to open a network connection on import")

socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse

import flask
import proj.app
import proj.web

app = proj.app.app
web = proj.web.app
# Where each task is sent: its own queue option (durable.step(queue=...)) or the
# routes and default queue, as apply_async would.
queues = {app.amqp.router.route({"queue": q} if (q := getattr(task, "queue", None)) else {},
                                name, (), {})["queue"].name
          for name, task in app.tasks.items() if not name.startswith("celery.")}
print(json.dumps({
    "flask": isinstance(web, flask.Flask),
    "rules": sorted(rule.rule for rule in web.url_map.iter_rules()),
    "healthz": web.test_client().get("/healthz").status_code,
    "tasks": sorted(app.tasks),
    "queues": sorted(queues),
    "default_queue": app.conf.task_default_queue,
}))
"""


@functools.cache
def _project() -> dict[str, Any]:
    """What importing proj.app and proj.web gives, from a subprocess with sockets off."""
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=DEPLOY, env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"importing deploy/proj failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.splitlines()[-1])


def test_sample_project_imports_offline_and_serves_the_routes() -> None:
    info = _project()
    assert info["flask"], f"{WSGI_APP} is not a Flask app"
    assert "/durable/webhook/<token>" in info["rules"], info["rules"]
    assert "/healthz" in info["rules"], info["rules"]
    assert info["healthz"] == 200
    assert any(name.startswith("proj.") for name in info["tasks"]), "no step or workflow"


# -- YAML and schemas ---------------------------------------------------------------

def test_deploy_has_the_expected_files() -> None:
    for name in ("Dockerfile", "compose.yaml", "README.md", "kubernetes/README.md",
                 "proj/__init__.py", "proj/app.py", "proj/web.py"):
        assert (DEPLOY / name).is_file(), name
    assert len(K8S_FILES) >= 4 and len(UNITS) >= 2


@pytest.mark.parametrize("path", YAML_FILES, ids=_rel)
def test_yaml_parses(path: Path) -> None:
    docs = _load_all(path)
    assert docs and all(isinstance(doc, dict) for doc in docs), f"{_rel(path)}: no mapping"


def _check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(path)], capture_output=True, text=True, timeout=60)


def test_compose_matches_the_compose_spec(tmp_path: Path) -> None:
    pytest.importorskip("check_jsonschema",
                        reason="check-jsonschema is not installed (pip install check-jsonschema)")
    result = _check_compose(DEPLOY / "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    # The same file with one misspelt key must fail: the schema really is applied.
    broken = tmp_path / "compose.yaml"
    broken.write_text((DEPLOY / "compose.yaml").read_text().replace(
        "stop_grace_period:", "stop_grace_periodd:", 1))
    assert _check_compose(broken).returncode != 0, "the compose schema accepted a bad key"


@pytest.mark.parametrize("path", K8S_FILES, ids=_rel)
def test_kubernetes_manifest_matches_the_schemas(path: Path) -> None:
    kv = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate is not installed (pip install kubernetes-validate)")
    for doc in _load_all(path):
        for version in (K8S_OLDEST, kv.latest_version()):
            # strict: unknown (misspelt) fields are errors, not ignored.
            kv.validate(doc, version, strict=True)
    # A misspelt field must fail: the strict schema really is applied.
    broken = copy.deepcopy(_load_all(path)[0])
    broken["metadata"]["nmae"] = "x"
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, K8S_OLDEST, strict=True)


def test_kubernetes_has_the_expected_kinds() -> None:
    kinds = sorted(doc["kind"] for path in K8S_FILES for doc in _load_all(path))
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Service"], kinds


# -- the commands the files run -----------------------------------------------------

def _shell(argv: list[str]) -> list[str]:
    """``sh -c "..."`` -> the command it runs, with $HOSTNAME filled in."""
    if Path(argv[0]).name in ("sh", "bash") and len(argv) == 3 and argv[1] == "-c":
        line = re.sub(r"\$\{?HOSTNAME\}?", HOST, argv[2])
        assert "$" not in line, f"unexpected shell expansion in {argv[2]!r}"
        return shlex.split(line)
    return argv


def _systemd_argv(value: str, unit: str) -> list[str]:
    specifiers = {"i": "1", "I": "1", "H": "localhost", "n": unit, "%": "%"}

    def one(match: re.Match[str]) -> str:
        assert match.group(1) in specifiers, f"{unit}: unhandled specifier {match.group()}"
        return specifiers[match.group(1)]

    return shlex.split(re.sub(r"%(.)", one, value.lstrip("-@+!:")))


def _units() -> dict[str, dict[str, list[str]]]:
    """Each unit file as {"Section.Key": [values]} (systemd keys may repeat)."""
    units = {}
    for path in UNITS:
        section, keys = "", {}
        text = path.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, _, value = line.partition("=")
            keys.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
        units[path.name] = keys
    return units


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction, continuations joined."""
    instructions, pending = [], ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue  # also inside a continued instruction, as Docker does
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        word, _, rest = (pending + line).strip().partition(" ")
        instructions.append((word.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def _docker_argv(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else ["sh", "-c", args]


def _k8s_containers() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    found = []
    for path in K8S_FILES:
        for doc in _load_all(path):
            pod = doc.get("spec", {}).get("template", {}).get("spec", {})
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                found.append((f"{_rel(path)}: {container['name']}", pod, container))
    return found


def _commands() -> list[tuple[str, list[str]]]:
    """Every command line deploy/ runs, as (where, argv)."""
    found = []
    for name, service in _compose()["services"].items():
        where = f"deploy/compose.yaml: {name}"
        if "command" in service:
            command = service["command"]
            found.append((where, shlex.split(command) if isinstance(command, str) else command))
        test = service.get("healthcheck", {}).get("test")
        if test:
            if isinstance(test, str) or test[0] == "CMD-SHELL":
                test = ["sh", "-c", test if isinstance(test, str) else test[1]]
            else:
                assert test[0] == "CMD", f"{where}: healthcheck {test!r}"
                test = test[1:]
            found.append((f"{where} healthcheck", test))
    for where, _pod, container in _k8s_containers():
        argv = container.get("command", []) + container.get("args", [])
        if argv:
            found.append((where, argv))
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if "exec" in container.get(probe, {}):
                found.append((f"{where} {probe}", container[probe]["exec"]["command"]))
    for unit, keys in _units().items():
        for key in ("ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop"):
            for value in keys.get(f"Service.{key}", []):
                found.append((f"deploy/systemd/{unit}: {key}", _systemd_argv(value, unit)))
    for word, args in _dockerfile():
        if word in ("CMD", "ENTRYPOINT"):
            found.append((f"deploy/Dockerfile {word}", _docker_argv(args)))
    return [(where, [str(arg) for arg in _shell(argv)]) for where, argv in found]


def _option(argv: list[str], *names: str) -> str | None:
    """The value of an option given as ``-X value``, ``--xx value`` or ``--xx=value``."""
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def test_every_command_is_a_known_program_with_the_right_app() -> None:
    queues = set(_project()["queues"]) | {_project()["default_queue"]}
    commands = _commands()
    assert len(commands) >= 8, commands
    problems = []
    for where, argv in commands:
        program = Path(argv[0]).name
        if program == "celery":
            if _option(argv, "-A", "--app") != CELERY_APP:
                problems.append(f"{where}: celery without -A {CELERY_APP}")
            if "worker" in argv:
                consumed = set((_option(argv, "-Q", "--queues") or "celery").split(","))
                if not queues <= consumed:
                    problems.append(f"{where}: consumes {sorted(consumed)}, the project's "
                                    f"tasks go to {sorted(queues)}")
                if _option(argv, "--prefetch-multiplier") != "1":
                    problems.append(f"{where}: worker without --prefetch-multiplier=1")
        elif program == "gunicorn":
            if argv[-1] != WSGI_APP:
                problems.append(f"{where}: gunicorn does not serve {WSGI_APP}")
        elif program == "redis-server":
            flags = dict(zip(argv[1::2], argv[2::2], strict=False))
            if flags.get("--appendonly") != "yes" \
                    or flags.get("--appendfsync") not in ("everysec", "always") \
                    or flags.get("--maxmemory-policy") != "noeviction":
                problems.append(f"{where}: Redis without AOF and noeviction: {argv}")
        elif program == "redis-cli":
            if argv[1:] != ["ping"]:
                problems.append(f"{where}: unexpected redis-cli use {argv}")
        elif program == "python" and argv[1:2] == ["-c"]:
            compile(argv[2], where, "exec")  # a SyntaxError fails the test
        else:
            problems.append(f"{where}: unknown program {argv[0]!r}")
    assert not problems, "\n".join(problems)


def test_celery_commands_load_the_app() -> None:
    jobs: dict[tuple[str, ...], str] = {}
    inspected = set()
    for where, argv in _commands():
        if Path(argv[0]).name == "celery":
            # click parses every option before it honours --help, and celery loads the
            # app for -A first: a wrong option, subcommand or app exits non-zero.
            jobs.setdefault((*argv[1:], "--help"), where)
            if "inspect" in argv:
                inspected.add(argv[argv.index("inspect") + 1])
    assert any(args[:3] == ("-A", CELERY_APP, "worker") for args in jobs), "no celery worker"
    # `inspect --help` accepts any command name: ask for the list of real ones.
    listing = ("-A", CELERY_APP, "inspect", "--list")
    if inspected:
        jobs[listing] = "inspect commands"
    results = _run_all([(f"{where}: celery {' '.join(args)}", [str(BIN / "celery"), *args])
                        for args, where in jobs.items()])
    failed = [f"{label} exited {code}:\n{out}" for label, code, out in results if code]
    assert not failed, "\n\n".join(failed)
    for args, (_, _, out) in zip(jobs, results, strict=True):
        if args == listing:
            known = set(re.findall(r"^  (\w+)", out, re.MULTILINE))
            assert inspected <= known, f"unknown inspect command(s) {inspected - known}"


def test_gunicorn_commands_load_the_app() -> None:
    gunicorn = BIN / "gunicorn"
    if not gunicorn.exists():
        pytest.skip("gunicorn is not installed (pip install gunicorn)")
    jobs = {tuple(argv[1:]): where for where, argv in _commands()
            if Path(argv[0]).name == "gunicorn"}
    assert jobs, "no gunicorn command"
    results = _run_all([(f"{where}: gunicorn {' '.join(args)}",
                         [str(gunicorn), "--check-config", "--chdir", str(DEPLOY), *args])
                        for args, where in jobs.items()])
    failed = [f"{label} --check-config exited {code}:\n{out}"
              for label, code, out in results if code]
    assert not failed, "\n\n".join(failed)


def test_kubernetes_worker_answers_its_probe() -> None:
    # The probe pings celery@$HOSTNAME: the worker must keep that default node name.
    for where, _pod, container in _k8s_containers():
        argv = container.get("command", []) + container.get("args", [])
        if "worker" in argv:
            assert _option(argv, "-n", "--hostname") is None, where
            probe = container.get("livenessProbe", {}).get("exec", {}).get("command")
            if probe:
                assert _option(_shell(probe), "-d", "--destination") == f"celery@{HOST}"


# -- settings and environment -------------------------------------------------------

def _text_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def test_only_existing_durable_settings_are_named() -> None:
    named: dict[str, set[str]] = {}
    for path in _text_files():
        # durable_x or DURABLE_X (the environment variables mirror the settings), but
        # not celery_durable_x.
        for match in re.finditer(r"(?<![\w])durable_\w+", path.read_text(), re.IGNORECASE):
            named.setdefault(match.group().lower(), set()).add(_rel(path))
    assert "durable_step_lease" in named, "the scan found nothing: check the pattern"
    unknown = {name: sorted(paths) for name, paths in named.items() if name not in SETTINGS}
    assert not unknown, f"not celery_durable settings: {unknown}"


def test_every_environment_variable_set_is_read_by_the_project() -> None:
    source = (DEPLOY / "proj" / "app.py").read_text()
    read = set(re.findall(r"os\.environ\.get\(\s*\"(\w+)\"", source))
    assert {"REDIS_URL", "BROKER_URL", "DURABLE_WEBHOOK_BASE_URL"} <= read, read
    given = {}
    for name, service in _compose()["services"].items():
        for key in service.get("environment", {}):
            given[key] = f"deploy/compose.yaml: {name}"
    for path in K8S_FILES:
        for doc in _load_all(path):
            if doc["kind"] == "ConfigMap":
                given.update(dict.fromkeys(doc["data"], _rel(path)))
    env_example = DEPLOY / "systemd" / "env.example"
    for line in env_example.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            given[line.split("=", 1)[0].strip()] = _rel(env_example)
    unread = {key: where for key, where in given.items() if key not in read}
    assert not unread, f"set but never read by proj/app.py: {unread}"


# -- compose, systemd and Dockerfile wiring ---------------------------------------

def test_compose_wiring() -> None:
    services = _compose()["services"]
    workers = {name: s for name, s in services.items() if "worker" in s.get("command", [])}
    assert sum(s.get("deploy", {}).get("replicas", 1) for s in workers.values()) >= 2
    for name, service in workers.items():
        assert "stop_grace_period" in service, f"{name}: no stop_grace_period"
    for name, service in services.items():
        if name != "redis":  # the app processes wait for Redis to answer, not just start
            wait = service.get("depends_on", {}).get("redis", {}).get("condition")
            assert wait == "service_healthy", f"{name}: depends_on redis is {wait!r}"
        for target, condition in service.get("depends_on", {}).items():
            if condition.get("condition") == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits on {target}'s health"
    assert any("/data" in volume for volume in services["redis"].get("volumes", []))


@pytest.mark.parametrize("path", UNITS, ids=_rel)
def test_systemd_unit(path: Path) -> None:
    keys = _units()[path.name]
    assert keys.get("Service.KillSignal") == ["SIGTERM"]
    assert keys.get("Service.Restart") == ["always"]
    assert keys.get("Service.EnvironmentFile"), "no EnvironmentFile="
    assert re.fullmatch(r"\d+", keys.get("Service.TimeoutStopSec", [""])[-1]), "TimeoutStopSec"
    (exec_start,) = keys["Service.ExecStart"]
    assert exec_start.startswith("/"), "ExecStart needs an absolute path"


def _dockerignore() -> list[str]:
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    return [line.strip().strip("/") for line in lines
            if line.strip() and not line.startswith("#")]


def _ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        for pattern in patterns:
            if fnmatch.fnmatch(prefix, pattern) or (
                    pattern.startswith("**/") and fnmatch.fnmatch(parts[i - 1], pattern[3:])):
                return True
    return False


def test_dockerfile_copies_existing_files_and_runs_a_known_program() -> None:
    instructions = _dockerfile()
    assert instructions[0][0] == "FROM" and instructions[0][1].startswith("python:3.11-slim")
    patterns = _dockerignore()
    assert not any(p.startswith("!") for p in patterns), "negations are not handled here"
    copied = []
    for word, args in instructions:
        if word not in ("COPY", "ADD"):
            continue
        argv = _docker_argv(args) if args.startswith("[") else shlex.split(args)
        flags = [a for a in argv if a.startswith("--")]
        if any(flag.startswith("--from") for flag in flags):
            continue  # from another stage or image, not from the repository
        for source in [a for a in argv if not a.startswith("--")][:-1]:
            assert list(ROOT.glob(source.rstrip("/"))), f"COPY source {source} does not exist"
            assert not _ignored(source, patterns), f"COPY source {source} is .dockerignored"
            copied.append(source.rstrip("/"))
    assert {"celery_durable", "setup.cfg", "pyproject.toml", "deploy/proj"} <= set(copied)
    assert any(word == "RUN" and "pip install ." in args for word, args in instructions)
    # The program that runs: the ENTRYPOINT's if there is one, else the CMD's.
    run = [args for word, args in instructions if word == "ENTRYPOINT"] \
        or [args for word, args in instructions if word == "CMD"]
    assert run, "no CMD or ENTRYPOINT"
    assert Path(_shell(_docker_argv(run[-1]))[0]).name in ("celery", "gunicorn")


def test_image_user_is_the_kubernetes_user() -> None:
    users = [args for word, args in _dockerfile() if word == "USER"]
    assert users, "the image runs as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and uid != "0", f"USER {users[-1]}: not a numeric non-root uid"
    for where, pod, container in _k8s_containers():
        context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
        assert context.get("runAsNonRoot") is True, where
        assert str(context.get("runAsUser")) == uid, f"{where}: runAsUser is not {uid}"
