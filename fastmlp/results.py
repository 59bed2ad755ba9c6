"""Tidy benchmark results: rows from pytest-benchmark's JSON, the merged CSV, the speedup plot, the
regression table against the committed results, comparisons of runs, and the README's tables generated
from the CSVs.

Every row carries the machine it was measured on (`machine`, see machine_id) and the run it came from
(`run_id`): a run replaces only its own machine's rows of the cases it measured, and leaves every other
row of the CSV as it was, byte for byte. Every derived column (speedup_vs_*, fraction_of_peak) and
every ratio of a table is computed between rows of one run, never across runs or machines.
"""

import datetime
import pathlib
import platform
import re
import sys

import numpy as np
import pandas as pd

from .files import atomic_path

KEY = ["machine", "operation", "backend", "dtype", "n_samples", "sizes", "activation", "output", "loss", "threads"]
CASE = KEY[1:]                                            # what was measured, on whichever machine
ARCHITECTURE = ["n_inputs", "n_hidden", "n_outputs"]      # sizes' first three numbers, for filtering
COLUMNS = KEY + ARCHITECTURE + [
    "rounds", "min_s", "median_s", "mean_s", "stddev_s", "iqr_s", "speedup_vs_reference",
    "speedup_vs_minimal", "gflops", "fraction_of_peak",
    "max_abs_err", "max_rel_err", "test_score", "compile_s", "first_step_s", "import_s", "peak_rss_growth_mb",
    "alone_median_s", "cpu", "blas", "numpy_version", "numba_version",
    "commit", "timestamp", "run_id",
]
CPU_FAMILIES = ("xeon", "epyc", "threadripper", "ryzen", "core", "apple", "graviton", "neoverse")
AVX512_KERNELS = ("skylakex", "cooperlake", "sapphirerapids")     # OpenBLAS kernels that need AVX-512


def machine_id(cpu, flags, cores, blas):
    """A short, stable name of a machine's kind: 'epyc-avx512-2c-skylakex' is the CPU's family (from its
    model name), its widest vector instructions (from its flags), its logical cores and the BLAS kernel
    that ran (the first of the `blas` column, threadpoolctl's 'openblas:SkylakeX;...')."""
    words = re.findall(r"[a-z0-9]+", str(cpu).lower())
    family = next((w for w in words if w in CPU_FAMILIES),
                  next((w for w in words if w not in ("intel", "amd", "r", "tm", "cpu", "processor")), "cpu"))
    flags = set(flags)
    isa = ("avx512" if "avx512f" in flags else "avx2" if "avx2" in flags
           else "neon" if flags & {"asimd", "neon"} else "sse" if flags else "unknown")
    kernel = str(blas).split(";")[0].split(":")[-1].lower() or "unknown"
    return f"{family}-{isa}-{cores}c-{re.sub(r'[^a-z0-9]+', '', kernel) or 'unknown'}"


def run_id(timestamp, commit):
    """'20261201T083000-0ae405a': when a run started (UTC) and the commit it measured."""
    stamp = pd.Timestamp(timestamp)
    stamp = stamp.tz_convert("UTC") if stamp.tzinfo else stamp
    return f"{stamp:%Y%m%dT%H%M%S}-{str(commit)[:7] or 'nocommit'}"


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
    blas = next((b for b in frame["blas"] if isinstance(b, str) and b), "unknown")
    cpu_info = machine.get("cpu", {})
    frame["machine"] = machine_id(cpu, cpu_info.get("flags", []), cpu_info.get("count") or "?", blas)
    frame["run_id"] = run_id(stamp, commit.get("id") or "")
    return add_fraction_of_peak(add_speedups(frame))


def add_speedups(frame):
    """speedup_vs_reference (vs_minimal) = the median of the reference (of the minimal NumPy step) /
    this row's median, for the same case; `frame` is one run's rows."""
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
    BLAS matrix-product rate, benchmarks/bench_peak.py); `frame` is one run's rows: without a peak of
    its own, none; none for the peak rows."""
    frame = frame.copy()
    peaks = frame[frame["operation"] == "peak_gemm"].drop_duplicates("dtype", keep="last")
    peak = frame["dtype"].map(dict(zip(peaks["dtype"], peaks["gflops"])))
    frame["fraction_of_peak"] = pd.to_numeric(frame["gflops"], errors="coerce") / peak
    frame.loc[frame["operation"].astype(str).str.startswith("peak_"), "fraction_of_peak"] = np.nan
    return frame


def merge_results(new, path):
    """Write one run's `new` rows into the CSV at `path`: they replace the rows of the same case on the
    same machine; every other row is written back as it was read, byte for byte (the file is read as
    text, and rows of a CSV from before `machine` and `run_id` get theirs, see upgrade). Returns the
    merged rows, typed."""
    try:
        old = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        old = pd.DataFrame(columns=COLUMNS, dtype=str)
    old = _as_text(upgrade(old))
    new = _as_text(new)
    if len(old):
        old = old[~_keys(old).isin(_keys(new))]
    merged = pd.concat([old, new], ignore_index=True) if len(old) else new
    merged = merged[~_keys(merged).duplicated(keep="last")]
    order = _keys(merged).argsort(kind="stable")
    merged = merged.iloc[order].reset_index(drop=True)
    with atomic_path(path) as tmp:
        merged.to_csv(tmp, index=False)
    return pd.read_csv(path)


def merge_machine_rows(frame, path):
    """Write one run's rows (`frame`, with a `machine` column) into the CSV at `path`: they replace
    the rows of their machine; other machines' rows are written back as they were read. Returns path."""
    try:
        old = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        old = frame.iloc[:0]
    if "machine" in old:
        old = old[~old["machine"].isin(frame["machine"].astype(str))]
        frame = pd.concat([old, frame], ignore_index=True) if len(old) else frame
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def upgrade(frame):
    """A CSV written before rows carried their machine and run: each row gets `machine` from its own
    cpu and blas columns (its vector instructions read off the BLAS kernel, its cores the most threads
    of its rows) and `run_id` from its timestamp and commit; new columns empty; values as they were."""
    frame = frame.reindex(columns=list(dict.fromkeys(COLUMNS + list(frame.columns))))
    for column in ("machine", "run_id"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), "")
    need = frame["machine"] == ""
    if need.any():
        threads = pd.to_numeric(frame["threads"], errors="coerce").max()
        cores = int(threads) if pd.notna(threads) else "?"
        frame.loc[need, "machine"] = [machine_id(cpu, _flags_of_kernel(blas), cores, blas)
                                      for cpu, blas in zip(frame.loc[need, "cpu"], frame.loc[need, "blas"])]
    need = frame["run_id"] == ""
    if need.any():
        frame.loc[need, "run_id"] = [run_id(stamp, commit) for stamp, commit in
                                     zip(frame.loc[need, "timestamp"], frame.loc[need, "commit"])]
    return frame


def _flags_of_kernel(blas):
    """The vector instructions an OpenBLAS kernel name implies (for rows that did not record the CPU's)."""
    kernel = str(blas).split(";")[0].split(":")[-1].lower()
    return ["avx512f"] if kernel in AVX512_KERNELS else ["avx2"] if kernel in ("haswell", "zen") else []


def _as_text(frame):
    """The frame's cells as the CSV writes them (text read back as text is left alone)."""
    import io
    buffer = io.StringIO()
    frame.reindex(columns=COLUMNS).to_csv(buffer, index=False)
    buffer.seek(0)
    return pd.read_csv(buffer, dtype=str, keep_default_na=False)


def _keys(frame):
    """The rows' identities (KEY), alike whether a value came from a frame or back from the CSV: a
    missing value and an empty one, 2 and 2.0."""
    def norm(value):
        text = "" if pd.isna(value) else str(value)
        return text[:-2] if re.fullmatch(r"-?\d+\.0", text) else text
    return pd.MultiIndex.from_frame(frame[KEY].astype(object).apply(lambda column: column.map(norm)))


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


# -- runs: the rows one pytest session measured on one machine -------------------------------------------

def runs(frame):
    """One row per run: run_id, machine, cpu, commit, timestamp and how many rows it has, newest first."""
    if frame.empty:
        return pd.DataFrame(columns=["run_id", "machine", "cpu", "commit", "timestamp", "rows"])
    table = frame.groupby(["run_id", "machine"], sort=False).agg(
        cpu=("cpu", "first"), commit=("commit", "first"), timestamp=("timestamp", "first"),
        rows=("operation", "size")).reset_index()
    return table.sort_values("timestamp", ascending=False, kind="stable").reset_index(drop=True)


def main_run(frame, machine, operations=None):
    """The run of `machine` with the most rows (of `operations`, if given; the newest of equals): the
    one its tables show."""
    rows = frame[frame["machine"] == machine]
    table = runs(rows if operations is None else rows[rows["operation"].isin(operations)])
    if table.empty:
        raise ValueError(f"no rows of machine {machine!r}; the machines are {sorted(frame['machine'].unique())}")
    return table.loc[table["rows"].idxmax(), "run_id"]


def run_rows(frame, which):
    """The rows of one run: `which` is a run_id, or a machine (its main run), or a unique prefix of one."""
    ids, machines = frame["run_id"].astype(str), frame["machine"].astype(str)
    if (ids == which).any():
        return frame[ids == which]
    if (machines == which).any():
        return frame[ids == main_run(frame, which)]
    matches = sorted(set(ids[ids.str.startswith(which)]) | set(
        main_run(frame, m) for m in set(machines[machines.str.startswith(which)])))
    if len(matches) != 1:
        known = ", ".join(f"{r.run_id} ({r.machine}, {r.rows} rows)" for r in runs(frame).itertuples())
        raise ValueError(f"{which!r} names {'no run' if not matches else 'several runs'}; the runs are: {known}")
    return frame[ids == matches[0]]


PLOTTED_OPERATIONS = ["forward", "step", "train_loop"]


def speedup_plot(frame, path):
    """fastmlp (numba) against the reference and each peer, case by case, in one run (`frame`, see
    run_rows): one panel per dtype, a bar per other backend (its median / numba's, log scale; > 1:
    fastmlp faster), the machine and run in the title. Written atomically."""
    _check_one_run(frame)
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
        ax.set_title(f"fastmlp (numba) speedup, {dtype}\n{frame['machine'].iloc[0]}, run {frame['run_id'].iloc[0]}",
                     fontsize=9)
        ax.set_xlabel("other backend's median / numba's (> 1: fastmlp faster)")
        ax.grid(True, axis="x", which="both", alpha=0.2)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _check_one_run(frame):
    if frame["run_id"].nunique() > 1:
        raise ValueError(f"rows of {frame['run_id'].nunique()} runs: a table or plot compares rows of one run "
                         f"(select them with run_rows)")


def regression_table(new, baseline):
    """This run's median against the baseline's, per case on the same machine: ratio > 1 means slower now."""
    baseline = _with_architecture(upgrade(baseline).reindex(columns=COLUMNS))
    key = [k for k in KEY if k != "threads"]
    joined = new.astype({k: str for k in key}).merge(baseline[key + ["median_s"]].astype({k: str for k in key}),
                                                     on=key, how="left", suffixes=("", "_before"))
    joined["ratio_to_before"] = joined["median_s"] / joined["median_s_before"]
    columns = key + ["median_s_before", "median_s", "ratio_to_before"]
    return joined[columns].sort_values(key).reset_index(drop=True)


def bench_table(frame):
    """One run's forward, step and train_loop rows as `fastmlp bench` prints them: per operation and
    backend the median, the backend's median over fastmlp's (numba's; > 1: fastmlp faster), GFLOP/s,
    the fraction of the run's peak and the error against the reference."""
    _check_one_run(frame)
    rows = frame[frame["operation"].isin(PLOTTED_OPERATIONS)].copy()
    numba = rows[rows["backend"] == "numba"].set_index(["operation", "dtype"])["median_s"]
    rows["vs_fastmlp"] = [m / numba.get((op, dt), np.nan)
                          for m, op, dt in zip(rows["median_s"], rows["operation"], rows["dtype"])]
    rows["median_ms"] = rows["median_s"] * 1e3
    table = rows[["operation", "backend", "dtype", "median_ms", "vs_fastmlp", "gflops", "fraction_of_peak",
                  "max_rel_err"]]
    return table.sort_values(["operation", "median_ms"]).round(
        {"median_ms": 4, "vs_fastmlp": 2, "gflops": 2, "fraction_of_peak": 3})


def compare(base, new):
    """Each case that two runs both measured (CASE, threads included): their medians, the ratio new /
    base (> 1: slower now) and `change`: "slower" or "faster" where the medians differ by more than the
    runs' own spread (the larger of the two rows' interquartile ranges), else "". Sorted by ratio,
    slowest first."""
    _check_one_run(base)
    _check_one_run(new)
    columns = ["median_s", "iqr_s"]
    joined = pd.merge(_with_case(base)[["case", "label"] + columns], _with_case(new)[["case"] + columns],
                      on="case", suffixes=("_base", "_new"))
    joined["ratio"] = joined["median_s_new"] / joined["median_s_base"]
    spread = np.maximum(joined["iqr_s_base"].fillna(0), joined["iqr_s_new"].fillna(0))
    beyond = (joined["median_s_new"] - joined["median_s_base"]).abs() > spread
    joined["change"] = np.where(beyond, np.where(joined["ratio"] > 1, "slower", "faster"), "")
    return joined.sort_values("ratio", ascending=False, kind="stable").reset_index(drop=True)


def _with_case(frame):
    """frame with `case` (its CASE columns as one normalised text) and `label` (readable)."""
    frame = frame.copy()
    frame["case"] = ["|".join(key) for key in _keys(frame.assign(machine=""))]
    frame["label"] = [f"{_case_label(row)} {row['backend']} {row['dtype']} {row['threads']}t"
                      if row["operation"] in PLOTTED_OPERATIONS else
                      f"{row['operation']} {row['backend']} {row['dtype']} {row['sizes']}" for _, row in frame.iterrows()]
    return frame


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
    """One row per (operation, case) of `dtype` for forward, step and train_loop, from one run's rows:
    each backend's median (ms), fastmlp's (numba's) ratio to each peer (their median / numba's) and
    numba's fraction of peak."""
    _check_one_run(frame)
    rows = frame[(frame["dtype"] == dtype) & frame["operation"].isin(PLOTTED_OPERATIONS)].copy()
    if rows.empty or not (rows["backend"] == "numba").any():
        return pd.DataFrame()
    rows["n_samples"] = pd.to_numeric(rows["n_samples"])
    rows = rows.sort_values(["operation", "n_samples", "sizes", "activation"], kind="stable")
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


def run_heading(frame):
    """'epyc-avx512-2c-skylakex: AMD EPYC, run 20261201T083000-0ae405a (commit 0ae405a..., 2026-12-01), 490 rows'."""
    row = runs(frame).iloc[0]
    return (f"{row['machine']}: {row['cpu']}, run {row['run_id']} (commit {row['commit']}, "
            f"{str(row['timestamp'])[:10]}), {row['rows']} rows")


def by_machine(frame, operations=None):
    """[(machine, the rows of its main run for `operations`)] for every machine of the CSV that measured
    them, in the order of their ids."""
    machines = frame["machine"][True if operations is None else frame["operation"].isin(operations)]
    return [(machine, frame[frame["run_id"] == main_run(frame, machine, operations)])
            for machine in sorted(machines.astype(str).unique())]


def speed_tables(frame, dtype="float64"):
    """The README's speed section: for every machine, its main run's speed_table under a line naming
    the machine and the run."""
    parts = []
    for _, rows in by_machine(frame, PLOTTED_OPERATIONS):
        parts += [f"**{run_heading(rows)}**", "", speed_table(rows, dtype), ""]
    return "\n".join(parts).rstrip("\n")


def speed_table(frame, dtype="float64"):
    """One run's speed table: medians in ms per backend, numba against each peer and the reference,
    numba's fraction of the machine's matrix-product peak."""
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


PREDICTORS = ["numba", "onnxruntime", "torch", "sklearn"]


def predict_table(frame):
    """The README's serving table (benchmarks/bench_predict.py's `predict` rows) of one run: per network,
    dtype and batch each predictor's median in us and fastmlp's speedup over scikit-learn and ONNX Runtime."""
    _check_one_run(frame)
    rows = frame[frame["operation"] == "predict"].copy()
    rows["n_samples"] = pd.to_numeric(rows["n_samples"])
    medians = rows.pivot_table(index=["sizes", "dtype", "n_samples"], columns="backend", values="median_s",
                               aggfunc="last") * 1e6
    medians = medians.reindex(columns=[p for p in PREDICTORS if p in medians.columns])
    lines = ["| network, dtype | batch | fastmlp us | ONNX Runtime us | PyTorch us | scikit-learn us | "
             "vs scikit-learn | vs ONNX Runtime |", "|---|---|---|---|---|---|---|---|"]
    order = sorted(medians.index, key=lambda key: ([int(w) for w in str(key[0]).split("-")], key[1], key[2]))
    for (sizes, dtype, n), row in medians.loc[order].iterrows():
        cells = [f"({str(sizes).replace('-', ', ')}) {dtype}", f"{int(n):,}"]
        cells += [_fmt(row.get(p), "ms") for p in PREDICTORS]
        cells += [_fmt(row.get(p) / row.get("numba"), "ratio") for p in ("sklearn", "onnxruntime")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def predict_tables(frame):
    """predict_table for every machine whose main run has predict rows, each under a line naming it."""
    parts = []
    for _, rows in by_machine(frame, ["predict"]):
        parts += [f"**{run_heading(rows)}**", "", predict_table(rows), ""]
    return "\n".join(parts).rstrip("\n") or "(no predict rows yet: run benchmarks/bench_predict.py)"


def summary(frame):
    """results/summary.md: for every machine, its main run: the machine's peaks, then for each case and
    dtype the fastest backend, fastmlp's ratio to each peer and its fraction of peak; then every run."""
    parts = ["# Summary of results/benchmarks.csv",
             "", "Generated by `python -m fastmlp.results` from the committed CSV, one section per machine, "
             "each from one run (its main run: the one with the most rows); ratios are peer median / "
             "fastmlp (numba) median, both from that run (> 1: fastmlp faster)."]
    for _, rows in by_machine(frame, PLOTTED_OPERATIONS):
        parts += ["", f"# {run_heading(rows)}", ""] + _run_summary(rows)
    parts += ["", "# Every run", "", "| run_id | machine | cpu | commit | rows |", "|---|---|---|---|---|"]
    parts += [f"| {r.run_id} | {r.machine} | {r.cpu} | {r.commit} | {r.rows} |" for r in runs(frame).itertuples()]
    return "\n".join(parts) + "\n"


def _run_summary(frame):
    parts = []
    peaks = frame[frame["operation"].astype(str).str.startswith("peak_")]
    for _, row in peaks.iterrows():
        unit = "G sigmoids/s, 1 thread" if row["operation"] == "peak_sigmoid" else "GFLOP/s"
        parts.append(f"- {row['operation']} {row['dtype']}: {row['gflops']:.1f} {unit}")
    for dtype in ("float64", "float32"):
        table = case_pivot(frame, dtype)
        if table.empty:
            continue
        parts += ["", f"## {dtype}", "", "| case | fastest | " + " | ".join(
            c.replace("numba_vs_", "fastmlp vs ") for c in table.columns if c.startswith("numba_vs_"))
            + " | fastmlp fraction of peak |", "|---|---|" + "---|" * (sum(c.startswith("numba_vs_") for c in table.columns) + 1)]
        for case, row in table.iterrows():
            ratios = [_fmt(row[c], "ratio") for c in table.columns if c.startswith("numba_vs_")]
            parts.append(f"| {case} | {row['fastest']} | " + " | ".join(ratios) + f" | {_fmt(row['fraction_of_peak'], 'fraction')} |")
    return parts


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
                           "speed": speed_tables(benchmarks), "predict": predict_tables(benchmarks)})
    with atomic_path(results / "summary.md") as tmp:
        pathlib.Path(tmp).write_text(summary(benchmarks))
    print(f"updated the generated tables of {readme} and {results / 'summary.md'}")


if __name__ == "__main__":
    main()
