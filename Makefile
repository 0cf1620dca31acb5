# The few verbs people use. Each works on a fresh machine: it creates the virtual environment, installs the
# project, and installs the Debian packages it needs where apt is available.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODELS ?= models
PROFILE ?= default
DATA_DIR ?= /usr/share/datasets/fashion-mnist
APT_PACKAGES := dataset-fashion-mnist prometheus wrk

.PHONY: help install system-deps train demo serve test lint format clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[train,dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with its training and dev extras

system-deps: ## install the Debian packages (Fashion-MNIST, prometheus, wrk) where apt is available
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

demo: train ## train (if needed), then print where the report is
	@echo "distillation report: reports/distillation.md"

serve: install ## serve the model repository in the foreground
	$(PY) -m service --models $(MODELS)

test: install system-deps ## run the whole test suite
	$(PY) -m pytest

lint: install ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
