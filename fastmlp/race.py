"""The race on real data: fastmlp's estimators against scikit-learn's, same parameters, same split.

Each case fits scikit-learn's MLPClassifier/MLPRegressor and fastmlp's on the same standardised
training split (random_state fixed), side by side, `repeats` times each, and scores both on the test
split. With the same random_state both walk the same path (fastmlp.sklearn), so the scores agree to
rounding and the race is about time alone. Needs scikit-learn (fastmlp[sklearn]).
"""

import time
import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd


class RaceCase(NamedTuple):
    name: str
    dataset: str           # a loader of sklearn.datasets, "friedman1" (make_friedman1, 5000 rows), "counts"
                           # or "documents" (sparse TF-IDF rows)
    params: dict           # the estimator's parameters, for both libraries
    weighted: bool = False     # fit both with the same sample weights (sample_weights_for)


ADAM_100_EPOCHS = dict(hidden_layer_sizes=(128,), batch_size=32, max_iter=100, n_iter_no_change=100)
CASES = [
    RaceCase("digits-adam-100-epochs", "digits", ADAM_100_EPOCHS),
    RaceCase("digits-weighted", "digits", ADAM_100_EPOCHS, weighted=True),
    RaceCase("counts-poisson", "counts", dict(ADAM_100_EPOCHS, loss="poisson", alpha=3.0)),  # alpha: noisy counts
    RaceCase("documents-sparse", "documents", dict(hidden_layer_sizes=(128,), max_iter=20, n_iter_no_change=100)),
    RaceCase("digits-defaults", "digits", {}),
    RaceCase("breast_cancer-defaults", "breast_cancer", {}),
    RaceCase("wine-defaults", "wine", {}),
    RaceCase("diabetes", "diabetes", dict(hidden_layer_sizes=(64,), learning_rate_init=0.01, max_iter=500)),
    RaceCase("friedman1-batch-64", "friedman1", dict(hidden_layer_sizes=(64, 64), batch_size=64)),
]
REGRESSION = {"diabetes", "friedman1", "counts"}

# Each timed fit starts SETTLE_S after the calls before it, so that it does not run beside what they left
# spinning: OpenBLAS's threads (NumPy's, which scikit-learn's fits use) spin for 2**28 clock ticks after
# each threaded product before they sleep (0.1 s at this machine's 2.6 GHz; their wait loop runs no
# instructions that give the core away), and take that core from whatever runs next. fastmlp's fit of
# digits with scikit-learn's defaults took 0.19 s right after scikit-learn's fit, 0.12-0.13 s 0.3 s
# later, 0.165 s on one thread alone (2-core AMD EPYC, AVX-512; the race read 2.6x instead of 4x).
SETTLE_S = 0.3

# The race starts as a process that has loaded its data does: with glibc's malloc past its first large
# free. malloc serves a block above its mmap threshold (128 KB at first) with fresh pages from the
# kernel, a page fault each, until a block that large is freed, which raises the threshold to it (for
# blocks under 32 MiB: one of 32 MiB left it where it was). scikit-learn's fit of the documents case
# (new arrays of its (5000, 128) weights every batch) took 1.23-1.59 s in a fresh process, 0.81-1.0 s
# after one 16 MiB array was freed; fastmlp's took 0.24-0.25 s either way. Run first, scikit-learn's fit
# had paid the faults and read the case at 6.4x.
WARM_ALLOCATOR_BYTES = 16 << 20


def counts(n=1800, features=64, seed=0):
    """A digits-sized Poisson regression: y ~ Poisson(exp(0.5 + tanh(X a) + 0.3 X b)), X (n, features)
    standard normal (counts from 0 to a few dozen)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features))
    a, b = rng.normal(size=features) / np.sqrt(features), rng.normal(size=features) / np.sqrt(features)
    return X, rng.poisson(np.exp(0.5 + np.tanh(X @ a) + 0.3 * X @ b)).astype(np.float64)


def documents(n=1800, vocabulary=5000, words=40, classes=4, seed=0):
    """A TF-IDF-like bag of words, as sklearn's TfidfVectorizer makes it: n documents of `words` draws
    from a Zipf-distributed vocabulary (word k drawn with probability ~ 1/k) and words / 8 from their
    class's own topic (a tenth of the vocabulary each); counts times idf = log((1 + n) / (1 + df))
    + 1, each row scaled to unit length. Returns (X CSR (n, vocabulary) float64, labels (n,))."""
    import scipy.sparse
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    zipf = 1 / np.arange(1, vocabulary + 1)
    topics = rng.permutation(vocabulary)[:classes * (vocabulary // 10)].reshape(classes, -1)
    common = rng.choice(vocabulary, size=(n, words), p=zipf / zipf.sum())
    topical = topics[y[:, None], rng.integers(0, topics.shape[1], (n, words // 8))]
    columns = np.concatenate([common, topical], axis=1)
    rows = np.repeat(np.arange(n), columns.shape[1])
    counts = scipy.sparse.csr_matrix((np.ones(rows.size), (rows, columns.ravel())), shape=(n, vocabulary))
    counts.sum_duplicates()
    df = np.bincount(counts.indices, minlength=vocabulary)
    X = counts.multiply(np.log((1 + n) / (1 + df)) + 1).tocsr()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    return scipy.sparse.csr_matrix(X.multiply(1 / norms[:, None])), y


def sample_weights_for(n, seed=0):
    """The weighted cases' sample weights: uniform in [0, 2), a tenth of them exactly 0."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < 0.1, 0.0, 2 * rng.random(n))


def load(dataset):
    """(X_train, X_test, y_train, y_test): a 75/25 split, X standardised on the training rows (but
    the documents' TF-IDF rows)."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    if dataset == "friedman1":
        X, y = datasets.make_friedman1(5000, random_state=0)
    elif dataset == "counts":
        X, y = counts()
    elif dataset == "documents":                # sparse, and unit rows already: not standardised
        return train_test_split(*documents(), random_state=0)
    else:
        X, y = getattr(datasets, f"load_{dataset}")(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def run(cases=CASES, repeats=3, echo=print):
    """Race every case; returns one row per (case, library): median fit seconds, test score, epochs,
    and fastmlp's speedup (scikit-learn's median over its own)."""
    import fastmlp.sklearn
    from sklearn import neural_network
    from sklearn.exceptions import ConvergenceWarning
    np.ones(WARM_ALLOCATOR_BYTES // 8).sum()          # freed at once: see WARM_ALLOCATOR_BYTES
    rows = []
    echo(f"{'case':26s} {'sklearn s':>10s} {'fastmlp s':>10s} {'speedup':>8s} {'sklearn score':>14s} "
         f"{'fastmlp score':>14s} {'epochs':>7s}")
    for case in cases:
        data = load(case.dataset)
        kind = "MLPRegressor" if case.dataset in REGRESSION else "MLPClassifier"
        estimators = {library: getattr(module, kind)(random_state=0, **case.params)
                      for library, module in (("sklearn", neural_network), ("fastmlp", fastmlp.sklearn))}
        weights = sample_weights_for(len(data[0])) if case.weighted else None
        seconds = _timed_fits(estimators, data, weights, repeats, ConvergenceWarning)
        results = {library: dict(case=case.name, dataset=case.dataset, library=library, estimator=kind,
                                 fit_s=seconds[library], test_score=fitted.score(data[1], data[3]),
                                 score=("r2" if kind == "MLPRegressor" else "accuracy"),
                                 epochs=fitted.n_iter_, repeats=repeats)
                   for library, fitted in estimators.items()}
        speedup = results["sklearn"]["fit_s"] / results["fastmlp"]["fit_s"]
        results["fastmlp"]["speedup"], results["sklearn"]["speedup"] = speedup, 1.0
        rows += results.values()
        sk, fm = results["sklearn"], results["fastmlp"]
        echo(f"{case.name:26s} {sk['fit_s']:10.3f} {fm['fit_s']:10.3f} {speedup:7.1f}x {sk['test_score']:14.4f} "
             f"{fm['test_score']:14.4f} {fm['epochs']:7d}")
    return pd.DataFrame(rows)


def _timed_fits(estimators, data, weights, repeats, convergence_warning):
    """{library: median seconds of `repeats` fits with sample_weight `weights`} for the estimators of
    {library: estimator}, each left fitted. The libraries take turns, a fit each (scikit-learn's, then
    fastmlp's, `repeats` times), so that both see the same moments of a machine whose speed moves
    (this virtual machine's did by up to 1.6x for seconds at a time: three fits of one library, then
    three of the other, read digits with scikit-learn's defaults at 3.0x in one run and 4.0x in the next)."""
    X_train, _, y_train, _ = data
    times = {library: [] for library in estimators}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # the warm-up fit's clipped batch size, convergence
        for estimator in estimators.values():
            estimator.fit(X_train[:50], y_train[:50])    # compile or load the kernels, outside the timing
        warnings.simplefilter("ignore", convergence_warning)
        for _ in range(repeats):
            for library, estimator in estimators.items():
                time.sleep(SETTLE_S)
                start = time.perf_counter()
                estimator.fit(X_train, y_train, sample_weight=weights)
                times[library].append(time.perf_counter() - start)
    return {library: float(np.median(seconds)) for library, seconds in times.items()}
