# The two commands: `make demo` (the main job) and `make test` (the whole suite).
# Both install what they need: the virtualenv, Python packages, and the control-plane binaries
# (built from Go modules by hack/install-tools.sh into ~/.cache/llm-operator/bin/<version>/).

VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: all venv tools deps test unit lint crds manifests bench demo cluster-up cluster-down clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[lab,dev]'
	touch $@

venv: $(STAMP)

tools:
	bash hack/install-tools.sh

deps:
	bash hack/install-deps.sh

lint: venv
	$(VENV)/bin/ruff check operator tests hack
	$(VENV)/bin/ruff format --check operator tests hack
	$(VENV)/bin/mypy

test: venv tools deps lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

unit: venv
	$(VENV)/bin/pytest -m "not cluster and not prometheus" $(PYTEST_ARGS)

crds: venv
	$(VENV)/bin/llm-operator crd

# manifests/install.yaml: the chart rendered with its default values (CRDs included).
manifests: crds tools
	bash hack/render-manifests.sh > manifests/install.yaml

# The scenario suite: bursty, bursty-minutes, long-context, diurnal, waves, flash-crowd,
# heavy-tail and idle-hours families, and the Azure trace at x4 and x16 when ../shared/data/traces/ has it; one scoreboard
# each and a summary (docs/benchmark.md). docs/bench/suite holds the committed run
# (BENCH_OUT=docs/bench).
BENCH_OUT ?= .cache/bench
bench: venv
	$(VENV)/bin/llm-lab bench suite --out $(BENCH_OUT)/suite

demo: venv tools deps
	$(VENV)/bin/llm-lab demo

cluster-up: venv tools
	$(VENV)/bin/llm-lab cluster up

cluster-down: venv
	$(VENV)/bin/llm-lab cluster down

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
