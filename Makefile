# Two entry points: `make quickstart` (build a city's graph, run the shipped model on it zero-shot,
# fine-tune, predict) and `make test`.
# Both create or reuse .venv, install torch==2.13.0 first (the CPU wheel), then stgraph with extras.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_PIN := torch==2.13.0
# Extra pip arguments for the torch step, e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
# on a machine whose pip does not already find the CPU wheel (here it lies on the local disk).
TORCH_PIP_ARGS ?=
EXTRAS ?= dev,raster,osm
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export STGRAPH_DATA ?= $(abspath ../shared/data)

.PHONY: venv quickstart test test-all lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_PIN) $(TORCH_PIP_ARGS)
	echo "$(TORCH_PIN)" > $(VENV)/torch-constraint.txt
	PIP_CONSTRAINT=$(abspath $(VENV))/torch-constraint.txt $(PIP) install --quiet -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/stgraph quickstart

# pytest exits 5 when it collected no test; that is not a failure of the code under test.
test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

test-all: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check stgraph graph_builders tests experiments
	$(VENV)/bin/ruff format --check stgraph graph_builders tests experiments

clean:
	rm -rf $(VENV) build *.egg-info
