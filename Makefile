# celery_durable developer tasks. CI runs `make test` (see .ci/run).

PY ?= python3
VENV = .venv
VENV_PY = $(VENV)/bin/python
STAMP = $(VENV)/.installed-stamp
DEV_STAMP = $(VENV)/.dev-installed-stamp
PYTEST_ARGS ?=
LINT_PATHS = celery_durable tests bench examples

.PHONY: venv test lint bench bench-peers soak demo clean browser

# venv: create .venv (once) and install the package editable with test extras;
# re-installs whenever setup.cfg or pyproject.toml is newer than the stamp.
venv: $(STAMP)

$(VENV_PY):
	$(PY) -m venv $(VENV)
	$(VENV_PY) -m pip install --quiet --upgrade pip

$(STAMP): $(VENV_PY) setup.cfg pyproject.toml
	$(VENV_PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# test: run the pytest suite (extra options: make test PYTEST_ARGS='-k foo -x'), then the
# examples' own tests as a user runs them: the pytest plugin, no Redis configured.
test: venv browser
	$(VENV_PY) -m pytest $(PYTEST_ARGS)
	cd examples && env -u REDIS_URL ../$(VENV_PY) -m pytest -p no:cacheprovider tests

# browser: Debian's Chromium for tests/viewer/test_browser.py, installed when running as
# root with apt (as CI does); elsewhere those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "browser: could not install chromium; the browser tests will skip"

# lint: install the dev extras, then ruff over the source dirs, mypy over the package and
# the import contracts of pyproject.toml (the layering: engine < store < core < adapters).
lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check $$(for d in $(LINT_PATHS); do [ -d "$$d" ] && echo "$$d"; done)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

$(DEV_STAMP): $(STAMP)
	$(VENV_PY) -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

# bench: every case of bench/README.md in one table, durable beside its Celery baseline
# measured in the same run (alternated pairs, medians); writes bench/results/latest.json.
# The issue's sizes (10,000 sleepers, 100,000 listed runs): make bench BENCH_ARGS=--full.
bench: venv
	$(VENV_PY) bench/run.py $(BENCH_ARGS)

# bench-peers: durable beside DBOS Transact and pyworkflow-engine, each installed in its own
# venv under bench/.peers/; a peer that cannot run (no PostgreSQL, no PyPI) is skipped.
bench-peers: venv
	$(VENV_PY) bench/peers.py $(BENCH_ARGS)

# soak: run only tests marked `soak`; "no tests collected" (pytest exit 5) is not a failure.
soak: venv
	$(VENV_PY) -m pytest -m soak tests $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "soak: no soak tests collected"; exit 0; fi; \
	exit $$rc

# demo: run the example workflow demo.
demo: venv
	$(VENV_PY) -m examples.demo

# clean: remove the virtualenv, build output and tool caches.
clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
