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

# The compose stack (docker-compose.yml). Needs Docker Engine with the Compose v2 plugin; there is
# none in the sandbox this project is developed in, where tests/test_infra.py validates it offline.
# `scripts.compose_env` writes .env with generated secrets when it is missing (never overwrites it).
define docker_checks
	@command -v docker >/dev/null 2>&1 || { echo "make $@: needs Docker Engine with the Compose v2 plugin; 'docker' is not on PATH" >&2; exit 1; }
	@docker compose version >/dev/null 2>&1 || { echo "make $@: 'docker compose' (the Compose v2 plugin) is missing" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "make $@: the Docker daemon is not reachable (is it running? may this user use it?)" >&2; exit 1; }
endef
STACK_URLS := Airflow http://localhost:8080  Spark http://localhost:8081  Ray http://localhost:8265  MinIO http://localhost:9001  TensorBoard http://localhost:6006

.PHONY: up up-gpu down
up:
	$(docker_checks)
	$(PYTHON) -m scripts.compose_env
	docker compose up -d --build --wait --wait-timeout 900
	@echo "$(STACK_URLS)"

# Adds the GPU Ray worker (compose profile `gpu`; NVIDIA Container Toolkit on the host).
up-gpu:
	$(docker_checks)
	$(PYTHON) -m scripts.compose_env
	docker compose --profile gpu up -d --build --wait --wait-timeout 900
	@echo "$(STACK_URLS)"

down:
	docker compose --profile gpu down

# A small CPU scaling-law sweep (3 IsoFLOP budgets x 3 sizes) on the demo run's shards (byte-level
# shards of this repository when `make demo` has not run): fitted exponents and a recommendation.
.PHONY: sweep
sweep: venv
	$(PY) -m scripts.sweep_demo
