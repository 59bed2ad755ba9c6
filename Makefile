# Quick start: `make demo` and `make test` create (or reuse) .venv and install fastmlp into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fastmlp-installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "fastmlp needs Python 3.11 or newer, found " + sys.version.split()[0])'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m fastmlp demo

test: $(STAMP)
	$(PY) -m pytest -q --benchmark-disable

# writes results/benchmarks.csv and results/speedup.png, then compares with the CSV as it was
bench: $(STAMP)
	$(PY) -m pytest benchmarks --benchmark-only

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks runs
