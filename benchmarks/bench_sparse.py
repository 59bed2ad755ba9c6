"""Sparse X: a TF-IDF-like bag of words (fastmlp.race.documents, 20,000 documents x 50,000 words, about
0.1% nonzero) through fastmlp's MLPClassifier and scikit-learn's with the same parameters (hidden 128,
adam, batch 200, EPOCHS epochs), side by side in one run; written to results/sparse.csv.

Each fit runs in a fresh process, so that its peak memory (the process's maximum resident set) is its
own: `peak_mb` with everything loaded, `base_mb` the same process before the fit (Python, NumPy,
SciPy, scikit-learn, fastmlp's loaded kernels, warmed up on a small network, and the data), so that
`fit_mb` = peak - base is what the fit itself took. The issue's floors: fastmlp at least 3x
scikit-learn's speed, and its memory below X's dense size / 10: the fit's own (fit_mb, FLOORS), the
whole process's beside it (peak_of_dense; in float32, a loaded interpreter alone is above a tenth of
dense X, for scikit-learn too).
With the same random_state both walk the same path (the loss curves agree to rounding). A floor missed
marks the run xfail (the CSV is written all the same); with benchmarks disabled (make test) a small
case runs through the same machinery and nothing is written.
"""

import json
import pathlib
import subprocess
import sys

import pandas as pd
import pytest

pytest.importorskip("sklearn")

from fastmlp.results import merge_machine_rows  # noqa: E402
from machine import this_machine  # noqa: E402

SPARSE_CSV = pathlib.Path(__file__).resolve().parents[1] / "results" / "sparse.csv"
DOCUMENTS = dict(n=20_000, vocabulary=50_000, words=50, classes=4, seed=0)
EPOCHS = 2
FLOORS = {"speedup": 3.0, "fit_of_dense": 0.1}

FIT_SCRIPT = """
import json, resource, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
from fastmlp import race
library, dtype, documents, epochs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
if library == "sklearn":
    from sklearn.neural_network import MLPClassifier
else:
    from fastmlp import MLPClassifier
X, y = race.documents(**documents)
X = X.astype(dtype)
params = dict(hidden_layer_sizes=(128,), max_iter=epochs, n_iter_no_change=100, random_state=0)
MLPClassifier(**dict(params, max_iter=1)).fit(X[:300, :500], y[:300])   # load the kernels (a small network)
def memory_mb():    # this process's own peak, VmHWM (ru_maxrss counts the parent's memory at the fork before exec)
    try:
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) / 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base = memory_mb()
start = time.perf_counter()
fitted = MLPClassifier(**params).fit(X, y)
seconds = time.perf_counter() - start
print(json.dumps(dict(fit_s=seconds, base_mb=base, peak_mb=memory_mb(), loss_curve=[float(v) for v in fitted.loss_curve_],
                      rows=X.shape[0], columns=X.shape[1], nnz=int(X.nnz))))
"""


def fit_row(library, dtype, documents, epochs):
    """One library's fit in a fresh process: its seconds and memory (see the module's docstring)."""
    run = subprocess.run([sys.executable, "-c", FIT_SCRIPT, library, dtype, json.dumps(documents), str(epochs)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    dense_mb = out["rows"] * out["columns"] * (8 if dtype == "float64" else 4) / 2**20
    return dict(case="documents-tfidf", library=library, dtype=dtype, rows=out["rows"], columns=out["columns"],
                density=out["nnz"] / (out["rows"] * out["columns"]), hidden=128, epochs=epochs,
                fit_s=out["fit_s"], rows_per_s=out["rows"] * epochs / out["fit_s"], base_mb=out["base_mb"],
                peak_mb=out["peak_mb"], fit_mb=out["peak_mb"] - out["base_mb"], dense_X_mb=dense_mb,
                final_loss=out["loss_curve"][-1])


def race_rows(documents, epochs, dtypes=("float64", "float32")):
    """Both libraries in each dtype, each row with fastmlp's speedup and the peak's share of dense X."""
    rows = []
    for dtype in dtypes:
        sk, fm = (fit_row(library, dtype, documents, epochs) for library in ("sklearn", "fastmlp"))
        sk["speedup"], fm["speedup"] = 1.0, sk["fit_s"] / fm["fit_s"]
        for row in (sk, fm):
            row["peak_of_dense"] = row["peak_mb"] / row["dense_X_mb"]
            row["fit_of_dense"] = row["fit_mb"] / row["dense_X_mb"]
        rows += [sk, fm]
    return pd.DataFrame(rows)


def test_sparse(benchmark, request):
    if request.config.getoption("benchmark_disable", False):
        frame = race_rows(dict(DOCUMENTS, n=400, vocabulary=3000), epochs=2, dtypes=("float64",))  # (compile time)
        for _, pair in frame.groupby("dtype"):
            losses = pair.set_index("library")["final_loss"]
            assert losses["fastmlp"] == pytest.approx(losses["sklearn"], rel=1e-4 if pair["dtype"].iloc[0] ==
                                                      "float32" else 1e-10)
        return
    frame = benchmark.pedantic(race_rows, args=(DOCUMENTS, EPOCHS), rounds=1)
    frame.insert(0, "machine", this_machine())
    merge_machine_rows(frame, SPARSE_CSV)
    print(frame.to_string())
    for _, pair in frame.groupby("dtype"):
        losses = pair.set_index("library")["final_loss"]
        assert losses["fastmlp"] == pytest.approx(losses["sklearn"], rel=1e-3)
    ours = frame[frame["library"] == "fastmlp"]
    missed = {}
    if ours["speedup"].min() < FLOORS["speedup"]:
        missed["speedup"] = round(ours["speedup"].min(), 2)
    if ours["fit_of_dense"].max() > FLOORS["fit_of_dense"]:
        missed["fit_of_dense"] = round(ours["fit_of_dense"].max(), 3)
    if missed:
        pytest.xfail(f"below the issue's floors (written to {SPARSE_CSV.name} all the same): {missed}")
