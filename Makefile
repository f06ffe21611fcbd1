# Mailslot developer commands. Everything installs into ./.venv (and the GPL
# MongoDB-wire test server into its own ./.venv-mongo, never into the package).

PYTHON ?= python3
VENV ?= .venv
MONGO_VENV ?= .venv-mongo
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTEST_ARGS ?=
SECANTUS_VERSION := 0.7.0b3

.PHONY: serve test install install-test test-deps bench autoheal clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

install: $(VENV)/bin/python
	$(PIP) install -q -e .

install-test: $(VENV)/bin/python
	$(PIP) install -q -e '.[test]'

# The bench's packages, installed again only when setup.py changes (a pip run
# costs ~15 s of the bench's ten minutes).
$(VENV)/.bench-installed: setup.py | $(VENV)/bin/python
	$(PIP) install -q -e '.[test,bench]'
	touch $@

## Run the service on 127.0.0.1:8888 with the embedded SQLite store.
serve: install
	$(VENV)/bin/mailslot serve

## Install the test servers (redis-server, the MongoDB-wire server) and wrk
## (the bench's load generator; tests drive its scripts) if missing.
test-deps:
	@missing=""; \
	  command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	  command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	  [ -z "$$missing" ] || { echo "installing$$missing"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; }
	@# SecantusDB (GPL) is a test tool only: its own venv, never a dependency.
	@[ -x $(MONGO_VENV)/bin/python ] || $(PYTHON) -m venv $(MONGO_VENV)
	@$(MONGO_VENV)/bin/python -c "import importlib.metadata as m, sys; \
	  sys.exit(m.version('SecantusDB') != '$(SECANTUS_VERSION)')" 2>/dev/null || \
	  $(MONGO_VENV)/bin/pip install -q "SecantusDB==$(SECANTUS_VERSION)"

## Install everything the tests need, then run every test.
test: install-test test-deps
	$(PY) -m pytest $(PYTEST_ARGS)

## Benchmarks against the real server over loopback; results in bench/results/,
## then the report docs/benchmarks.md (+ docs/benchmarks/*.png) from the newest ones.
## Under 10 minutes in all: the throughput run's budget is 500 s, and the delivery
## run offers 100 and 500 msg/s (1000/s saturates this box; run it by hand).
bench: $(VENV)/.bench-installed test-deps
	$(PY) -m bench --budget 500
	$(PY) -m bench.delivery --rates 100 500 --seconds 8
	$(PY) -m bench.zaqar_bench
	$(PY) -m bench.report

## The auto-heal loop on one machine (examples/autoheal): alarm -> workflow -> Heat.
autoheal: install-test
	$(PY) -m examples.autoheal.run

clean:
	rm -rf $(VENV) $(MONGO_VENV) build *.egg-info
