# Quick start: `make demo` and `make test` create (or reuse) .venv and install fastmlp into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fastmlp-installed

.PHONY: demo test bench clean clean-cache

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "fastmlp needs Python 3.11 or newer, found " + sys.version.split()[0])'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-compile -e '.[dev]'
	touch $(STAMP)

# pip installs without byte-compiling every file it unpacks (torch's alone took most of a minute);
# Python then compiles what is imported, once, and keeps it, unless PYTHONDONTWRITEBYTECODE is set
# (as on this project's machines): there it would compile torch's, scikit-learn's and dask's sources
# again in every pytest worker and test subprocess (make test's tests 3m13s instead of 2m03s), and in
# every fresh Dask worker of the benchmarks (its first fit 1.6 s beyond the second instead of 0.7 s,
# mostly numba's own modules), so the targets that run Python let it write its bytecode.
demo test bench: export PYTHONDONTWRITEBYTECODE :=

demo: $(STAMP)
	$(PY) -m fastmlp demo

# The kernels compile first, float64 and float32 side by side (Numba compiles on one core: about 3.5
# minutes each on an empty cache on a 2-core machine, seconds once cached), so that the two pytest
# workers load them from the cache instead of each compiling the ones its tests reach first (the same
# ones, at the same time: 12 minutes in all before). Numba writes each cache file whole (a temporary
# file, then a rename). The workers take a test module each at a time.
test: $(STAMP)
	@echo "compiling fastmlp's kernels (or loading them from Numba's cache)"
	$(PY) -c 'import fastmlp; print("kernels ready, seconds:", fastmlp.warmup(("float32",)))' & \
	$(PY) -c 'import fastmlp; print("kernels ready, seconds:", fastmlp.warmup(("float64",)))' && wait $$!
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
