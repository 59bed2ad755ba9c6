"""The results CSV writer: columns, atomic write, merge of a subset run."""

import pathlib

import numpy as np
import pandas as pd
import pytest

from fastmlp import results
from fastmlp.files import atomic_path


def fake_json(cases, cpu="test cpu", flags=("avx2",), when="2026-01-01T00:00:00", commit="abcdef1234567890"):
    """A pytest-benchmark JSON document with one benchmark per (backend, n_hidden, median)."""
    benchmarks = []
    for backend, n_hidden, median in cases:
        info = dict(operation="step", backend=backend, dtype="float64", n_samples=1000, n_inputs=2,
                    n_hidden=n_hidden, n_outputs=2, threads=2 if backend == "numba" else 1,
                    max_abs_err=1e-16 if backend == "numba" else None, compile_s=0.5)
        stats = dict(rounds=5, min=median * 0.9, median=median, mean=median, stddev=0.0, iqr=0.0)
        benchmarks.append(dict(extra_info=info, stats=stats))
    return dict(benchmarks=benchmarks, machine_info={"cpu": {"brand_raw": cpu, "flags": list(flags), "count": 2}},
                commit_info={"id": commit, "dirty": False}, datetime=when)


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
    merged = results.merge_results(results.add_fraction_of_peak(pd.concat([rows, peak], ignore_index=True)),
                                   tmp_path / "b.csv")
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


def test_machine_ids_name_the_kind_of_machine():
    skx = "openblas:SkylakeX;openblas:SkylakeX"
    assert results.machine_id("Intel(R) Xeon(R) Processor", ["avx2", "avx512f"], 2, skx) == "xeon-avx512-2c-skylakex"
    assert results.machine_id("AMD EPYC 7763 64-Core Processor", ["avx2"], 2, "openblas:Haswell") == "epyc-avx2-2c-haswell"
    assert results.machine_id("", [], "?", "none") == "cpu-unknown-?c-none"
    rows = results.rows_from_benchmark_json(fake_json([("numba", 16, 0.5)], cpu="AMD EPYC", flags=["avx512f"]))
    assert rows["machine"].tolist() == ["epyc-avx512-2c-unknown"]
    assert rows["run_id"].tolist() == ["20260101T000000-abcdef1"]


def two_machines(tmp_path):
    """A CSV holding a whole run on one machine (with its peak), then a partial run on another."""
    path = tmp_path / "benchmarks.csv"
    first = results.rows_from_benchmark_json(fake_json(
        [("numpy", 16, 2.0), ("numba", 16, 0.5), ("torch", 16, 1.0), ("numpy", 128, 8.0), ("numba", 128, 1.0)],
        cpu="Intel Xeon", flags=["avx512f"]))
    first["gflops"] = [1.0, 4.0, 2.0, 1.0, 8.0]
    peak = first.iloc[:1].copy()
    peak[["operation", "backend", "gflops", "sizes"]] = ["peak_gemm", "blas", 40.0, "2048-2048"]
    results.merge_results(results.add_fraction_of_peak(pd.concat([first, peak], ignore_index=True)), path)
    before = path.read_text().splitlines()
    second = results.rows_from_benchmark_json(fake_json(
        [("numpy", 16, 4.0), ("numba", 16, 2.0), ("torch", 16, 1.0)], cpu="AMD EPYC", when="2026-02-01T00:00:00",
        commit="1234567abcdef"))
    second["gflops"] = [0.5, 1.0, 2.0]
    merged = results.merge_results(results.add_fraction_of_peak(second), path)
    return path, before, merged


def test_a_partial_run_on_another_machine_leaves_every_row_byte_for_byte(tmp_path):
    path, before, merged = two_machines(tmp_path)
    after = path.read_text().splitlines()
    assert after[0] == before[0]                                        # the header
    assert set(before) <= set(after) and len(after) == len(before) + 3  # every row kept, as it was
    assert sorted(merged["machine"].unique()) == ["epyc-avx2-2c-unknown", "xeon-avx512-2c-unknown"]
    assert len(results.runs(merged)) == 2
    again = results.rows_from_benchmark_json(fake_json([("numba", 16, 1.5)], cpu="AMD EPYC",
                                                       when="2026-03-01T00:00:00"))
    results.merge_results(again, path)                                  # the same machine: replaces its row only
    final = pd.read_csv(path)
    epyc = final[final["machine"] == "epyc-avx2-2c-unknown"].set_index("backend")
    assert epyc.loc["numba", "median_s"] == 1.5 and epyc.loc["numpy", "median_s"] == 4.0
    assert set(before[1:]) <= set(path.read_text().splitlines())


def test_derived_columns_come_from_the_rows_own_run(tmp_path):
    _, _, merged = two_machines(tmp_path)
    xeon = merged[merged["machine"] == "xeon-avx512-2c-unknown"].set_index(["backend", "n_hidden"])
    epyc = merged[merged["machine"] == "epyc-avx2-2c-unknown"].set_index(["backend", "n_hidden"])
    assert xeon.loc[("numba", 16), "fraction_of_peak"] == pytest.approx(0.1)       # its own run's peak
    assert np.isnan(epyc.loc[("numba", 16), "fraction_of_peak"])                 # no peak in its run: none
    assert xeon.loc[("numba", 16), "speedup_vs_reference"] == 4.0
    assert epyc.loc[("numba", 16), "speedup_vs_reference"] == 2.0                 # not the xeon's numpy


def test_tables_never_mix_runs(tmp_path):
    _, _, merged = two_machines(tmp_path)
    with pytest.raises(ValueError, match="rows of 2 runs"):
        results.case_pivot(merged, "float64")
    tables = results.speed_tables(merged)
    assert tables.count("**") == 4                                               # a heading per machine
    epyc_part, xeon_part = tables.split("**xeon")                                # machines in id order
    assert "| step 1,000 x (2, 16, 2) | 4,000 | 2,000 | 1,000 | 0.5x | 2.0x |  |" in epyc_part
    assert "| step 1,000 x (2, 16, 2) | 2,000 | 500 | 1,000 | 2.0x | 4.0x | 10% |" in xeon_part
    summary = results.summary(merged)
    assert summary.count("# xeon-avx512-2c-unknown") == 1 and summary.count("# epyc-avx2-2c-unknown") == 1
    assert "peak_gemm float64: 40.0 GFLOP/s" in summary.split("# xeon")[1]


def test_a_csv_from_before_machines_gets_them_and_keeps_its_values(tmp_path):
    path = tmp_path / "benchmarks.csv"
    old = results.rows_from_benchmark_json(fake_json([("numpy", 16, 2.0), ("numba", 16, 0.5)]))
    old["blas"] = "openblas:SkylakeX;openblas:SkylakeX"
    old.drop(columns=["machine", "run_id", "alone_median_s"]).to_csv(path, index=False)
    values = pd.read_csv(path, dtype=str, keep_default_na=False)
    merged = results.merge_results(pd.DataFrame(columns=results.COLUMNS), path)
    assert merged["machine"].tolist() == ["test-avx512-2c-skylakex"] * 2
    assert merged["run_id"].tolist() == ["20260101T000000-abcdef1"] * 2
    now = pd.read_csv(path, dtype=str, keep_default_na=False)[values.columns]
    pd.testing.assert_frame_equal(now.sort_values("backend", ignore_index=True),
                                  values.sort_values("backend", ignore_index=True))


def test_compare_flags_changes_beyond_the_spread_and_guards_a_branch(tmp_path, capsys):
    from fastmlp import cli
    base = results.rows_from_benchmark_json(fake_json([("numba", 16, 1.0), ("numba", 128, 1.0), ("numpy", 16, 1.0)]))
    new = results.rows_from_benchmark_json(fake_json([("numba", 16, 1.5), ("numba", 128, 1.01), ("numpy", 16, 0.5)],
                                                     when="2026-02-01T00:00:00", commit="fedcba987654"))
    base["iqr_s"], new["iqr_s"] = 0.05, 0.05
    table = results.compare(base, new).set_index("label")["change"]
    assert table.str.startswith("").all() and sorted(table) == ["", "faster", "slower"]
    path = tmp_path / "b.csv"
    results.merge_results(base, path)
    other = tmp_path / "new.csv"
    results.merge_results(new, other)
    assert cli.main(["compare", f"{path}", f"{other}"]) == 0
    assert "1 slower and 1 faster beyond their spread, 1 within it" in capsys.readouterr().out
    assert cli.main(["compare", str(path), str(other), "--fail-above", "1.2"]) == 1
    assert cli.main(["compare", str(path), str(other), "--fail-above", "2"]) == 0
    assert cli.main(["compare", "nosuchrun", "20260101", "--csv", str(path)]) == 2
    assert "names no run" in capsys.readouterr().err


def test_fastmlp_bench_measures_a_new_network_with_the_harness(tmp_path, capsys):
    """The command runs the benchmark harness on one network (forward, step, train_loop for each backend,
    each checked against the reference) and this machine's peak, in one run, and prints the table."""
    pytest.importorskip("pytest_benchmark")
    from fastmlp import cli
    out = tmp_path / "mine.csv"
    assert cli.main(["bench", "--sizes", "6,5,3", "--batch", "16", "--activation", "tanh", "--backends",
                     "numba,numpy", "--steps", "20", "--dtype", "float64", "--out", str(out)]) == 0
    rows = pd.read_csv(out)
    assert rows["run_id"].nunique() == 1
    measured = rows[rows["operation"] != "peak_gemm"]
    assert sorted(set(zip(measured["operation"], measured["backend"]))) == [
        (op, b) for op in ("forward", "step", "train_loop") for b in ("numba", "numpy")]
    assert (measured["sizes"] == "6-5-3").all() and (measured["n_samples"] == 16).all()
    numba = measured[measured["backend"] == "numba"]
    assert (numba["max_rel_err"] <= 1e-9).all() and numba["fraction_of_peak"].notna().all()
    printed = capsys.readouterr().out
    assert "vs_fastmlp" in printed and "fraction_of_peak" in printed


def test_side_csvs_keep_other_machines_rows(tmp_path):
    """bench_bricks/bench_dask/bench_sparse's CSVs: a run replaces its own machine's rows only; the
    others come back byte for byte."""
    path = tmp_path / "side.csv"
    path.write_text("machine,case,seconds,note\nintel-avx512-2c,a,0.1000000000000000055,\"x, y\"\n"
                    "amd-avx2-2c,a,2.5,\namd-avx2-2c,b,3.5,\n")
    results.merge_machine_rows(pd.DataFrame({"machine": ["amd-avx2-2c"], "case": ["a"], "seconds": [1.25],
                                             "note": [np.nan]}), path)
    lines = path.read_text().splitlines()
    assert lines == ["machine,case,seconds,note", "intel-avx512-2c,a,0.1000000000000000055,\"x, y\"",
                     "amd-avx2-2c,a,1.25,"]
    fresh = tmp_path / "fresh.csv"
    results.merge_machine_rows(pd.DataFrame({"machine": ["m"], "case": ["a"]}), fresh)
    assert fresh.read_text().splitlines() == ["machine,case", "m,a"]
