"""forward, step and the multi-step train_loop, for each backend, dtype and case of the grid.

Backends: numpy (fastmlp.reference, the oracle), numba (the kernels), minimal (a plain NumPy step,
benchmarks/minimal_numpy.py: the yardstick of the kernels' speed on the bricks) and the peers users
would pick instead, torch, jax and sklearn (benchmarks/peers.py; skipped, with the reason, where not
installed or where the framework cannot express the case).

Every numba case first runs the same inputs through the reference and fails if they disagree
beyond the tolerances of tests/test_kernels.py; every peer case likewise, within PEER_TOL (its
errors go into the row); compile time is measured once per (operation, dtype) and kept out of the
timed rounds.
"""

import time
from typing import NamedTuple

import numba
import numpy as np
import pytest

import fastmlp
import minimal_numpy
import peers
from fastmlp import kernels, reference
from fastmlp.architecture import Architecture
from fastmlp.loop import LoopSettings

BACKENDS = {"numpy": reference, "numba": kernels, "minimal": minimal_numpy}
PEERS = ("torch", "jax", "sklearn")
TOL = {"float64": 1e-12, "float32": 1e-4}
TRAIN_TOL = {"float64": 1e-9, "float32": 1e-3}   # after 1,000 steps: rounding compounds
PEER_TOL = {"float64": 1e-9, "float32": 1e-4}     # the issue's bar for the peers' rows
REFERENCE_MEMORY_LIMIT = 16e9                     # bytes of (N, width) arrays the reference may make
TRAIN_STEPS = 1000


class Case(NamedTuple):
    """A benchmark case: a batch of N rows through a network."""

    N: int
    sizes: tuple
    activation: str = "sigmoid"
    output: str = "sigmoid"
    loss: str = "mse"

    @property
    def arch(self):
        return Architecture(self.sizes, (self.activation,) * (len(self.sizes) - 2), self.output, self.loss, True)

    @property
    def id(self):
        return "x".join(map(str, (self.N, *self.sizes))) + (
            "" if self.activation == "sigmoid" and self.output == "sigmoid" and self.loss == "mse"
            else f"-{self.activation}-{self.output}-{self.loss}")


def article_kind(N, H):
    return Case(N, (2, H, 2))


CE = dict(activation="relu", output="softmax", loss="cross_entropy")
ARTICLE = [article_kind(300, 3), article_kind(300, 50)]
XOR_LIKE = [article_kind(n, h) for n in (1_000, 10_000, 100_000) for h in (16, 128, 512, 2048)]
WIDE = [Case(4096, (784, 256, 10)), Case(4096, (784, 1024, 10))]
BRICKS = [Case(32, (64, 128, 10), **CE), Case(128, (64, 128, 10), **CE), Case(32, (31, 128, 10)),
          Case(1024, (20, 64, 64, 64, 1), activation="relu", output="identity"),
          Case(256, (784, 256, 128, 10), **CE), Case(4096, (784, 512, 512, 10), **CE)]
GRIDS = {
    "small": [article_kind(300, 3), article_kind(1000, 16), Case(2000, (40, 20, 3)), Case(32, (64, 128, 10), **CE),
              Case(64, (5, 16, 16, 1), activation="tanh", output="identity")],
    "default": ARTICLE + XOR_LIKE + WIDE + BRICKS,
    "full": ARTICLE + XOR_LIKE + WIDE + BRICKS + [article_kind(n, 4096) for n in (10_000, 100_000)]
    + [article_kind(1_000_000, 1024)],
}
TRAIN_SHAPES = {"small": [Case(50, (2, 10, 2))], "default": [Case(50, (2, h, 2)) for h in (3, 10, 50)]
                + [Case(32, (64, 128, 10), **CE)]}
TRAIN_SHAPES["full"] = TRAIN_SHAPES["default"]


def parse_case(text):
    """A Case from --fastmlp-case 'N:SIZES:ACTIVATION:OUTPUT:LOSS', e.g. '128:784,256,10:relu:softmax:cross_entropy'."""
    try:
        n, sizes, activation, output, loss = text.split(":")
        case = Case(int(n), tuple(int(s) for s in sizes.split(",")), activation, output, loss)
    except ValueError:
        raise pytest.UsageError(f"--fastmlp-case must be N:SIZES:ACTIVATION:OUTPUT:LOSS, e.g. "
                                f"128:784,256,10:relu:softmax:cross_entropy; got {text!r}") from None
    fastmlp.MLP(case.sizes, activation=case.activation, output=case.output, loss=case.loss)   # checks it
    return case


def pytest_generate_tests(metafunc):
    grid = metafunc.config.getoption("--fastmlp-grid") or (
        "small" if metafunc.config.getoption("benchmark_disable", False) else "default")
    one_case = metafunc.config.getoption("--fastmlp-case")
    name = metafunc.function.__name__
    if "case" in metafunc.fixturenames:
        cases = {"test_train_loop": TRAIN_SHAPES[grid], "test_interleaved": INTERLEAVED,
                 "test_step_one_thread": WIDE + BRICKS}.get(name, GRIDS[grid])
        if grid == "small" and cases is not GRIDS[grid]:
            cases = cases[:1]
        if one_case:
            cases = [parse_case(one_case)] if name in ("test_forward", "test_step", "test_train_loop") else []
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])
    if "backend" in metafunc.fixturenames:
        backends = [*BACKENDS, *PEERS] if name != "test_train_loop" else ["numpy", "numba", "torch", "jax"]
        chosen = metafunc.config.getoption("--fastmlp-backends")
        if chosen:
            unknown = set(chosen.split(",")) - {*BACKENDS, *PEERS}
            if unknown:
                raise pytest.UsageError(f"--fastmlp-backends: unknown {sorted(unknown)}; the backends are "
                                        f"{[*BACKENDS, *PEERS]}")
            backends = [b for b in backends if b in chosen.split(",")]
        metafunc.parametrize("backend", backends)
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize("dtype", ["float64", "float32"])


def make_case(case, dtype, seed=0):
    """X, one-hot Y (or values for identity outputs) and theta drawn as glorot-like uniform weights."""
    arch = case.arch
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(case.N, arch.sizes[0])).astype(dtype)
    O = arch.sizes[-1]
    Y = rng.normal(size=(case.N, O)) if arch.output == "identity" else fastmlp.one_hot(rng.integers(0, O, case.N), O)
    theta = np.concatenate([rng.uniform(-1, 1, a * b) / np.sqrt(a) for a, b in zip(arch.sizes[:-1], arch.sizes[1:])]
                           + [rng.uniform(-0.1, 0.1, b) for b in arch.sizes[1:]])
    return X, Y.astype(dtype), theta.astype(dtype)


def reference_fits(case, dtype):
    return 6 * case.N * sum(case.sizes[1:]) * np.dtype(dtype).itemsize <= REFERENCE_MEMORY_LIMIT


def errors(got, want):
    """(max absolute error, max error relative to the largest reference magnitude) over arrays."""
    abs_err = max(float(np.abs(np.asarray(g, np.float64) - w).max()) for g, w in zip(got, want))
    scale = max(float(np.abs(w).max()) for w in want)
    return abs_err, abs_err / max(scale, 1e-300)


def describe(benchmark, operation, backend, dtype, case, **extra):
    sizes = case.sizes
    benchmark.group = f"{operation} {dtype} {case.id}"
    benchmark.extra_info.update(
        operation=operation, backend=backend, dtype=dtype, n_samples=case.N, n_inputs=sizes[0],
        n_hidden=sizes[1] if len(sizes) > 2 else 0, n_outputs=sizes[-1], sizes="-".join(map(str, sizes)),
        activation=case.activation if len(sizes) > 2 else "", output=case.output, loss=case.loss,
        flops=FLOPS[operation](case) if operation in FLOPS else None, threads=backend_threads(backend),
        numpy_version=np.__version__, numba_version=numba.__version__, blas=blas_kernel(), **extra)


def backend_threads(backend):
    """The threads a backend computes with: numba's, torch's intra-op threads, the cores for JAX (XLA's
    CPU client uses them all), 1 for NumPy code (its BLAS may use more)."""
    if backend == "numba":
        return numba.get_num_threads()
    if backend == "torch":
        import torch
        return torch.get_num_threads()
    if backend == "jax":
        import os
        return os.cpu_count()
    return 1


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


def step_flops(case):
    """The useful floating-point work of one step: 2 N a b per product, three products per layer
    (forward, weight gradient, input gradient; two for the first layer), elementwise work not counted."""
    products = [(a, b) for a, b in zip(case.sizes[:-1], case.sizes[1:])]
    return sum(2 * case.N * a * b * (2 if l == 0 else 3) for l, (a, b) in enumerate(products))


def forward_flops(case):
    """One product per layer: 2 N a b each."""
    return sum(2 * case.N * a * b for a, b in zip(case.sizes[:-1], case.sizes[1:]))


FLOPS = {"forward": forward_flops, "step": step_flops, "train_loop": lambda case: TRAIN_STEPS * step_flops(case)}


def prepare(benchmark, operation, backend, dtype, case, compile_seconds, first_call):
    """Describe the case; for numba, time the first call once (compile) and return its seconds."""
    if backend != "numba" and not reference_fits(case, dtype):
        pytest.skip(f"NumPy would need over {REFERENCE_MEMORY_LIMIT / 1e9:.0f} GB for {case.id}")
    compile_s = None
    if backend == "numba":
        compile_s = first_call_seconds(compile_seconds, (operation, dtype, kernels.is_fused(case.arch)), first_call)
    describe(benchmark, operation, backend, dtype, case, compile_s=compile_s)


def case_net(case, dtype, backend="numba"):
    """The case's network as a user builds it (its parameters are set from make_case's theta)."""
    arch = case.arch
    return fastmlp.MLP(case.sizes, backend=backend, dtype=dtype, activation=arch.activations or "sigmoid",
                       output=arch.output, loss=arch.loss)


def public_step(net, X, Y):
    """A step through the public MLP.step (arguments checked), as users call it."""
    return net.step(X, Y, 1e-3, 1e-3, "l2")


def peer_setup(benchmark, operation, backend, dtype, case):
    """Skip (with the reason) a peer that is not installed or cannot express the case; else describe it."""
    reason = peers.available(backend) or peers.cannot_express(backend, case.arch, operation)
    if reason:
        pytest.skip(reason)
    describe(benchmark, operation, backend, dtype, case)


def peer_check(benchmark, got, want, dtype, tol=PEER_TOL):
    abs_err, rel_err = errors(got, want)
    benchmark.extra_info.update(max_abs_err=abs_err, max_rel_err=rel_err)
    assert rel_err <= tol[dtype], f"{benchmark.extra_info['backend']} disagrees with the reference: {rel_err:.3g}"


def test_forward(benchmark, backend, dtype, case, compile_seconds):
    X, Y, theta = make_case(case, dtype)
    if backend in PEERS:
        peer_setup(benchmark, "forward", backend, dtype, case)
        forward = peers.SETUPS[backend](case.arch, theta, X, Y, 1e-3, 1e-3)[0]
        want = reference.forward(case.arch, theta, X)
        peer_check(benchmark, [np.asarray(forward()).reshape(want.shape)], [want], dtype)
        benchmark(forward)
        return
    impl, arch = BACKENDS[backend], case.arch
    prepare(benchmark, "forward", backend, dtype, case, compile_seconds, lambda: impl.forward(arch, theta, X[:3]))
    out = benchmark(impl.forward, arch, theta, X)
    if backend == "numba" and reference_fits(case, dtype):
        check(benchmark, [out], [reference.forward(arch, theta, X)], TOL[dtype])


def test_step(benchmark, backend, dtype, case, compile_seconds):
    """One step through the public MLP.step for the backends (arguments checked, as users call it),
    the minimal NumPy step called directly."""
    X, Y, theta = make_case(case, dtype)
    arch = case.arch
    if backend in PEERS:
        peer_setup(benchmark, "step", backend, dtype, case)
        _, step, read = peers.SETUPS[backend](arch, theta.copy(), X, Y, 1.0, 1e-3)
        step()                                 # at lr 1 the update is the gradient itself: compared with the reference's
        _, gradient = reference.loss_and_gradients(arch, theta, X, Y, 1e-3, "l2")
        n = arch.n_trained
        peer_check(benchmark, [(theta.astype(np.float64) - read())[:n]], [gradient[:n]], dtype)
        benchmark(peers.SETUPS[backend](arch, theta.copy(), X, Y, 1e-3, 1e-3)[1])
        return
    if backend == "minimal":
        prepare(benchmark, "step", backend, dtype, case, compile_seconds, None)
        benchmark(minimal_numpy.step, arch, theta, X, Y, 1e-3, 1e-3, "l2")
        return
    net = case_net(case, dtype, backend)
    # the first call is the benchmarked one itself: a step that first loads its kernel inside the
    # benchmark makes pytest-benchmark calibrate on the load and time only a handful of rounds
    prepare(benchmark, "step", backend, dtype, case, compile_seconds, lambda: public_step(net, X[:3], Y[:3]))
    net._theta[...] = theta
    if backend == "numba" and reference_fits(case, dtype):
        loss_k, grad_k = kernels.loss_and_gradients(arch, theta, X, Y, 1e-3, "l2")
        loss_r, grad_r = reference.loss_and_gradients(arch, theta, X, Y, 1e-3, "l2")
        check(benchmark, [np.array(loss_k), grad_k], [np.array(loss_r), grad_r], TOL[dtype])
    benchmark(public_step, net, X, Y)


INTERLEAVED = [Case(32, (64, 128, 10), **CE), Case(128, (64, 128, 10), **CE),
               Case(1024, (20, 64, 64, 64, 1), activation="relu", output="identity"), Case(4096, (784, 512, 10))]
INTERLEAVED_ROUNDS = 200          # at most, and about 2 GFLOP of steps a side (at least 10 rounds)


@pytest.mark.parametrize("side", ["numba", "minimal"])
def test_interleaved(benchmark, side, case, compile_seconds):
    """A program that mixes NumPy and fastmlp: one minimal NumPy step, then one public fastmlp step, in
    turn; the row times `side`'s step only (the other one runs, untimed, before each round), and
    alone_median_s is the same step's median run alone just before, in the same test. Their ratio
    is what a mixed program costs: thread pools that spin after their work take the other's cores."""
    dtype = "float64"
    X, Y, theta = make_case(case, dtype)
    arch = case.arch
    net = case_net(case, dtype)
    prepare(benchmark, "interleaved", side, dtype, case, compile_seconds, lambda: public_step(net, X[:3], Y[:3]))
    net._theta[...] = theta
    numpy_theta = theta.copy()
    steps = {"numba": lambda: public_step(net, X, Y),
             "minimal": lambda: minimal_numpy.step(arch, numpy_theta, X, Y, 1e-3, 1e-3, "l2")}
    timed, other = steps[side], steps["minimal" if side == "numba" else "numba"]
    rounds = max(10, min(INTERLEAVED_ROUNDS, int(2e9 / step_flops(case))))
    alone = []
    for _ in range(rounds + 3):
        start = time.perf_counter()
        timed()
        alone.append(time.perf_counter() - start)
    benchmark.extra_info["alone_median_s"] = float(np.median(alone[3:]))

    def setup():                # untimed before each round; returns None (pytest-benchmark reads a
        other()                 # returned value as the target's arguments)
    benchmark.pedantic(timed, setup=setup, rounds=rounds, iterations=1, warmup_rounds=2)


def test_step_one_thread(benchmark, dtype, case, compile_seconds):
    """The public numba step with Numba held to one thread (the rows of test_step have all of them):
    what a second core buys at each size. Same bits either way (tests/test_kernels.py)."""
    X, Y, theta = make_case(case, dtype)
    net = case_net(case, dtype)
    prepare(benchmark, "step", "numba", dtype, case, compile_seconds, lambda: public_step(net, X[:3], Y[:3]))
    net._theta[...] = theta
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        benchmark.extra_info["threads"] = 1
        benchmark(public_step, net, X, Y)
    finally:
        numba.set_num_threads(before)


def run_train_loop(impl, arch, X, Y, y, theta, batch):
    curves = tuple(np.full(TRAIN_STEPS, np.nan) for _ in range(5))
    empty = (X[:0], Y[:0], y[:0], X[0, :0])
    settings = LoopSettings(batch, np.full(TRAIN_STEPS, 0.05), 1e-6, "l2", 0.0, TRAIN_STEPS, 0, False)
    impl.train_loop(arch, theta, ((X, Y, X[0, :0]), (X, Y, y), empty), settings, curves)


def test_train_loop(benchmark, backend, dtype, case, compile_seconds):
    """1,000 steps on a fixed batch of case.N rows (the article's: the first 50 XOR points), no
    evaluation between them."""
    arch = case.arch
    if arch.sizes[0] == 2:
        X, y = fastmlp.datasets.xor(300)
        X, Y, _ = X[:case.N].astype(dtype), fastmlp.one_hot(y, 2)[:case.N].astype(dtype), None
        theta = make_case(case, dtype)[2]
    else:
        X, Y, theta = make_case(case, dtype)
    y = np.argmax(Y, axis=1)
    if backend in PEERS:
        peer_setup(benchmark, "train_loop", backend, dtype, case)
        run = peer_train_loop(backend, arch, X, Y)
        want = theta.copy()
        run_train_loop(reference, arch, X, Y, y, want, case.N)
        peer_check(benchmark, [run(theta.copy())], [want], dtype, TRAIN_TOL)
        benchmark.pedantic(run, args=(theta.copy(),), rounds=5, iterations=1)
        return
    impl = BACKENDS[backend]
    prepare(benchmark, "train_loop", backend, dtype, case, compile_seconds,
            lambda: run_train_loop(impl, arch, X, Y, y, theta.copy(), case.N))
    if backend == "numba":
        got, want = theta.copy(), theta.copy()
        run_train_loop(kernels, arch, X, Y, y, got, case.N)
        run_train_loop(reference, arch, X, Y, y, want, case.N)
        check(benchmark, [got], [want], TRAIN_TOL[dtype])
    benchmark.pedantic(run_train_loop, args=(impl, arch, X, Y, y, theta, case.N), rounds=5, iterations=1)


def peer_train_loop(backend, arch, X, Y):
    """theta -> theta after TRAIN_STEPS steps as run_train_loop takes them (lr 0.05, reg 1e-6): a Python
    loop of eager steps (torch), or the whole loop under lax.scan inside jit (jax; compiled here)."""
    if backend == "jax":
        loop = peers.jax_train_loop(arch, TRAIN_STEPS, 0.05, 1e-6)
        loop(np.zeros(arch.n_parameters, X.dtype), X, Y).block_until_ready()
        return lambda theta: np.asarray(loop(theta, X, Y).block_until_ready())

    def run(theta):
        _, step, read = peers.SETUPS[backend](arch, theta, X, Y, 0.05, 1e-6)
        for _ in range(TRAIN_STEPS):
            step()
        return read()
    return run
