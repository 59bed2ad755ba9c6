"""Whole-process facts: JIT compile cost, a warm cache's first step, peak memory of one big step,
and the article's default run end to end (fit with the accuracy on all 300 points every step).

Each runs in a fresh subprocess; the subprocess's own measurements go into the row's extra columns
(first_step_s, import_s, peak_rss_growth_mb), the row's timings are the whole subprocess or run.
"""

import json
import subprocess
import sys

import numba
import numpy as np
import pytest

import fastmlp
import minimal_numpy
from bench_fastmlp import CE, Case, describe

FIRST_STEP = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from fastmlp import kernels
from fastmlp.architecture import Architecture
import_s = time.perf_counter() - t0
N, D, H, O = map(int, sys.argv[1:5])
dtype, warm_small_first = sys.argv[5], sys.argv[6] == "1"
arch = Architecture((D, H, O), ("sigmoid",), "sigmoid", "mse", True)
rng = np.random.default_rng(0)
X = rng.normal(size=(N, D)).astype(dtype)
Y = np.zeros((N, O), dtype)
Y[np.arange(N), rng.integers(0, O, N)] = 1
theta = (rng.uniform(-1, 1, arch.n_parameters) / np.sqrt(D)).astype(dtype)
if warm_small_first:
    kernels.step(arch, theta.copy(), X[:3], Y[:3], 1e-3)
def status_kb(field):   # this process's own memory (ru_maxrss would count the parent's, via exec)
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
try:
    open("/proc/self/clear_refs", "w").write("5")   # restart the peak (VmHWM) from here
except OSError:
    pass
rss_before = status_kb("VmRSS")
t1 = time.perf_counter()
kernels.step(arch, theta, X, Y, 1e-3)
first_step_s = time.perf_counter() - t1
growth_mb = max(0, status_kb("VmHWM") - rss_before) / 1024
print(json.dumps(dict(import_s=import_s, first_step_s=first_step_s, peak_rss_growth_mb=growth_mb)))
"""


def run_script(shape, dtype, warm_small_first, env=None):
    out = subprocess.run([sys.executable, "-c", FIRST_STEP, *map(str, shape), dtype,
                          "1" if warm_small_first else "0"], capture_output=True, text=True,
                         check=True, env=env)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("numba-cache")


def _skip_if_disabled(config):
    if config.getoption("benchmark_disable", False):
        pytest.skip("process timings are benchmarks, not tests")


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_first_step_after_import(benchmark, request, cache, cache_dir):
    """The first step at the article's size in a fresh process, on an empty cache then a filled one."""
    _skip_if_disabled(request.config)
    import os
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    if cache == "warm":
        run_script((300, 2, 3, 2), "float64", False, env)       # fill the cache
    result = benchmark.pedantic(run_script, args=((300, 2, 3, 2), "float64", False, env),
                                setup=(lambda: _empty(cache_dir)) if cache == "cold" else None, rounds=3)
    describe(benchmark, f"first_step_{cache}_cache", "numba", "float64", Case(300, (2, 3, 2)), **result)
    if cache == "warm":
        assert result["first_step_s"] < 0.5, "a warm cache should start stepping within 0.5 s"


def _empty(folder):
    import shutil
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()


def test_peak_memory_of_a_million_row_step(benchmark, request):
    """One float64 step at (1e6, 2, 1024, 2): the reference would need ~24 GB; the kernels' scratch
    is independent of N."""
    _skip_if_disabled(request.config)
    shape = (1_000_000, 2, 1024, 2)
    result = benchmark.pedantic(run_script, args=(shape, "float64", True), rounds=1)
    describe(benchmark, "step_peak_memory", "numba", "float64", Case(shape[0], shape[1:]), **result)
    assert result["peak_rss_growth_mb"] < 100


ARTICLE_RUN_MIN_SPEEDUP = 20    # the 1,000,000-step run's steps against the reference's, per step
ARTICLE_RUN_SECONDS_PER_STEP = {}                 # backend -> this session's median, per step


@pytest.mark.parametrize("backend, steps", [("numpy", 100_000), ("numba", 100_000), ("numba", 1_000_000)])
def test_article_run(benchmark, request, backend, steps):
    """The article's default run: hidden 10, lr 1e-3 (0.05 against the mean loss), reg 1e-6, the first
    50 of 300 points, accuracy on all 300 after every step; 1,000,000 steps as in the article (numba),
    and the first 100,000 for both backends side by side (the reference needs ~100 s for the whole).
    The floor is a ratio within this run, so that a slower machine does not fail it: per step, the
    numba run at least ARTICLE_RUN_MIN_SPEEDUP times the reference's (measured: 49x on a 2-core Xeon,
    where the whole run took 2.1 s; issue 6 asked for 3 s there)."""
    _skip_if_disabled(request.config)
    X, y = fastmlp.datasets.xor()
    fastmlp.warmup(("float64",))

    def run():
        net = fastmlp.MLP((2, 10, 2), bias=False, seed=2017, backend=backend)
        return net.fit(X, y, lr=0.05, steps=steps, batch_size=50, reg=1e-6, eval_every=1,
                       progress=False)

    history = benchmark.pedantic(run, rounds=1 if backend == "numpy" else 3)
    name = "article_run_1M_steps" if steps == 1_000_000 else "article_run_100k_steps"
    describe(benchmark, name, backend, "float64", Case(50, (2, 10, 2)))
    assert len(history.frame) == steps
    ARTICLE_RUN_SECONDS_PER_STEP[backend, steps] = benchmark.stats.stats.median / steps
    if steps == 1_000_000 and ("numpy", 100_000) in ARTICLE_RUN_SECONDS_PER_STEP:
        speedup = ARTICLE_RUN_SECONDS_PER_STEP["numpy", 100_000] / ARTICLE_RUN_SECONDS_PER_STEP[backend, steps]
        assert speedup >= ARTICLE_RUN_MIN_SPEEDUP, f"{speedup:.1f}x the reference per step"


def jax_article_run(steps):
    """The article's run in JAX as its users would write it fast: the steps and every step's accuracy
    on all 300 points inside one jit-compiled lax.scan. Returns a function of the initial theta."""
    import peers
    jax = peers.jax_enable()
    arch = Case(50, (2, 10, 2)).arch._replace(bias=False)
    X, y = fastmlp.datasets.xor()
    Y = fastmlp.one_hot(y, 2)
    network, loss = peers.jax_functions(arch)
    grad = jax.grad(lambda theta: loss(theta, X[:50], Y[:50], 1e-6))
    n = arch.n_trained

    @jax.jit
    def run(theta):
        def body(theta, _):
            theta = theta.at[:n].add(-0.05 * grad(theta)[:n])
            return theta, (network(theta, X)[1].argmax(axis=1) == y).sum()       # correct of 300
        return jax.lax.scan(body, theta, None, length=steps)
    return run


def test_article_run_jax(benchmark, request):
    """The article's 1,000,000-step run (accuracy every step) with JAX's compiled loop, against the
    numba row of test_article_run; the first 1,000 steps are checked against fastmlp's."""
    _skip_if_disabled(request.config)
    import peers
    reason = peers.available("jax")
    if reason:
        pytest.skip(reason)
    net = fastmlp.MLP((2, 10, 2), bias=False, seed=2017)
    theta0 = net._theta.copy()
    short = jax_article_run(1000)
    theta_jax, correct = short(theta0)
    history = net.fit(*fastmlp.datasets.xor(), lr=0.05, steps=1000, batch_size=50, reg=1e-6, eval_every=1,
                      progress=False)
    err = float(np.abs(np.asarray(theta_jax) - net._theta).max() / np.abs(net._theta).max())
    assert err < 1e-9 and np.array_equal(np.asarray(correct), np.round(history.frame["accuracy"] * 300))
    run = jax_article_run(1_000_000)
    run(theta0)[0].block_until_ready()                        # compile outside the timing
    benchmark.pedantic(lambda: run(theta0)[0].block_until_ready(), rounds=3)
    describe(benchmark, "article_run_1M_steps", "jax", "float64", Case(50, (2, 10, 2)), max_rel_err=err)


DIGITS_EPOCHS = 100


def digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, random_state=0)


def torch_digits_fit(X, y, X_test, y_test):
    """64 -> 128 ReLU -> 10, Adam (lr 1e-3), batch 32, shuffled epochs, cross-entropy: the usual
    PyTorch loop. Returns the test accuracy."""
    import torch
    import torch.nn.functional as F
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(DIGITS_EPOCHS):
        order = torch.randperm(len(X))
        for start in range(0, len(X), 32):
            batch = order[start:start + 32]
            loss = F.cross_entropy(model(Xt[batch]), yt[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return float((model(torch.from_numpy(X_test)).argmax(1).numpy() == y_test).mean())


@pytest.mark.parametrize("backend", ["numba", "sklearn", "torch"])
def test_digits_to_trained_model(benchmark, request, backend):
    """Time to a trained model: scikit-learn's digits, 64 -> 128 ReLU -> 10, Adam, batch 32, 100 epochs,
    float64: fastmlp.MLPClassifier, scikit-learn's MLPClassifier (same parameters), a PyTorch loop."""
    _skip_if_disabled(request.config)
    import warnings
    import peers
    reason = peers.available("sklearn") or (backend == "torch" and peers.available("torch"))
    if reason:
        pytest.skip(reason)
    X, X_test, y, y_test = digits_split()
    params = dict(hidden_layer_sizes=(128,), batch_size=32, max_iter=DIGITS_EPOCHS, n_iter_no_change=DIGITS_EPOCHS,
                  random_state=0)

    def fit():
        if backend == "torch":
            return torch_digits_fit(X, y, X_test, y_test)
        from sklearn import neural_network
        import fastmlp.sklearn
        module = fastmlp.sklearn if backend == "numba" else neural_network
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return module.MLPClassifier(**params).fit(X, y).score(X_test, y_test)

    score = benchmark.pedantic(fit, rounds=3, warmup_rounds=1 if backend == "numba" else 0)
    describe(benchmark, "digits_100_epochs", backend, "float64", Case(len(X), (64, 128, 10), **CE),
             test_score=score)
    assert score > 0.95


FIT_EPOCHS = 20


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", ["numba", "minimal"])
def test_fit_epochs_of_small_batches(benchmark, request, backend, dtype):
    """Per step, a fit of many small batches: digits-shaped data (1,797 rows of 64 inputs, 10 classes),
    64 -> 128 ReLU -> 10 softmax with cross-entropy, SGD, batch 32, 20 shuffled epochs (1,140 steps),
    one evaluation at the end: MLP.fit (numba) against a Python loop of the minimal NumPy step over
    shuffled batches. Both take the same steps, so the ratio of the rows is the ratio per step."""
    _skip_if_disabled(request.config)
    rng = np.random.default_rng(0)
    N = 1797
    X = rng.normal(size=(N, 64)).astype(dtype)
    y = rng.integers(0, 10, N)
    Y = np.eye(10, dtype=dtype)[y]
    net = fastmlp.MLP((64, 128, 10), activation="relu", output="softmax", loss="cross_entropy", init="glorot",
                      dtype=dtype)
    steps = FIT_EPOCHS * -(-N // 32)
    theta0 = net._theta.copy()

    def fit():
        net._theta[...] = theta0
        net.fit(X, y, lr=0.01, epochs=FIT_EPOCHS, batch_size=32, shuffle=True, seed=0, eval_every=steps,
                progress=False)

    def python_loop():
        theta, order_rng = theta0.copy(), np.random.default_rng(0)
        for _ in range(FIT_EPOCHS):
            order = order_rng.permutation(N)
            for start in range(0, N, 32):
                rows = order[start:start + 32]
                minimal_numpy.step(net._arch, theta, X[rows], Y[rows], 0.01)

    benchmark.pedantic(fit if backend == "numba" else python_loop, rounds=5, warmup_rounds=1)
    describe(benchmark, f"fit_{FIT_EPOCHS}_epochs_batch_32", backend, dtype, Case(N, (64, 128, 10), **CE))
