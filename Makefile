# Quick start: `make demo` and `make test` create (or reuse) .venv and install fastmlp into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fastmlp-installed

.PHONY: demo test bench clean clean-cache

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "fastmlp needs Python 3.11 or newer, found " + sys.version.split()[0])'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m fastmlp demo

# two pytest workers, a test module each at a time: a fresh clone spends most of its run compiling
# kernels (one core each), 5.5 minutes instead of 8 on a 2-core machine; they share the Numba cache,
# which writes each file whole (a temporary file, then a rename)
test: $(STAMP)
	$(PY) -m pytest -q --benchmark-disable -n 2 --dist loadfile

# writes results/benchmarks.csv and results/speedup.png, then compares with the CSV as it was
bench: $(STAMP)
	$(PY) -m pytest benchmarks --benchmark-only

# Numba invalidates a cached kernel when its own file changes, not when a kernel it calls (in another
# module of fastmlp/kernels/) does: after editing the kernels, drop the cache.
clean-cache:
	find fastmlp -name '*.nbi' -delete -o -name '*.nbc' -delete

clean: clean-cache
	rm -rf $(VENV) .pytest_cache .benchmarks runs
