"""fastmlp on a real local Dask cluster: searches equal to local ones, partial_fit over blocks, workers
that size their threads and load the kernels from the cache, and a worker killed mid-search."""

import os
import pathlib
import re
import signal
import threading
import time
import warnings

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
dask_ml = pytest.importorskip("dask_ml")
pytest.importorskip("sklearn")

import dask.array as da  # noqa: E402
import joblib  # noqa: E402
from dask_ml.model_selection import GridSearchCV as DaskGridSearchCV, RandomizedSearchCV  # noqa: E402
from dask_ml.wrappers import Incremental  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

import fastmlp  # noqa: E402

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
GRID = {"hidden_layer_sizes": [(16,), (32,)], "alpha": [1e-4, 1e-2]}


@pytest.fixture(scope="module")
def client():
    """Two one-thread worker processes, as the issue's cluster (one per core here)."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:900] / 16, y[:900]


def scores_by_candidate(search):
    """{candidate's parameters: every split's test score}: comparable whatever the order. (The means
    are not: dask-ml's mean of the same three scores can differ from scikit-learn's in the last bit.)"""
    results = search.cv_results_
    splits = sorted(k for k in results if re.fullmatch(r"split\d+_test_score", k))
    return {repr(sorted(p.items())): [float(results[k][i]) for k in splits] for i, p in enumerate(results["params"])}


def local_search(digits, estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GridSearchCV(estimator, GRID, cv=3, n_jobs=1).fit(*digits)


def test_searches_on_the_cluster_equal_the_local_search(client, digits):
    """The same fits, bit for bit: joblib's dask backend under scikit-learn's GridSearchCV, and dask-ml's
    GridSearchCV and RandomizedSearchCV (which sample the same candidates as scikit-learn's)."""
    estimator = fastmlp.MLPClassifier(max_iter=15, random_state=0)
    want = scores_by_candidate(local_search(digits, estimator))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with joblib.parallel_config(backend="dask"):
            on_cluster = GridSearchCV(estimator, GRID, cv=3).fit(*digits)
        dask_grid = DaskGridSearchCV(estimator, GRID, cv=3, scheduler=client).fit(*digits)
        dask_random = RandomizedSearchCV(estimator, GRID, n_iter=3, cv=3, random_state=0, scheduler=client).fit(*digits)
    assert scores_by_candidate(on_cluster) == want
    assert scores_by_candidate(dask_grid) == want
    sampled = scores_by_candidate(dask_random)
    assert len(sampled) == 3 and all(sampled[k] == want[k] for k in sampled)


def test_incremental_over_blocks_is_partial_fit_in_order(client, digits):
    X, y = digits
    blocks = 200
    model = Incremental(fastmlp.MLPClassifier(hidden_layer_sizes=(16,), random_state=0), scoring="accuracy",
                        shuffle_blocks=False)
    model.fit(da.from_array(X, chunks=blocks), da.from_array(y, chunks=blocks), classes=np.arange(10))
    by_hand = fastmlp.MLPClassifier(hidden_layer_sizes=(16,), random_state=0)
    for start in range(0, len(X), blocks):
        by_hand.partial_fit(X[start:start + blocks], y[start:start + blocks], classes=np.arange(10))
    for got, want in zip(model.estimator_.coefs_ + model.estimator_.intercepts_,
                         by_hand.coefs_ + by_hand.intercepts_, strict=True):
        np.testing.assert_array_equal(got, want)
    assert model.score(da.from_array(X, chunks=blocks), da.from_array(y, chunks=blocks)) == by_hand.score(X, y)


def test_workers_use_their_thread_budget_and_the_cached_kernels(client, digits):
    """Each worker's nanny sets OMP_NUM_THREADS=1 and fastmlp runs one Numba thread there; its first fit
    loads the compiled loop from the cache (hits, no misses) instead of compiling it."""
    fastmlp.MLPClassifier(max_iter=2).fit(*digits)          # this process wrote the cache, if it was cold

    def in_worker(X, y):
        import numba
        import fastmlp
        from fastmlp.kernels.loop import train_loop_compiled
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fastmlp.MLPClassifier(max_iter=2).fit(X, y)
        stats = train_loop_compiled.stats
        return (os.environ.get("OMP_NUM_THREADS"), numba.get_num_threads(),
                sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))

    for budget, threads, hits, misses in client.run(in_worker, *digits).values():
        assert (budget, threads) == ("1", 1)
        assert hits >= 1 and misses == 0


def test_thread_budget_follows_omp_num_threads_unless_numba_is_told():
    from fastmlp.kernels.threads import thread_budget
    assert thread_budget({"OMP_NUM_THREADS": "1"}) == 1
    assert thread_budget({"OMP_NUM_THREADS": "3,2"}) == 3                 # OpenMP's nested form: the outer
    assert thread_budget({"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "2"}) is None
    assert thread_budget({}) is None and thread_budget({"OMP_NUM_THREADS": "many"}) is None
    # the process that started a LocalCluster has the nanny's settings for its workers, not for itself
    assert thread_budget({"OMP_NUM_THREADS": "1", "__DASK_PARENT_PID": str(os.getpid())}) is None
    assert thread_budget({"OMP_NUM_THREADS": "1", "__DASK_PARENT_PID": str(os.getpid() + 1)}) == 1


def test_the_readme_example_runs():
    """README "Beyond one machine": its code, as written (its own LocalCluster)."""
    text = README.read_text()
    block = text.split("<!-- dask-example:start -->")[1].split("<!-- dask-example:end -->")[0]
    code = block.split("```python")[1].split("```")[0]
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["search"].best_score_ > 0.85
    assert namespace["model"].estimator_.n_iter_ == 1 and namespace["model"].estimator_.t_ == 1797


def test_a_worker_killed_mid_search_loses_nothing(digits):
    """SIGKILL one of two workers while the search runs: the scheduler reruns its fits on the other (and
    on the worker the nanny restarts), and the search ends with the local search's results."""
    estimator = fastmlp.MLPClassifier(max_iter=40, random_state=0)
    want = scores_by_candidate(local_search(digits, estimator))
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with distributed.Client(cluster) as client:
        pids = client.run(os.getpid)
        outcome = {}

        def search():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                outcome["search"] = DaskGridSearchCV(estimator, GRID, cv=3, scheduler=client).fit(*digits)

        runner = threading.Thread(target=search)
        runner.start()
        deadline = time.monotonic() + 60
        while not any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.01)
        victim = next(iter(pids.values()))
        assert "search" not in outcome                     # killed while the search runs
        os.kill(victim, signal.SIGKILL)
        runner.join(timeout=240)
        assert not runner.is_alive()
    cluster.close()
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)
    assert scores_by_candidate(outcome["search"]) == want
