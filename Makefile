# Two commands matter: `make run` (set up, start the server with a demo board) and
# `make test` (set up, run every check and test). Everything else is a helper of those.
#
# Setting up installs exactly what uv.lock pins (versions and sha256 hashes), with the uv that
# tools/uv.txt pins (version and hashes), and nothing else: `make lock` after changing the
# dependencies in pyproject.toml, then commit uv.lock.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# uv lives in its own venv, so that `uv sync` can make .venv exactly what uv.lock says.
TOOLS := .venv-tools
UV := $(TOOLS)/bin/uv

# uv makes .venv with this machine's $(PYTHON) and never downloads a Python of its own.
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test lint typecheck pytest bench bench-fanout bench-claims bench-requests bench-mcp bench-webhooks bench-scale bench-limits install sync sync-run check-lock \
	old-venv lock lock-upgrade tools clean chromium nginx

# The UI tests drive Debian's Chromium (Playwright's own browser download is not used).
CHROMIUM := /usr/bin/chromium
# The scale-out tests put Debian's nginx in front of several servers (tests/support/nginx.py).
NGINX := /usr/sbin/nginx

$(UV): tools/uv.txt
	rm -rf $(TOOLS)
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --require-hashes --no-deps -r tools/uv.txt
	touch $@

tools: $(UV)

# Runs on every target that uses .venv: cheap (a fraction of a second), and the reason a stale
# uv.lock can never go unnoticed.
check-lock: $(UV)
	@$(UV) lock --check || { \
		echo >&2 "make: uv.lock does not match pyproject.toml."; \
		echo >&2 "make: run 'make lock' to update uv.lock, then commit it with pyproject.toml."; \
		exit 1; }

# A .venv made before the lock (python -m venv and pip: it has pip and setuptools, which uv sync
# leaves alone) is made anew, so that .venv holds only what uv.lock says.
old-venv:
	@if [ -f $(VENV)/pyvenv.cfg ] && ! grep -q '^uv = ' $(VENV)/pyvenv.cfg; then \
		echo "$(VENV) was not made by uv: removing it"; rm -rf $(VENV); fi

# Everything in uv.lock (Taskline, the dev and build groups), exactly: anything else is removed.
# A no-op when .venv already matches.
sync: check-lock old-venv
	$(UV) sync --locked

# What `make run` needs (no dev tools), leaving whatever else .venv has (--inexact), so `make run`
# after `make test` does not uninstall the test tools.
sync-run: check-lock old-venv
	$(UV) sync --locked --no-dev --inexact

install: sync

# Refresh uv.lock after a change to pyproject.toml, keeping every other pin as it is.
lock: $(UV)
	$(UV) lock

# Move every pin to the newest version pyproject.toml allows.
lock-upgrade: $(UV)
	$(UV) lock --upgrade

run: sync-run
	$(BIN)/taskline serve --demo

test: lint typecheck pytest

lint: sync
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: sync
	$(BIN)/mypy

pytest: sync chromium nginx
	$(BIN)/pytest

# Install Chromium when it is missing and we may (root); otherwise the UI tests say why they skip.
chromium:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ]; then \
		echo "installing Chromium for the UI tests"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	fi

# Install nginx when it is missing and we may (root); the tests run their own nginx (own
# config, port, prefix and pid file), never the system's service, which is not started here.
nginx:
	@if [ ! -x $(NGINX) ] && [ "$$(id -u)" = 0 ]; then \
		echo "installing nginx for the scale-out tests"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx; \
	fi

bench: sync
	$(BIN)/python benchmarks/api.py
bench-fanout: sync ; $(BIN)/python benchmarks/fanout.py
bench-claims: sync ; $(BIN)/python benchmarks/claims.py
bench-requests: sync ; $(BIN)/python benchmarks/requests.py
bench-mcp: sync ; $(BIN)/python benchmarks/mcp_calls.py
bench-webhooks: sync ; $(BIN)/python benchmarks/webhooks.py
# several processes on PostgreSQL + Redis, nginx; BENCH_ARGS=--quick for the 2-minute run
bench-scale: sync nginx ; $(BIN)/python benchmarks/scale.py $(BENCH_ARGS)
# a rate limit's cost per request: this process's bucket beside the shared one in Redis
bench-limits: sync ; $(BIN)/python benchmarks/limits.py

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
