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
    "speedup_vs_minimal", "gflops",
    "max_abs_err", "max_rel_err", "compile_s", "first_step_s", "import_s", "peak_rss_growth_mb", "cpu", "blas", "numpy_version", "numba_version",
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
            max_rel_err=info.get("max_rel_err"), compile_s=info.get("compile_s"),
            first_step_s=info.get("first_step_s"), import_s=info.get("import_s"),
            peak_rss_growth_mb=info.get("peak_rss_growth_mb"), cpu=cpu,
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


def merge_results(new, path):
    """Write `new` rows into the CSV at `path`, replacing rows of the same case and keeping the rest."""
    try:
        old = pd.read_csv(path)
    except FileNotFoundError:
        old = pd.DataFrame(columns=COLUMNS)
    old = _with_architecture(old.reindex(columns=COLUMNS))
    if len(old):
        replaced = pd.MultiIndex.from_frame(old[KEY].astype(str)).isin(
            pd.MultiIndex.from_frame(new[KEY].astype(str)))
        old = old[~replaced]
    merged = pd.concat([old, new], ignore_index=True) if len(old) else new.copy()
    merged = merged.sort_values(KEY, kind="stable").reset_index(drop=True)
    write_csv(merged[COLUMNS], path)
    return merged


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
    """Speedup vs hidden size, one line per N; a panel per (dtype, operation). Written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    numba = frame[(frame["backend"] == "numba") & frame["speedup_vs_reference"].notna()
                  & (frame["n_inputs"] == 2) & (frame["n_outputs"] == 2)
                  & frame["operation"].isin(PLOTTED_OPERATIONS)]
    operations = [op for op in PLOTTED_OPERATIONS if op in set(numba["operation"])]
    dtypes = sorted(set(numba["dtype"]))
    if not operations:
        return None
    fig = Figure(figsize=(4.5 * len(operations), 3.6 * len(dtypes)), dpi=90)
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(len(dtypes), len(operations), sharey=True, squeeze=False))
    for row, dtype in enumerate(dtypes):
        for col, operation in enumerate(operations):
            ax = axes[row, col]
            panel = numba[(numba["operation"] == operation) & (numba["dtype"] == dtype)]
            for n, line in panel.groupby("n_samples"):
                line = line.sort_values("n_hidden")
                ax.plot(line["n_hidden"], line["speedup_vs_reference"], marker="o", label=f"N = {n:,}")
            ax.axhline(1, color="0.6", lw=0.8, ls="--")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{operation}, {dtype}")
            ax.grid(True, which="both", alpha=0.2)
            if len(panel):
                ax.legend(fontsize=8)
            if row == len(dtypes) - 1:
                ax.set_xlabel("hidden units H  (D = O = 2)")
        axes[row, 0].set_ylabel("numba speedup over NumPy")
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
    """python -m fastmlp.results [README.md]: regenerate the README's tables from results/*.csv."""
    args = sys.argv[1:] if argv is None else argv
    readme = pathlib.Path(args[0] if args else "README.md")
    results = readme.parent / "results"
    update_readme(readme, {"race": race_table(pd.read_csv(results / "race.csv"))})
    print(f"updated the generated tables of {readme}")


if __name__ == "__main__":
    main()
