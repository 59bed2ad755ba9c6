"""Tidy benchmark results: rows from pytest-benchmark's JSON, the merged CSV, the speedup plot, the
regression table against the committed results, and the README's tables generated from the CSVs."""

import datetime
import pathlib
import platform
import re
import sys

import numpy as np
import pandas as pd

from .files import atomic_path, write_csv

KEY = ["operation", "backend", "dtype", "n_samples", "sizes", "activation", "output", "loss", "threads"]
ARCHITECTURE = ["n_inputs", "n_hidden", "n_outputs"]      # sizes' first three numbers, for filtering
COLUMNS = KEY + ARCHITECTURE + [
    "rounds", "min_s", "median_s", "mean_s", "stddev_s", "iqr_s", "speedup_vs_reference",
    "speedup_vs_minimal", "gflops", "fraction_of_peak",
    "max_abs_err", "max_rel_err", "test_score", "compile_s", "first_step_s", "import_s", "peak_rss_growth_mb",
    "alone_median_s", "cpu", "blas", "numpy_version", "numba_version",
    "commit", "timestamp",
]


def rows_from_benchmark_json(output_json):
    """One tidy row per benchmark of a pytest-benchmark JSON document (its extra_info included)."""
    machine = output_json.get("machine_info", {})
    commit = output_json.get("commit_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw") or platform.processor() or machine.get("machine", "")
    stamp = output_json.get("datetime") or datetime.datetime.now(datetime.timezone.utc).isoformat()
    rows = []
    for bench in output_json.get("benchmarks", []):
        info, stats = bench.get("extra_info", {}), bench["stats"]
        if "operation" not in info:
            continue
        row = {k: info.get(k) for k in KEY + ARCHITECTURE}
        flops = info.get("flops")
        row.update(gflops=flops / stats["median"] / 1e9 if flops else None,
            rounds=stats["rounds"], min_s=stats["min"], median_s=stats["median"], mean_s=stats["mean"],
            stddev_s=stats["stddev"], iqr_s=stats["iqr"], max_abs_err=info.get("max_abs_err"),
            max_rel_err=info.get("max_rel_err"), test_score=info.get("test_score"),
            compile_s=info.get("compile_s"),
            first_step_s=info.get("first_step_s"), import_s=info.get("import_s"),
            peak_rss_growth_mb=info.get("peak_rss_growth_mb"), alone_median_s=info.get("alone_median_s"), cpu=cpu,
            blas=info.get("blas"), numpy_version=info.get("numpy_version"),
            numba_version=info.get("numba_version"),
            commit=(commit.get("id") or "")[:12] + ("+dirty" if commit.get("dirty") else ""),
            timestamp=stamp,
        )
        rows.append(row)
    frame = _with_architecture(pd.DataFrame(rows, columns=COLUMNS))
    return add_speedups(frame)


def add_speedups(frame):
    """speedup_vs_reference (vs_minimal) = the median of the reference (of the minimal NumPy step) /
    this row's median, for the same case."""
    case = [k for k in KEY if k not in ("backend", "threads")]
    keys = pd.MultiIndex.from_frame(frame[case].astype(str))
    frame = frame.copy()
    for backend, column in (("numpy", "speedup_vs_reference"), ("minimal", "speedup_vs_minimal")):
        rows = frame[frame["backend"] == backend]
        base = pd.Series(rows["median_s"].to_numpy(), index=pd.MultiIndex.from_frame(rows[case].astype(str)))
        base = base[~base.index.duplicated(keep="last")]
        frame[column] = base.reindex(keys).to_numpy() / frame["median_s"].to_numpy()
    return frame


def add_fraction_of_peak(frame):
    """fraction_of_peak = gflops / the gflops of the peak_gemm row of the same dtype (this machine's
    BLAS matrix-product rate, benchmarks/bench_peak.py); empty without one, and for the peak rows."""
    frame = frame.copy()
    peaks = frame[frame["operation"] == "peak_gemm"].drop_duplicates("dtype", keep="last")
    peak = frame["dtype"].map(dict(zip(peaks["dtype"], peaks["gflops"])))
    frame["fraction_of_peak"] = pd.to_numeric(frame["gflops"], errors="coerce") / peak
    frame.loc[frame["operation"].astype(str).str.startswith("peak_"), "fraction_of_peak"] = np.nan
    return frame


def merge_results(new, path):
    """Write `new` rows into the CSV at `path`, replacing rows of the same case and keeping the rest."""
    try:
        old = pd.read_csv(path)
    except FileNotFoundError:
        old = pd.DataFrame(columns=COLUMNS)
    old = _with_architecture(old.reindex(columns=COLUMNS))
    if len(old):
        replaced = _keys(old).isin(_keys(new))
        old = old[~replaced]
    merged = pd.concat([old, new], ignore_index=True) if len(old) else new.copy()
    merged = merged[~_keys(merged).duplicated(keep="last")]
    merged = add_fraction_of_peak(merged.sort_values(KEY, kind="stable").reset_index(drop=True))
    write_csv(merged[COLUMNS], path)
    return merged


def _keys(frame):
    """The rows' identities (KEY), with a missing value and an empty one alike (a CSV reads "" as NaN)."""
    return pd.MultiIndex.from_frame(frame[KEY].astype(object).where(frame[KEY].notna(), "").astype(str))


def _with_architecture(frame):
    """Rows written before the bricks (one sigmoid hidden layer, sigmoid outputs, mse) get their
    architecture columns."""
    missing = frame["sizes"].isna() & frame["n_inputs"].notna()
    if missing.any():
        frame = frame.astype({k: object for k in ("sizes", "activation", "output", "loss")})
        frame.loc[missing, "sizes"] = [f"{int(d)}-{int(h)}-{int(o)}" for d, h, o in
                                       frame.loc[missing, ARCHITECTURE].to_numpy()]
        frame.loc[missing, ["activation", "output", "loss"]] = ["sigmoid", "sigmoid", "mse"]
    return frame


PLOTTED_OPERATIONS = ["forward", "step", "train_loop"]


def speedup_plot(frame, path):
    """fastmlp (numba) against the reference and each peer, case by case: one panel per dtype, a bar per
    other backend (its median / numba's, log scale; > 1: fastmlp faster). Written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tables = {dtype: case_pivot(frame, dtype) for dtype in ("float64", "float32")}
    tables = {dtype: t[[c for c in t.columns if c.startswith("numba_vs_")]].dropna(how="all")
              for dtype, t in tables.items()}
    tables = {dtype: t for dtype, t in tables.items() if len(t) and len(t.columns)}
    if not tables:
        return None
    height = max(len(t) for t in tables.values())
    fig = Figure(figsize=(7.5 * len(tables), 1.5 + 0.32 * height * 1.2), dpi=90)
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, len(tables), squeeze=False)[0])
    for ax, (dtype, table) in zip(axes, tables.items()):
        others = list(table.columns)
        width = 0.8 / len(others)
        y = np.arange(len(table))
        for k, column in enumerate(others):
            ax.barh(y + (k - (len(others) - 1) / 2) * width, table[column], height=width,
                    label=column.replace("numba_vs_", "vs "))
        ax.axvline(1, color="0.3", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_yticks(y, table.index, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"fastmlp (numba) speedup, {dtype}")
        ax.set_xlabel("other backend's median / numba's (> 1: fastmlp faster)")
        ax.grid(True, axis="x", which="both", alpha=0.2)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def regression_table(new, baseline):
    """This run's median against the baseline's, per case: ratio > 1 means slower now."""
    baseline = _with_architecture(baseline.reindex(columns=COLUMNS))
    key = [k for k in KEY if k != "threads"]
    joined = new.astype({k: str for k in key}).merge(baseline[key + ["median_s"]].astype({k: str for k in key}),
                                                     on=key, how="left", suffixes=("", "_before"))
    joined["ratio_to_before"] = joined["median_s"] / joined["median_s_before"]
    columns = key + ["median_s_before", "median_s", "ratio_to_before"]
    return joined[columns].sort_values(key).reset_index(drop=True)


# -- README tables generated from the CSVs, so that no hand-copied figure drifts from them ---------------

def race_table(frame):
    """The race (results/race.csv) as a markdown table: one row per case, the two libraries side by side."""
    pivot = frame.pivot_table(index="case", columns="library", values=["fit_s", "test_score"], sort=False)
    info = frame[frame["library"] == "fastmlp"].set_index("case")
    lines = ["| case | estimator | epochs | scikit-learn fit s | fastmlp fit s | speedup | score | scikit-learn | fastmlp |",
             "|---|---|---|---|---|---|---|---|---|"]
    for case in info.index:
        row = info.loc[case]
        lines.append(f"| {case} | {row['estimator']} | {row['epochs']} | {pivot.loc[case, ('fit_s', 'sklearn')]:.3f} | "
                     f"{pivot.loc[case, ('fit_s', 'fastmlp')]:.3f} | **{row['speedup']:.1f}x** | {row['score']} | "
                     f"{pivot.loc[case, ('test_score', 'sklearn')]:.4f} | {pivot.loc[case, ('test_score', 'fastmlp')]:.4f} |")
    return "\n".join(lines)


PEERS = ["torch", "jax", "sklearn"]
TABLE_BACKENDS = ["numpy", "minimal", "numba", *PEERS]


def _case_label(row):
    """'step 32 x (64, 128, 10) relu/softmax/cross_entropy' for a row of the CSV."""
    sizes = str(row["sizes"]).replace("-", ", ")
    kind = "" if (row["activation"], row["output"], row["loss"]) == ("sigmoid", "sigmoid", "mse") else (
        f" {row['activation'] or '-'}/{row['output']}/{row['loss']}")
    steps = " x1,000 steps" if row["operation"] == "train_loop" else ""
    return f"{row['operation']} {int(row['n_samples']):,} x ({sizes}){kind}{steps}"


def case_pivot(frame, dtype):
    """One row per (operation, case) of `dtype` for forward, step and train_loop: each backend's median
    (ms), fastmlp's (numba's) ratio to each peer (their median / numba's) and numba's fraction of peak."""
    rows = frame[(frame["dtype"] == dtype) & frame["operation"].isin(PLOTTED_OPERATIONS)].copy()
    if rows.empty or not (rows["backend"] == "numba").any():
        return pd.DataFrame()
    rows["case"] = [_case_label(row) for _, row in rows.iterrows()]
    medians = rows.pivot_table(index="case", columns="backend", values="median_s", aggfunc="last", sort=False) * 1e3
    medians = medians.reindex(columns=[b for b in TABLE_BACKENDS if b in medians.columns])
    numba = rows[rows["backend"] == "numba"].drop_duplicates("case", keep="last").set_index("case")
    table = medians.copy()
    for peer in [b for b in PEERS + ["numpy"] if b in medians.columns]:
        table[f"numba_vs_{peer}"] = medians[peer] / medians["numba"]
    table["fraction_of_peak"] = numba.reindex(columns=["fraction_of_peak"])["fraction_of_peak"].reindex(table.index)
    table["fastest"] = medians.drop(columns=["minimal"], errors="ignore").idxmin(axis=1)
    return table


def _fmt(value, kind):
    if pd.isna(value):
        return ""
    if kind == "ratio":
        return f"{value:.1f}x"
    if kind == "fraction":
        return f"{value:.0%}"
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def speed_table(frame, dtype="float64"):
    """The README's speed table: medians in ms per backend, numba against each peer and the reference,
    numba's fraction of this machine's matrix-product peak."""
    table = case_pivot(frame, dtype)
    backends = [b for b in TABLE_BACKENDS if b in table.columns]
    ratios = [c for c in table.columns if c.startswith("numba_vs_")]
    head = (["case"] + [f"{b} ms" for b in backends] + [c.replace("numba_vs_", "vs ") for c in ratios]
            + ["of peak"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case, row in table.iterrows():
        cells = ([case] + [_fmt(row[b], "ms") for b in backends] + [_fmt(row[c], "ratio") for c in ratios]
                 + [_fmt(row["fraction_of_peak"], "fraction")])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(frame):
    """results/summary.md: for each case and dtype, the fastest backend, fastmlp's ratio to each peer
    and its fraction of peak; then this machine's peaks."""
    parts = ["# Summary of results/benchmarks.csv",
             "", "Generated by `python -m fastmlp.results` from the committed CSV; ratios are peer median / "
             "fastmlp (numba) median, both from the same run (> 1: fastmlp faster).", ""]
    peaks = frame[frame["operation"].astype(str).str.startswith("peak_")]
    for _, row in peaks.iterrows():
        unit = "G sigmoids/s, 1 thread" if row["operation"] == "peak_sigmoid" else "GFLOP/s"
        parts.append(f"- {row['operation']} {row['dtype']}: {row['gflops']:.1f} {unit}")
    for dtype in ("float64", "float32"):
        table = case_pivot(frame, dtype)
        parts += ["", f"## {dtype}", "", "| case | fastest | " + " | ".join(
            c.replace("numba_vs_", "fastmlp vs ") for c in table.columns if c.startswith("numba_vs_"))
            + " | fastmlp fraction of peak |", "|---|---|" + "---|" * (sum(c.startswith("numba_vs_") for c in table.columns) + 1)]
        for case, row in table.iterrows():
            ratios = [_fmt(row[c], "ratio") for c in table.columns if c.startswith("numba_vs_")]
            parts.append(f"| {case} | {row['fastest']} | " + " | ".join(ratios) + f" | {_fmt(row['fraction_of_peak'], 'fraction')} |")
    return "\n".join(parts) + "\n"


def update_readme(readme, sections):
    """Replace each generated section of the README (between `<!-- NAME:start -->` and `<!-- NAME:end -->`)
    with its text, atomically; sections: {name: markdown}. A section whose markers are missing is an error."""
    text = pathlib.Path(readme).read_text()
    for name, markdown in sections.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"{readme} has no <!-- {name}:start --> ... <!-- {name}:end --> section")
        text = pattern.sub(lambda m: m.group(1) + markdown + "\n" + m.group(2), text)
    with atomic_path(readme) as tmp:
        pathlib.Path(tmp).write_text(text)


def main(argv=None):
    """python -m fastmlp.results [README.md]: regenerate the README's tables and results/summary.md from
    results/*.csv."""
    args = sys.argv[1:] if argv is None else argv
    readme = pathlib.Path(args[0] if args else "README.md")
    results = readme.parent / "results"
    benchmarks = pd.read_csv(results / "benchmarks.csv")
    update_readme(readme, {"race": race_table(pd.read_csv(results / "race.csv")),
                           "speed": speed_table(benchmarks)})
    with atomic_path(results / "summary.md") as tmp:
        pathlib.Path(tmp).write_text(summary(benchmarks))
    print(f"updated the generated tables of {readme} and {results / 'summary.md'}")


if __name__ == "__main__":
    main()
