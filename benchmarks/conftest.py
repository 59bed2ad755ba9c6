"""The benchmark harness: grids, compile-time bookkeeping and results/benchmarks.csv.

`pytest --benchmark-only` (or `make bench`) times every case, checks each numba case against the
reference, and at the end writes results/benchmarks.csv (merged: only this run's cases are
replaced) and results/speedup.png, then prints this run against the committed CSV.
"""

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
JSON_DEFAULT = ROOT / ".benchmarks" / "last.json"


def pytest_addoption(parser):
    parser.addoption("--fastmlp-grid", choices=["small", "default", "full"], default=None,
                     help="benchmark grid: small (the default with --benchmark-disable, as in make "
                          "test), default (~10 min on 2 cores), full (adds N = 1e6 and H = 4096)")
    parser.addoption("--fastmlp-results", default=str(RESULTS / "benchmarks.csv"),
                     help="the CSV this run merges its rows into")
    parser.addoption("--fastmlp-case", default=None, metavar="N:SIZES:ACTIVATION:OUTPUT:LOSS",
                     help="forward, step and train_loop of this one network instead of the grid, e.g. "
                          "128:784,256,10:relu:softmax:cross_entropy (what `fastmlp bench` runs)")
    parser.addoption("--fastmlp-backends", default=None, metavar="B1,B2",
                     help="only these backends (numpy, minimal, numba, torch, jax, sklearn)")
    parser.addoption("--fastmlp-steps", type=int, default=None, help="steps of each train_loop (default 1,000)")


def pytest_configure(config):
    steps = config.getoption("--fastmlp-steps")
    if steps is not None:
        import bench_fastmlp
        if steps < 1:
            raise pytest.UsageError(f"--fastmlp-steps must be at least 1, got {steps}")
        bench_fastmlp.TRAIN_STEPS = steps
    disabled = config.getoption("benchmark_disable", False) or config.getoption("benchmark_skip", False)
    if not disabled and not config.getoption("benchmark_json", None):
        # pytest-benchmark only hands its data (extra_info included) to pytest_benchmark_update_json
        # when it writes JSON: ask for it by default
        JSON_DEFAULT.parent.mkdir(exist_ok=True)
        config.option.benchmark_json = JSON_DEFAULT


@pytest.fixture(scope="session")
def compile_seconds():
    """First-call seconds of each (operation, dtype) of the numba backend, measured once per session."""
    return {}


def pytest_benchmark_update_json(config, benchmarks, output_json):
    from fastmlp import results
    from fastmlp.files import atomic_path

    rows = results.rows_from_benchmark_json(output_json)
    if rows.empty:
        return
    path = pathlib.Path(config.getoption("--fastmlp-results"))
    try:
        import pandas as pd
        baseline = pd.read_csv(path)
    except FileNotFoundError:
        baseline = None
    merged = results.merge_results(rows, path)
    machine = rows["machine"].iloc[0]
    picture = results.speedup_plot(results.run_rows(merged, machine), path.with_name("speedup.png"))
    summary = path.with_name("summary.md")
    with atomic_path(summary) as tmp:
        tmp.write_text(results.summary(merged))
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    write = reporter.write_line if reporter else print
    write(f"\nfastmlp: wrote {len(rows)} rows of run {rows['run_id'].iloc[0]} on {machine} into {path}, {summary}"
          + (f" and {picture}" if picture else "") + "; python -m fastmlp.results regenerates the README's tables")
    if baseline is not None:
        table = results.regression_table(rows, baseline)
        write("fastmlp: this run against the CSV before it (ratio > 1: slower now)")
        write(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
