# Two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHECKED := core jobs training dags orchestration demo lmforge
export PYTHONPATH := $(CURDIR)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: venv demo test bench bench-dedup-scale lint typecheck check format clean

venv: $(STAMP)

# Reinstalls only when a lock or pyproject.toml changes. The runtime lock (requirements.txt) and the
# dev tools (requirements-dev.txt), then `pip install -e .`, which puts the `lmforge` command into
# .venv/bin (no dependencies: they are the locks' pins).
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: venv
	$(VENV)/bin/lmforge demo

test: venv
	$(PY) -m pytest -q tests

bench: venv
	$(PY) -m scripts.bench

# The near_dedup stage on 1 GB of real text with edited copies: time, throughput, peak memory.
bench-dedup-scale: venv
	$(PY) -m scripts.dedup_scale --gb 1.0

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy $(CHECKED)

# What CI runs before the tests.
check: lint typecheck

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf .data .airflow .demo .bench
