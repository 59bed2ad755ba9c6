"""forward, step and the multi-step train_loop, for each backend, dtype and shape of the grid.

Every numba case first runs the same inputs through the reference and fails if they disagree
beyond the tolerances of tests/test_kernels.py; compile time is measured once per (operation,
dtype) and kept out of the timed rounds.
"""

import time

import numba
import numpy as np
import pytest

import fastmlp
from fastmlp import kernels, reference

BACKENDS = {"numpy": reference, "numba": kernels}
TOL = {"float64": 1e-12, "float32": 1e-4}
TRAIN_TOL = {"float64": 1e-9, "float32": 1e-3}   # after 1,000 steps: rounding compounds
REFERENCE_MEMORY_LIMIT = 16e9                     # bytes of (N, H) arrays the reference may make
TRAIN_STEPS = 1000

ARTICLE = [(300, 2, 3, 2), (300, 2, 50, 2)]
XOR_LIKE = [(n, 2, h, 2) for n in (1_000, 10_000, 100_000) for h in (16, 128, 512, 2048)]
WIDE = [(4096, 784, 1024, 10)]
GRIDS = {
    "small": [(300, 2, 3, 2), (1000, 2, 16, 2), (2000, 40, 20, 3)],
    "default": ARTICLE + XOR_LIKE + WIDE,
    "full": ARTICLE + XOR_LIKE + WIDE + [(n, 2, 4096, 2) for n in (10_000, 100_000)]
    + [(1_000_000, 2, 1024, 2)],
}
TRAIN_SHAPES = {"small": [(50, 2, 10, 2)], "default": [(50, 2, h, 2) for h in (3, 10, 50)]}
TRAIN_SHAPES["full"] = TRAIN_SHAPES["default"]


def pytest_generate_tests(metafunc):
    grid = metafunc.config.getoption("--fastmlp-grid") or (
        "small" if metafunc.config.getoption("benchmark_disable", False) else "default")
    if "shape" in metafunc.fixturenames:
        shapes = TRAIN_SHAPES[grid] if metafunc.function.__name__ == "test_train_loop" else GRIDS[grid]
        metafunc.parametrize("shape", shapes, ids=["x".join(map(str, s)) for s in shapes])
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", list(BACKENDS))
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize("dtype", ["float64", "float32"])


def make_case(shape, dtype, seed=0):
    N, D, H, O = shape
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D)).astype(dtype)
    Y = fastmlp.one_hot(rng.integers(0, O, N), O).astype(dtype)
    params = [(rng.uniform(-1, 1, size=s) / np.sqrt(s[0] if len(s) == 2 else 1)).astype(dtype)
              for s in [(D, H), (H,), (H, O), (O,)]]
    return X, Y, params


def reference_fits(shape, dtype):
    N, _, H, _ = shape
    return 6 * N * H * np.dtype(dtype).itemsize <= REFERENCE_MEMORY_LIMIT


def errors(got, want):
    """(max absolute error, max error relative to the largest reference magnitude) over arrays."""
    abs_err = max(float(np.abs(np.asarray(g, np.float64) - w).max()) for g, w in zip(got, want))
    scale = max(float(np.abs(w).max()) for w in want)
    return abs_err, abs_err / max(scale, 1e-300)


def describe(benchmark, operation, backend, dtype, shape, **extra):
    N, D, H, O = shape
    benchmark.group = f"{operation} {dtype} {'x'.join(map(str, shape))}"
    benchmark.extra_info.update(
        operation=operation, backend=backend, dtype=dtype, n_samples=N, n_inputs=D, n_hidden=H,
        n_outputs=O, threads=numba.get_num_threads() if backend == "numba" else 1,
        numpy_version=np.__version__, numba_version=numba.__version__, blas=blas_kernel(), **extra)


def blas_kernel():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown"
    return ";".join(f"{i.get('internal_api')}:{i.get('architecture')}" for i in threadpool_info()
                    if i.get("user_api") == "blas") or "none"


def first_call_seconds(compile_seconds, key, fn):
    """Run fn once; the first time per key, record how long it took (JIT compile or cache load)."""
    start = time.perf_counter()
    fn()
    compile_seconds.setdefault(key, time.perf_counter() - start)
    return compile_seconds[key]


def check(benchmark, got, want, tol):
    abs_err, rel_err = errors(got, want)
    benchmark.extra_info.update(max_abs_err=abs_err, max_rel_err=rel_err)
    assert rel_err <= tol, f"numba disagrees with the reference: max relative error {rel_err:.3g} > {tol:g}"


def prepare(benchmark, operation, backend, dtype, shape, compile_seconds, first_call):
    """Describe the case; for numba, time the first call once (compile) and return its seconds."""
    if backend == "numpy" and not reference_fits(shape, dtype):
        pytest.skip(f"the reference would need over {REFERENCE_MEMORY_LIMIT / 1e9:.0f} GB for {shape}")
    compile_s = None
    if backend == "numba":
        compile_s = first_call_seconds(compile_seconds, (operation, dtype, shape[1] >= kernels.BLAS_MIN_INPUTS),
                                       first_call)
    describe(benchmark, operation, backend, dtype, shape, compile_s=compile_s)


def test_forward(benchmark, backend, dtype, shape, compile_seconds):
    X, _, params = make_case(shape, dtype)
    impl = BACKENDS[backend]
    prepare(benchmark, "forward", backend, dtype, shape, compile_seconds, lambda: impl.forward(X[:3], *params))
    h2 = benchmark(impl.forward, X, *params)
    if backend == "numba" and reference_fits(shape, dtype):
        check(benchmark, [h2], [reference.forward(X, *params)], TOL[dtype])


def test_step(benchmark, backend, dtype, shape, compile_seconds):
    X, Y, params = make_case(shape, dtype)
    impl = BACKENDS[backend]
    prepare(benchmark, "step", backend, dtype, shape, compile_seconds,
            lambda: impl.step(X[:3], Y[:3], *[p.copy() for p in params], 1e-3))
    if backend == "numba" and reference_fits(shape, dtype):
        loss_k, grads_k = kernels.loss_and_gradients(X, Y, *params, 1e-3, "l2")
        loss_r, grads_r = reference.loss_and_gradients(X, Y, *params, 1e-3, "l2")
        check(benchmark, [np.array(loss_k), *grads_k], [np.array(loss_r), *grads_r], TOL[dtype])
    benchmark(impl.step, X, Y, *params, 1e-3, 1e-3, "l2", True)


def run_train_loop(impl, X, Y, y, params, batch):
    curves = [np.full(TRAIN_STEPS, np.nan) for _ in range(5)]
    empty = X[:0]
    impl.train_loop(X, Y, batch, np.full(TRAIN_STEPS, 0.05), 1e-6, "l2", 0.0, True, *params,
                    X, y, empty, Y[:0], y[:0], TRAIN_STEPS, 0, False, *curves)


def test_train_loop(benchmark, backend, dtype, shape, compile_seconds):
    """1,000 steps on the article's fixed batch (shape[0] = 50 rows), no evaluation between them."""
    batch, D, H, O = shape
    X, y = fastmlp.datasets.xor(300)
    X = X.astype(dtype)
    Y = fastmlp.one_hot(y, 2).astype(dtype)
    Xb, Yb, yb = X[:batch], Y[:batch], y[:batch]
    _, _, params = make_case((300, D, H, O), dtype)
    impl = BACKENDS[backend]
    prepare(benchmark, "train_loop", backend, dtype, shape, compile_seconds,
            lambda: run_train_loop(impl, Xb, Yb, yb, [p.copy() for p in params], batch))
    if backend == "numba":
        got, want = [p.copy() for p in params], [p.copy() for p in params]
        run_train_loop(kernels, Xb, Yb, yb, got, batch)
        run_train_loop(reference, Xb, Yb, yb, want, batch)
        check(benchmark, got, want, TRAIN_TOL[dtype])
    benchmark.pedantic(run_train_loop, args=(impl, Xb, Yb, yb, params, batch), rounds=5, iterations=1)
