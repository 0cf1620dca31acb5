# The few verbs people use. Each works on a fresh machine: it creates the virtual environment, installs the
# project, and installs the Debian packages it needs where apt is available.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODELS ?= models
PROFILE ?= default
DATA_DIR ?= /usr/share/datasets/fashion-mnist
APT_PACKAGES := dataset-fashion-mnist prometheus wrk chromium

.PHONY: help install system-deps train distill demo serve test lint format clean bench bench-train capacity loadtest up down soak

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[train,dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with its training and dev extras

system-deps: ## install the Debian packages (Fashion-MNIST, prometheus, wrk, chromium) where apt is available
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "missing Debian packages:$$missing (install them, or pass --data-dir for your own data)" >&2; \
	fi

train: install system-deps ## build the model repository (PROFILE=default|quick, MODELS=dir)
	$(PY) -m distill_training pipeline --profile $(PROFILE) --out $(MODELS) --data-dir $(DATA_DIR)

TEACHER ?=
DATA ?=
NAME ?=
distill: install ## distil your ONNX teacher on your data: TEACHER=model.onnx DATA=dir [NAME=] [PROFILE=] [MODELS=]
	@test -n "$(TEACHER)" -a -n "$(DATA)" || { echo "usage: make distill TEACHER=model.onnx DATA=folder [NAME=name]" >&2; exit 2; }
	$(PY) -m distill_training distill --teacher-onnx $(TEACHER) --data $(DATA) --out $(MODELS) --profile $(PROFILE) \
		$(if $(NAME),--name $(NAME))

demo: train ## train (if needed), serve, load student and teacher with locust, find their capacity, write reports/speedup.md
	$(PY) -m distill_bench demo --models $(MODELS) --out reports --data-dir $(DATA_DIR)
	@echo "distillation report: reports/distillation.md"

SLO_P99_MS ?= 50
capacity: install system-deps ## highest open-loop rate per model within p99 <= SLO_P99_MS, one core each: reports/capacity.md
	$(PY) -m distill_bench capacity --models $(MODELS) --out reports --slo-p99-ms $(SLO_P99_MS) --data-dir $(DATA_DIR)

bench: install system-deps ## floor vs onnxruntime vs the service under wrk, side by side: reports/bench.md
	$(PY) -m distill_bench bench --models $(MODELS) --out reports

bench-train: install system-deps ## one teacher epoch, 1 process x 2 threads vs torchrun 2 x 1: reports/bench-train.md
	$(PY) -m distill_training.bench_train --out reports --data-dir $(DATA_DIR)

HOST ?= http://127.0.0.1:8000
USERS ?= 16
SPAWN_RATE ?= 16
DURATION ?= 60s
TAGS ?= student teacher cascade compare
loadtest: install ## headless locust against a running service (HOST=...), CSV + HTML under reports/
	$(VENV)/bin/locust -f deploy/locust/locustfile.py --headless --host $(HOST) --users $(USERS) \
		--spawn-rate $(SPAWN_RATE) --run-time $(DURATION) --only-summary --data-dir $(DATA_DIR) \
		--csv reports/loadtest --html reports/loadtest.html --tags $(TAGS)

serve: install ## serve the model repository in the foreground
	$(PY) -m service --models $(MODELS)

test: install system-deps ## run the whole test suite
	$(PY) -m pytest

SOAK_MINUTES ?= 10
SOAK_USERS ?= 8
soak: install system-deps ## steady locust load on MODELS for SOAK_MINUTES: failures, p99 over time, RSS growth -> reports/soak.md
	$(PY) -m distill_bench soak --models $(MODELS) --out reports --minutes $(SOAK_MINUTES) --users $(SOAK_USERS) --data-dir $(DATA_DIR)

# `docker compose` (v2) where installed, else docker-compose (v1.29); the compose files are valid for both.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

up: ## build the images and start the compose stack: trainer -> api, prometheus, grafana
	$(COMPOSE) up -d --build

down: ## stop the compose stack (volumes stay; `docker compose down -v` drops models and metrics)
	$(COMPOSE) down

lint: install ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
