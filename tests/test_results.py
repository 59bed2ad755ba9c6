"""The results CSV writer: columns, atomic write, merge of a subset run."""

import pathlib

import numpy as np
import pandas as pd
import pytest

from fastmlp import results
from fastmlp.files import atomic_path


def fake_json(cases):
    """A pytest-benchmark JSON document with one benchmark per (backend, n_hidden, median)."""
    benchmarks = []
    for backend, n_hidden, median in cases:
        info = dict(operation="step", backend=backend, dtype="float64", n_samples=1000, n_inputs=2,
                    n_hidden=n_hidden, n_outputs=2, threads=2 if backend == "numba" else 1,
                    max_abs_err=1e-16 if backend == "numba" else None, compile_s=0.5)
        stats = dict(rounds=5, min=median * 0.9, median=median, mean=median, stddev=0.0, iqr=0.0)
        benchmarks.append(dict(extra_info=info, stats=stats))
    return dict(benchmarks=benchmarks, machine_info={"cpu": {"brand_raw": "test cpu"}},
                commit_info={"id": "abcdef1234567890", "dirty": False}, datetime="2026-01-01T00:00:00")


def test_rows_have_every_column_and_speedups():
    rows = results.rows_from_benchmark_json(fake_json([("numpy", 16, 2.0), ("numba", 16, 0.5)]))
    assert list(rows.columns) == results.COLUMNS
    assert rows.set_index("backend")["speedup_vs_reference"].to_dict() == {"numpy": 1.0, "numba": 4.0}
    assert rows["commit"].iloc[0] == "abcdef123456" and rows["cpu"].iloc[0] == "test cpu"


def test_merge_replaces_only_the_subset(tmp_path):
    path = tmp_path / "benchmarks.csv"
    first = results.rows_from_benchmark_json(fake_json(
        [("numpy", 16, 2.0), ("numba", 16, 0.5), ("numpy", 128, 8.0), ("numba", 128, 1.0)]))
    results.merge_results(first, path)
    subset = results.rows_from_benchmark_json(fake_json([("numpy", 128, 9.0), ("numba", 128, 0.9)]))
    merged = results.merge_results(subset, path)
    on_disk = pd.read_csv(path)
    assert len(on_disk) == 4 and list(on_disk.columns) == results.COLUMNS
    medians = on_disk.set_index(["backend", "n_hidden"])["median_s"]
    assert medians[("numba", 16)] == 0.5 and medians[("numba", 128)] == 0.9
    assert len(merged) == 4
    table = results.regression_table(subset, first)
    assert table["ratio_to_before"].round(3).tolist() == [0.9, 1.125]


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    path = tmp_path / "benchmarks.csv"
    path.write_text("old contents\n")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half a fi")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old contents\n"
    assert [p.name for p in tmp_path.iterdir()] == ["benchmarks.csv"]
    with atomic_path(path) as tmp:
        tmp.write_text("new contents\n")
    assert path.read_text() == "new contents\n"
    assert path.stat().st_mode & 0o644 == 0o644           # readable like any file, not mkstemp's 0600


def test_speedup_plot_writes_a_png(tmp_path):
    rows = results.rows_from_benchmark_json(fake_json([("numpy", 16, 2.0), ("numba", 16, 0.5),
                                                       ("numpy", 128, 8.0), ("numba", 128, 1.0)]))
    path = results.speedup_plot(rows, tmp_path / "speedup.png")
    assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"


def test_fraction_of_peak_speed_table_and_summary_with_peers(tmp_path):
    rows = results.rows_from_benchmark_json(fake_json(
        [("numpy", 16, 2.0), ("numba", 16, 0.5), ("torch", 16, 1.5), ("jax", 16, 0.25)]))
    rows["gflops"] = [1.0, 4.0, 4 / 3, 8.0]
    peak = rows.iloc[:1].copy()
    peak[["operation", "backend", "gflops", "sizes"]] = ["peak_gemm", "blas", 40.0, "2048-2048"]
    merged = results.merge_results(pd.concat([rows, peak], ignore_index=True), tmp_path / "b.csv")
    fractions = merged.set_index(["operation", "backend"])["fraction_of_peak"]
    assert fractions[("step", "numba")] == pytest.approx(0.1) and np.isnan(fractions[("peak_gemm", "blas")])
    table = results.speed_table(merged)
    assert "| step 1,000 x (2, 16, 2) | 2,000 | 500 | 1,500 | 250 | 3.0x | 0.5x | 4.0x | 10% |" in table
    summary = results.summary(merged)
    assert "peak_gemm float64: 40.0 GFLOP/s" in summary
    assert "| step 1,000 x (2, 16, 2) | jax | 3.0x | 0.5x | 4.0x | 10% |" in summary


def test_readme_tables_are_generated_from_the_committed_csvs(tmp_path):
    """The README's tables are what `python -m fastmlp.results` makes of results/*.csv."""
    import shutil
    root = pathlib.Path(__file__).resolve().parents[1]
    shutil.copy(root / "README.md", tmp_path / "README.md")
    shutil.copytree(root / "results", tmp_path / "results")
    results.main([str(tmp_path / "README.md")])
    assert (tmp_path / "README.md").read_text() == (root / "README.md").read_text()


def test_update_readme_replaces_only_its_section_and_needs_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- race:start -->\nold\n<!-- race:end -->\noutro\n")
    results.update_readme(readme, {"race": "| new |"})
    assert readme.read_text() == "intro\n<!-- race:start -->\n| new |\n<!-- race:end -->\noutro\n"
    with pytest.raises(ValueError, match="no <!-- speed:start -->"):
        results.update_readme(readme, {"speed": "x"})
    assert "| new |" in readme.read_text()


def test_merge_identifies_rows_whose_empty_key_came_back_from_the_csv_as_missing(tmp_path):
    """A row with an empty key column (activation of a network without hidden layer) read back from
    the CSV as NaN is the same row as the new one with "": replaced, not kept twice."""
    path = tmp_path / "benchmarks.csv"
    rows = results.rows_from_benchmark_json(fake_json([("numba", 16, 0.5)]))
    rows[["sizes", "activation"]] = ["2-2", ""]
    results.merge_results(rows, path)
    again = rows.copy()
    again["median_s"] = 0.25
    merged = results.merge_results(again, path)
    assert len(merged) == 1 and pd.read_csv(path)["median_s"].tolist() == [0.25]
