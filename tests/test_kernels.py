"""The Numba kernels against the NumPy reference: exactness, dtypes, determinism."""

import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import fastmlp
from fastmlp import bricks, kernels, reference
from fastmlp.architecture import Architecture
from fastmlp.kernels import certify, fastmath, fused, plan
from fastmlp.loop import LoopSettings
from test_reference import architectures, random_problem, random_weights

# max error relative to the largest magnitude of the reference result (README "Tolerances")
TOL = {np.float64: 1e-12, np.float32: 1e-4}


def rel_err(a, b):
    """(A float32 scale of 0 against 1e-300 compares in float32, where 1e-300 is 0 too: hence float().)"""
    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(float(np.abs(b).max()), 1e-300))


def assert_kernels_match(arch, X, Y, theta, reg=0.0, penalty="l2", w=None):
    """forward, loss and gradients of the kernels against the reference, in X's dtype (rows weighted by w)."""
    dtype = X.dtype.type
    out, out_r = kernels.forward(arch, theta, X), reference.forward(arch, theta, X)
    assert out.dtype == dtype
    assert rel_err(out, out_r) <= TOL[dtype]
    loss_r, grad_r = reference.loss_and_gradients(arch, theta, X, Y, reg, penalty, w)
    loss_k, grad_k = kernels.loss_and_gradients(arch, theta, X, Y, reg, penalty, w)
    assert grad_k.dtype == dtype
    # a loss near 0 is outputs that fit their targets to many digits: an output's last bit then moves it
    # by about sqrt(loss) |output| ulp (mse), so the error is measured against that where it is larger
    loss_scale = max(abs(loss_r), np.sqrt(abs(loss_r)) * float(np.abs(out_r).max()), 1e-300)
    assert abs(loss_k - loss_r) <= TOL[dtype] * loss_scale
    assert abs(kernels.loss(arch, theta, X, Y, reg, penalty, w) - loss_r) <= TOL[dtype] * loss_scale
    # a saturated output makes every gradient tiny, each a difference of terms of the loss's order: the
    # error is measured against those where the gradient is smaller (softmax/mse at N = 1: 2e-7, 5e-16 apart)
    scale = max(float(np.abs(grad_r).max()), min(1.0, abs(loss_r)))
    assert float(np.abs(np.asarray(grad_k, np.float64) - grad_r).max()) <= TOL[dtype] * scale
    # a step: small batches take it during the backward pass (layers.step_in_place), large ones after
    theta_k, theta_r = theta.copy(), theta.copy()
    loss_k = kernels.step(arch, theta_k, X, Y, 0.5, reg, penalty, w)
    assert abs(loss_k - reference.step(arch, theta_r, X, Y, 0.5, reg, penalty, w)) <= TOL[dtype] * loss_scale
    assert rel_err(theta_k, theta_r) <= TOL[dtype]
    assert np.array_equal(theta_k[arch.n_trained:], theta[arch.n_trained:])    # no biases: they stay


@settings(max_examples=60, deadline=None)
@given(arch=architectures(max_depth=3, max_width=12), N=st.one_of(st.integers(1, 40), st.integers(300, 2500)),
       dtype=st.sampled_from([np.float64, np.float32]), reg=st.sampled_from([0.0, 0.01]),
       penalty=st.sampled_from(["l2", "l1"]), weighted=st.booleans(), seed=st.integers(0, 999))
def test_kernels_match_reference_on_random_networks(arch, N, dtype, reg, penalty, weighted, seed):
    rng = np.random.default_rng(seed)
    X, Y, theta = random_problem(rng, arch, N, dtype)
    # outside the tolerances' domain: the kernels' exp is clamped where its value would leave the normal
    # numbers (fastmath.X_MIN_32 / X_MIN_64), so an output near or below exp(X_MIN), and the gradients
    # made of it, are that number's size, not the reference's (float32: 1.6e-38 against 3e-45)
    out_r = reference.forward(arch, theta, X)
    least = np.exp(fastmath.X_MIN_32 if dtype == np.float32 else fastmath.X_MIN_64)
    assume(not np.any((out_r != 0) & (np.abs(out_r) < 1e6 * least)))
    assert_kernels_match(arch, X, Y, theta, reg, penalty, random_weights(rng, N, weighted, dtype))


@settings(max_examples=30, deadline=None)
@given(N=st.one_of(st.integers(1, 70), st.integers(500, 3000)), D=st.integers(1, 5), H=st.integers(1, 40),
       O=st.integers(1, 4), bias=st.booleans(), dtype=st.sampled_from([np.float64, np.float32]),
       seed=st.integers(0, 999))
def test_fused_path_matches_reference(N, D, H, O, bias, dtype, seed):
    """The article's arrangement with few inputs takes the fused kernels."""
    arch = Architecture((D, H, O), ("sigmoid",), "sigmoid", "mse", bias)
    assert kernels.is_fused(arch)
    X, Y, theta = random_problem(np.random.default_rng(seed), arch, N, dtype)
    assert_kernels_match(arch, X, Y, theta, 0.01, "l2")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sizes, activations, output, loss", [
    ((2, 513, 2), ("sigmoid",), "sigmoid", "mse"),                 # fused, H beyond a vector, chunks
    ((40, 33, 10), ("sigmoid",), "sigmoid", "mse"),                 # the article's bricks, layered
    ((64, 7, 3), ("relu",), "softmax", "cross_entropy"),
    ((20, 64, 64, 64, 1), ("relu",) * 3, "identity", "mse"),
    ((784, 96, 48, 10), ("tanh", "relu"), "softmax", "cross_entropy"),
])
def test_large_and_wide_shapes_match_reference(sizes, activations, output, loss, dtype):
    """Batches of several chunks on both paths."""
    arch = Architecture(sizes, activations, output, loss, True)
    N = 1100 if sizes[0] < 700 else 700
    X, Y, theta = random_problem(np.random.default_rng(1), arch, N, dtype)
    theta *= 0.5
    assert_kernels_match(arch, X, Y, theta, 0.1, "l2")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_fast_math_is_exact_and_clean_at_extremes(activation, dtype):
    """A 1-1-1 network with unit weights: out = activation(z) for z over [-1000, 1000], and a softmax of
    [z, 0] (the exp); the kernels' own exp, sigmoid and tanh within a few ulp of NumPy's."""
    z = np.concatenate([np.linspace(-1000, 1000, 20001), np.linspace(-40, 40, 20001)]).astype(dtype)
    X = z[:, None]
    arch = Architecture((1, 1, 1), (activation,), "identity", "mse", True)
    theta = np.array([1, 1, 0, 0], dtype)
    out_k = kernels.forward(arch, theta, X)
    out_r = reference.forward(arch, theta, X)
    assert np.all(np.isfinite(out_k))
    assert rel_err(out_k, out_r) <= (4e-16 if dtype == np.float64 else 2e-7)
    softmax = Architecture((1, 2), (), "softmax", "mse", True)
    theta = np.array([1, 0, 0, 0], dtype)
    p_k, p_r = kernels.forward(softmax, theta, X), reference.forward(softmax, theta, X)
    assert np.all(np.isfinite(p_k))
    assert rel_err(p_k, p_r) <= (4e-16 if dtype == np.float64 else 2e-7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_all_finite_agrees_with_numpy(dtype):
    """The bit test of every compiled entry point's input check, against np.isfinite: extremes that are
    finite (the largest normal, subnormals, -0) and each non-finite value at every position."""
    info = np.finfo(dtype)
    finite = np.array([info.max, -info.max, info.tiny / 4, -0.0, 0.0, 1.0, info.tiny], dtype)
    assert fastmath.all_finite(finite) and fastmath.all_finite(finite.reshape(7, 1))
    for bad in (np.nan, np.inf, -np.inf, -np.nan):
        for k in range(finite.size):
            a = finite.copy()
            a[k] = bad
            assert not fastmath.all_finite(a) and not fastmath.all_finite(a.reshape(1, 7))


def test_worked_example_through_numba(worked_example):
    ex = worked_example
    net = fastmlp.MLP((2, 3, 2), bias=False, seed=2017, backend="numba")
    X, Y = ex["X"][None, :], np.array(ex["setup"]["y"])[None, :]
    np.testing.assert_allclose(net.forward(X)[0], ex["h2"], rtol=0, atol=1e-8)
    net.step(X, Y, lr=ex["setup"]["learning_rate"])
    np.testing.assert_allclose(net.weights[0], ex["W1_after"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(net.weights[1], ex["W2_after"], rtol=0, atol=1e-8)


def test_thousand_xor_steps_agree(xor_data):
    """Each step's rounding differs by ~1e-16; over 1,000 steps of a contracting descent it stays
    below 1e-10 relative (measured 2e-15), far under any visible difference."""
    X, y, Y = xor_data
    nets = {b: fastmlp.MLP((2, 10, 2), seed=2017, backend=b) for b in ("numpy", "numba")}
    for net in nets.values():
        for _ in range(1000):
            net.step(X, Y, lr=3.0, reg=1e-3)
    for pk, pr in zip(nets["numba"].parameters, nets["numpy"].parameters):
        assert rel_err(pk, pr) <= 1e-10


@settings(max_examples=12, deadline=None)
@given(arch=architectures(max_depth=3, max_width=10), dtype=st.sampled_from([np.float64, np.float32]),
       weighted=st.booleans(), seed=st.integers(0, 999))
def test_hundred_fit_steps_agree_on_random_networks(arch, dtype, weighted, seed):
    """After 100 steps of fit (shuffled batches of 16, l2, sample weights or none, a validation set)
    both backends hold the same parameters and history; where a fit diverges (exp outputs with mse
    can, even at lr 0.005: (1, 1) with seed 273), both stop at the same step with the same last finite
    parameters."""
    rng = np.random.default_rng(seed)
    X, Y, _ = random_problem(rng, arch, 64, dtype)
    w = random_weights(rng, 64, weighted)
    if not arch.is_classifier():
        y = Y
    else:
        y = (Y[:, 0] > 0.5).astype(int) if arch.sizes[-1] == 1 else np.argmax(Y, axis=1)
    results = {}
    for backend in ("numpy", "numba"):
        net = fastmlp.MLP(arch.sizes, bias=arch.bias, seed=seed, backend=backend, dtype=dtype.__name__,
                          activation=arch.activations, output=arch.output, loss=arch.loss, init="glorot")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)                  # "training diverged at step ..."
            history = net.fit(X, y, lr=0.005 if arch.output == "exp" else 0.05, steps=100, batch_size=16,
                              reg=1e-3, eval_every=10, progress=False, shuffle=True, seed=seed, sample_weight=w,
                              eval_set=(X[:20], y[:20], w if w is None else w[:20]), on_divergence="stop")
        results[backend] = (net._theta.copy(), history.frame, history.diverged_at)  # (exp with mse: lr 0.05 diverges)
    (theta_r, frame_r, diverged_r), (theta_k, frame_k, diverged_k) = results["numpy"], results["numba"]
    assert diverged_k == diverged_r
    assert rel_err(theta_k, theta_r) <= TOL[dtype]
    for column in ("loss", "val_loss"):
        np.testing.assert_allclose(frame_k[column], frame_r[column], rtol=10 * TOL[dtype], atol=TOL[dtype])


DETERMINISM_SCRIPT = """
import hashlib, json, numpy as np, fastmlp
digest = lambda *arrays: hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()
rng = np.random.default_rng(0)
out = {}
# the article's network (fused path): forward and steps on a batch cut into many parallel groups
X = rng.normal(size=(20000, 2)); y = (X[:, 0] * X[:, 1] > 0).astype(int); Y = fastmlp.one_hot(y, 2)
net = fastmlp.MLP((2, 64, 2), seed=0)
out["article forward"] = digest(net.forward(X))
net.step(X, Y, lr=1.0)
for _ in range(20):
    net.step(X[:3000], Y[:3000], lr=1.0, reg=0.01)
out["article steps"] = digest(*net.parameters)
# a deep network (layered path, narrow layers: groups of rows), a step and a minibatch fit with Adam
X = rng.normal(size=(5000, 40)); y = rng.integers(0, 10, 5000)
deep = fastmlp.MLP((40, 128, 64, 64, 10), seed=0, activation="relu", output="softmax",
                   loss="cross_entropy", init="he")
deep.step(X, fastmlp.one_hot(y, 10), lr=0.1, reg=0.01)
out["deep forward"] = digest(deep.forward(X))
deep.fit(X, y, lr=1e-3, epochs=2, batch_size=256, optimizer="adam", shuffle=True, seed=1, progress=False)
out["deep fit"] = digest(*deep.parameters)
# a wide input layer (long inner dimensions), both dtypes: forward, step, a minibatch fit with momentum
for dtype in ("float64", "float32"):
    wide = fastmlp.MLP((784, 1024, 10), seed=0, activation="relu", output="softmax", loss="cross_entropy",
                       init="he", dtype=dtype)
    X = rng.normal(size=(2000, 784)).astype(dtype); y = rng.integers(0, 10, 2000)
    out[f"wide {dtype} forward"] = digest(wide.forward(X))
    out[f"wide {dtype} forward, a few rows"] = digest(*(wide.forward(X[:n]) for n in (1, 5, 12, 40)))
    wide.step(X, fastmlp.one_hot(y, 10).astype(dtype), lr=0.1)
    out[f"wide {dtype} step"] = digest(*wide.parameters)
    wide.fit(X[:600], y[:600], lr=0.01, epochs=1, batch_size=200, optimizer="momentum", progress=False)
    out[f"wide {dtype} fit"] = digest(*wide.parameters)
# sparse rows into a 5,000-word layer with Adam and a penalty: passes over theta in parts, the sparse
# product in parts of columns
import scipy.sparse
S = scipy.sparse.random(600, 5000, density=0.01, format="csr", random_state=2)
words = fastmlp.MLP((5000, 128, 4), seed=0, activation="relu", output="softmax", loss="cross_entropy",
                    init="glorot")
history = words.fit(S, rng.integers(0, 4, 600), lr=1e-3, epochs=2, batch_size=200, optimizer="adam",
                    reg=1e-3, eval_every=1, progress=False)
out["sparse adam fit"] = digest(*words.parameters, history.losses, history.frame.select_dtypes("number").to_numpy())
print(json.dumps(out))
"""
POOLS = ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def test_bitwise_deterministic_across_threads_and_runs():
    """Every pool's thread count, 1 or 2, together and one at a time, and a second run: the same bits
    of forward, step and fit, on the fused path and on narrow, deep and wide layered networks (short
    calls keep their two threads even while the other pytest worker is busy:
    FASTMLP_FOLLOW_IDLE_CORES=0). The
    guarantee comes from the construction (kernels.plan: the cut follows the shapes; kernels.blas:
    BLAS runs on one thread inside every call), not from one BLAS kernel's blocking; the test runs
    with whatever OpenBLAS kernel this machine picks (OPENBLAS_CORETYPE is left as it is)."""
    settings = [dict.fromkeys(POOLS, "2"), dict.fromkeys(POOLS, "1")]
    settings += [dict(dict.fromkeys(POOLS, "2"), **{pool: "1"}) for pool in POOLS]
    settings += [dict.fromkeys(POOLS, "2")]                                  # run to run
    outputs = []
    for threads in settings:
        run = subprocess.run([sys.executable, "-c", DETERMINISM_SCRIPT], capture_output=True, text=True,
                             env=dict(os.environ, FASTMLP_FOLLOW_IDLE_CORES="0", **threads))
        assert run.returncode == 0, run.stderr[-2000:]
        outputs.append(json.loads(run.stdout))
    for threads, out in zip(settings[1:], outputs[1:]):
        differ = [what for what in out if out[what] != outputs[0][what]]
        assert not differ, f"other bits with {threads} than with {settings[0]}: {differ}"


@pytest.mark.parametrize("arch", [
    Architecture((2, 10, 2), ("sigmoid",), "sigmoid", "mse", True),                  # fused, certified
    Architecture((2, 10, 1), ("sigmoid",), "sigmoid", "mse", True),                  # one output
    Architecture((2, 8, 6, 3), ("tanh", "relu"), "softmax", "cross_entropy", True),
    Architecture((2, 9, 1), ("relu",), "identity", "mse", False),
], ids=["fused", "one-output", "deep-softmax", "regression"])
@pytest.mark.parametrize("clip_norm", [0.5, 0.0], ids=["clipped", "in-place"])
def test_train_loop_matches_reference_loop(xor_data, arch, clip_norm):
    """clip_norm 0: the layered networks' steps between evaluations run in place (layers.step_in_place)."""
    X, y, _ = xor_data
    O = arch.sizes[-1]
    if arch.output == "identity":
        Y = (X[:, :1] * X[:, 1:]).copy()
        y = np.zeros(0, np.int64)
    else:
        y = y % O if O > 1 else y
        Y = y[:, None].astype(float) if O == 1 else np.eye(O)[y]
    theta0 = np.random.default_rng(5).normal(size=arch.n_parameters) * 0.5
    if not arch.bias:
        theta0[arch.n_weights:] = 0
    curves, thetas = {}, {}
    for name, backend in (("numpy", reference), ("numba", kernels)):
        theta = theta0.copy()
        out = tuple(np.full(500, np.nan) for _ in range(5))
        data = ((X, Y, X[0, :0]), (X, Y, y), (X[:100], Y[:100], y[:100], X[0, :0]))
        settings = LoopSettings(50, np.full(500, 0.5), 1e-3, "l2", clip_norm, 7, 0, True)
        assert backend.train_loop(arch, theta, data, settings, out) == 500
        curves[name], thetas[name] = out, theta
    for a, b in zip(curves["numba"], curves["numpy"]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(thetas["numba"], thetas["numpy"], rtol=1e-10, atol=1e-12)
    for recorded_at_evaluations in curves["numba"][1:]:          # grad_norms, scores, val_losses, val_scores
        assert np.isfinite(recorded_at_evaluations[6]) and np.isnan(recorded_at_evaluations[5])
        assert np.isfinite(recorded_at_evaluations[-1])


def exact_correct(X, y, W1, b1, W2, b2):
    """The oracle: argmax (first of equals) of the float64 forward kernel, counted."""
    out = np.empty((len(X), W2.shape[1]))
    fused.forward_into(X, W1, b1, W2, b2, out, fused.new_scratch(X, W1, W2, len(X)))
    return int((np.argmax(out, axis=1) == y).sum())


@pytest.mark.parametrize("N, D, H, O, weight_scale, step_scale, seed", [
    (300, 2, 10, 2, 1.0, 1e-4, 0),      # the article's shape, small steps: mostly lazy
    (300, 2, 10, 2, 1.0, 1e-2, 1),      # big steps: many refreshes
    (1500, 3, 7, 3, 2.0, 1e-3, 2),      # several chunks, three classes
    (40, 1, 3, 4, 0.5, 1e-3, 3),        # a few samples (all rechecked), four classes
    (300, 2, 10, 2, 30.0, 1e-3, 4),     # saturated outputs (z2 beyond Z_MAX): unsure, exact path
    (700, 5, 33, 2, 1.0, 3e-3, 5),
])
def test_certified_accuracy_equals_the_float64_forward_step(N, D, H, O, weight_scale, step_scale, seed):
    """Along a random walk of the parameters, the lazy certified count equals the exact one at every
    step, whichever of its paths (float32 refresh, drift bound, float64 recheck, exact) decided."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D))
    y = rng.integers(0, O, N)
    W1, b1, W2, b2 = [rng.normal(size=s) * weight_scale for s in [(D, H), (H,), (H, O), (O,)]]
    setup = certify.certified_setup(X, H, O, plan.fused_plan(N, D, H, O, 8)[0])
    for _ in range(400):
        for p in (W1, b1, W2, b2):
            p += rng.normal(size=p.shape) * step_scale
        assert certify.certified_correct(setup, X, y, W1, b1, W2, b2) == exact_correct(X, y, W1, b1, W2, b2)
    info = setup[3][3]
    assert info[3] >= 1                                   # refreshed at least once


def logits(X, W1, b1, W2, b2):
    """z2 of the reference, in X's dtype."""
    return bricks.sigmoid(X @ W1 + b1) @ W2 + b2


@pytest.mark.parametrize("seed", range(6))
def test_certification_bounds_hold(seed):
    """The float32 error bound E2 and the drift bound hold for every sample (and are not vacuous)."""
    rng = np.random.default_rng(seed)
    N, D, H, O = 2000, 1 + seed % 4, 3 + 7 * seed, 2 + seed % 3
    X = rng.normal(size=(N, D)) * 10.0**(seed % 3 - 1)
    W1, b1, W2, b2 = [rng.normal(size=s) * 3.0 for s in [(D, H), (H,), (H, O), (O,)]]
    xmax = np.abs(X).max(axis=0)
    Eh, E2 = np.empty(H), np.empty(O)
    certify.z2_error_bounds(W1, b1, W2, b2, xmax, certify.ROUND_32, Eh, E2)
    z64 = logits(X, W1, b1, W2, b2)
    z32 = logits(*(a.astype(np.float32) for a in (X, W1, b1, W2, b2))).astype(np.float64)
    assert (np.abs(z32 - z64) <= E2).all()
    assert E2.max() < 1e-2 * (np.abs(W2).sum(axis=0).max() + 1)
    R = [p + rng.normal(size=p.shape) * 1e-3 for p in (W1, b1, W2, b2)]
    delta = certify.drift_bound(W1, b1, W2, b2, *R, xmax, Eh)
    moved = np.abs(logits(X, W1, b1, W2, b2) - logits(X, *R)).max()
    assert moved <= delta / 2 < 1e3 * moved


def test_certified_accuracy_is_lazy_between_small_steps():
    """Small steps leave most samples' predictions certain: far fewer refreshes than evaluations."""
    rng = np.random.default_rng(7)
    X, y = fastmlp.datasets.xor()
    W1, W2 = rng.normal(size=(2, 10)), rng.normal(size=(10, 2))
    b1, b2 = np.zeros(10), np.zeros(2)
    setup = certify.certified_setup(X, 10, 2, 512)
    for _ in range(500):
        W1 += rng.normal(size=W1.shape) * 1e-5
        certify.certified_correct(setup, X, y, W1, b1, W2, b2)
    refreshes = setup[3][3][3]
    assert 1 <= refreshes < 50


def test_certified_accuracy_breaks_ties_like_argmax():
    """Equal outputs (identical output columns) give exactly equal float64 outputs: class 0, as
    np.argmax; the float32 pass must not decide these."""
    rng = np.random.default_rng(8)
    X = rng.normal(size=(200, 2))
    y = rng.integers(0, 2, 200)
    W1, b1 = rng.normal(size=(2, 6)), rng.normal(size=6)
    w = rng.normal(size=(6, 1))
    W2, b2 = np.hstack([w, w]), np.zeros(2)
    setup = certify.certified_setup(X, 6, 2, 512)
    assert certify.certified_correct(setup, X, y, W1, b1, W2, b2) == (y == 0).sum()


def test_train_loop_stops_on_divergence(xor_data):
    X, y, Y = xor_data
    arch = Architecture((2, 3, 2), ("sigmoid",), "sigmoid", "mse", True)
    theta = np.ones(arch.n_parameters)
    theta[:6] = 1e308
    out = tuple(np.full(10, np.nan) for _ in range(5))
    empty = (X[:0], Y[:0], y[:0], X[0, :0])
    settings = LoopSettings(300, np.full(10, 1e300), 1.0, "l2", 0.0, 1, 0, True)
    done = kernels.train_loop(arch, theta, ((X, Y, X[0, :0]), (X, Y, y), empty), settings, out)
    assert done < 10
    assert not np.isfinite(out[0][done]) or not np.isfinite(out[1][done])


def test_warmup_compiles_every_entry_point_for_both_dtypes_and_both_kinds_of_rows():
    """What make test relies on (it warms up before its workers start): afterwards every compiled entry
    point holds a signature for each dtype, with dense and with sparse X."""
    timings = kernels.warmup()
    assert set(timings) == {"float64", "float32"} and all(t >= 0 for t in timings.values())
    for entry in (kernels.outputs_compiled, kernels.gradients_compiled, kernels.train_loop_compiled):
        kinds = {(str(sig[1].dtype), "CSR" in str(sig)) for sig in entry.signatures}
        assert kinds >= {(d, s) for d in ("float64", "float32") for s in (False, True)}, (entry, kinds)


READ_ONLY_CACHE_SCRIPT = """
import sys
from numba.core import caching
def refuse(self):
    raise PermissionError("the package folder is read-only (simulated)")
caching.InTreeCacheLocator.ensure_cache_path = refuse
import numpy as np
from fastmlp.kernels.fastmath import all_finite
print(all_finite(np.array([1.0, np.inf])), all_finite(np.zeros(3)))
"""


def test_cache_falls_back_to_the_user_cache_when_the_package_is_read_only(tmp_path):
    """Every kernel is cached the same way (fastmath.STRICT / FAST: cache=True); one small kernel shows
    where its cache goes when the package's folder refuses it (a whole network's kernels would compile
    here for minutes: this cache starts empty)."""
    env = dict(os.environ, HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / ".cache"))
    env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", READ_ONLY_CACHE_SCRIPT], env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]
    assert list(tmp_path.glob(".cache/numba/kernels*/fastmath.*.nbi")), "no cache index in the user cache"


CACHED_PARALLEL_SCRIPT = """
import sys
import numpy as np
from fastmlp import kernels
from fastmlp.architecture import Architecture
rng = np.random.default_rng(0)
X, Y = rng.random((20000, 2)), rng.random((20000, 2))        # many chunks: the parallel path
arch = Architecture((2, 64, 2), ("sigmoid",), "sigmoid", "mse", True)
theta = rng.random(arch.n_parameters)
if sys.argv[1] == "gradients":
    kernels.loss_and_gradients(arch, theta, X, Y)
else:
    kernels.step(arch, theta, X, Y, 0.1)
"""


def test_cached_callers_of_parallel_kernels_do_not_crash():
    """numba #8578: step compiled over a cached loss_and_gradients, then loaded from the cache in a
    fresh process, called the parallel kernel before Numba's thread pool started (a segfault). The
    processes share the suite's cache (a cache of their own would compile every kernel again, minutes
    here): the first two compile or load, the last always loads."""
    for what in ("gradients", "step", "step"):
        run = subprocess.run([sys.executable, "-c", CACHED_PARALLEL_SCRIPT, what], capture_output=True,
                             text=True)
        assert run.returncode == 0, f"{what}: exit {run.returncode}\n{run.stderr[-2000:]}"


@pytest.mark.parametrize("arch, N", [
    (Architecture((64, 128, 10), ("relu",), "softmax", "cross_entropy", True), 300),    # narrow: 2 groups
    (Architecture((784, 64, 10), ("relu",), "softmax", "cross_entropy", True), 200),    # wide input: 2
    (Architecture((5, 16, 16, 1), ("tanh", "tanh"), "identity", "mse", False), 9000),   # deep: 2
    (Architecture((200, 100, 10), ("sigmoid",), "softmax", "mse", True), 26000),       # long batch: 4
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batches_split_into_parallel_groups_match_the_reference(arch, N, dtype):
    """A batch with a few groups' work runs as a power of two of groups of rows (where BLAS's threads
    can be held to one), each with its own gradient buffer; forward, loss, gradient and step match the
    reference."""
    spec = kernels.spec_of(arch)
    groups = plan.layers_groups(N, spec[0], spec[6], np.dtype(dtype).itemsize)
    if spec[6] > 1:
        assert groups > 1 and groups & (groups - 1) == 0
        assert plan.layers_groups(N, spec[0], 1, 8) == 1                           # BLAS not held: never
    assert plan.layers_groups(plan.GROUP_MIN_ROWS, spec[0], spec[6], 8) == 1      # too small to pay the fork
    rng = np.random.default_rng(3)
    X, Y, theta = random_problem(rng, arch, N, dtype)
    assert_kernels_match(arch, X, Y, theta, reg=0.1)


@pytest.mark.parametrize("N", [1, 5, 15, 16, 40])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sizes", [(784, 300, 10), (784, 256, 128, 10)], ids=str)
def test_forward_on_a_few_rows_cuts_wide_layers_into_column_groups(sizes, N, dtype):
    """Too few rows for two groups of rows: each layer with large weights has its columns cut into two
    groups instead (each thread reads half of them), the others not; forward matches the reference."""
    arch = Architecture(sizes, ("relu",) * (len(sizes) - 2), "softmax", "cross_entropy", True)
    spec, itemsize = kernels.spec_of(arch), np.dtype(dtype).itemsize
    if spec[6] > 1:
        cuts = [N < 2 * plan.FORWARD_MIN_ROWS and fan_in * fan_out * itemsize >= plan.COLUMN_MIN_BYTES
                for fan_in, fan_out in zip(sizes[:-1], sizes[1:])]
        assert [plan.column_groups(N, a, b, spec[6], itemsize) for a, b in zip(sizes[:-1], sizes[1:])] == \
            [2 if cut else 1 for cut in cuts]
        assert cuts[0] == (N < 16) and not cuts[-1]                  # the wide first layer only, on few rows
        assert plan.cuts_columns(N, spec[0], spec[6], itemsize) == (N < 16)
        assert not plan.cuts_columns(N, spec[0], 1, itemsize)         # BLAS not held: never
        assert plan.layers_groups(N, spec[0], spec[6], itemsize, plan.FORWARD_MIN_ROWS) == (1 if N < 16 else 2)
    small = kernels.spec_of(Architecture((64, 128, 10), ("relu",), "softmax", "cross_entropy", True))
    assert not plan.cuts_columns(1, small[0], small[6], itemsize)     # the fork costs more
    X, Y, theta = random_problem(np.random.default_rng(N), arch, N, dtype)
    assert_kernels_match(arch, X, Y, theta, reg=0.1)


THREADS_SCRIPT = """
import json, os, numpy as np, fastmlp
net = fastmlp.MLP((64, 128, 10), activation="relu", output="softmax", loss="cross_entropy")
X = np.random.default_rng(0).normal(size=(4096, 64))
net.forward(X)
print(json.dumps({name: os.environ.get(name) for name in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}))
"""


@pytest.mark.parametrize("user", [{}, {"GOMP_SPINCOUNT": "77"}, {"OMP_WAIT_POLICY": "active"}])
def test_starting_threads_leaves_the_environment_as_it_was(user):
    """Numba's OpenMP threads start with a short spin (kernels.threads.OMP_SPIN) unless the user chose a
    wait policy; either way the process's environment afterwards is the user's."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    run = subprocess.run([sys.executable, "-c", THREADS_SCRIPT], env=dict(env, **user), capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout) == {"GOMP_SPINCOUNT": user.get("GOMP_SPINCOUNT"),
                                      "OMP_WAIT_POLICY": user.get("OMP_WAIT_POLICY")}


def test_kernel_calls_hold_blas_to_one_thread_and_restore_it():
    """Inside every layered kernel call BLAS runs on one thread (the bits follow from the shapes);
    afterwards scipy's BLAS has the threads it had."""
    from fastmlp.kernels.blas import openblas_thread_functions
    functions = openblas_thread_functions()
    if functions is None:
        pytest.skip("scipy's BLAS is not an OpenBLAS whose threads can be set")
    get, set_ = functions
    seen = []
    arch = Architecture((64, 128, 10), ("relu",), "softmax", "cross_entropy", True)
    X, Y, theta = random_problem(np.random.default_rng(0), arch, 300)
    original, before = kernels.gradients_compiled, get()
    try:
        set_(2)
        kernels.gradients_compiled = lambda *args: (seen.append(get()), original(*args))[1]
        kernels.step(arch, theta, X, Y, 0.1)
        assert seen == [1] and get() == 2
    finally:
        kernels.gradients_compiled = original
        set_(before)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("rows, cols, inner", [(7, 5, 3), (200, 1, 64), (64, 1, 200), (200, 64, 1), (1, 1, 1),
                                               (33, 1, 1), (1, 37, 11), (1, 64, 200)])
def test_gemm_matches_numpy_for_every_transpose_and_narrow_shapes(rows, cols, inner, dtype):
    """blas.gemm, C = alpha op(A) @ op(B) + beta C, against NumPy for both transposes and beta 0 or 1,
    through BLAS, narrow_gemm's loops (one column, or an inner dimension of 1) and one_row_gemm's (one
    row, neither transposed); beta 0 ignores what C held (NaN included), as BLAS does; C may be a
    column slice of a wider array."""
    from fastmlp.kernels.blas import gemm
    rng = np.random.default_rng(rows * 100 + cols * 10 + inner)
    tol = 1e-13 if dtype == "float64" else 2e-5
    for transpose_a in (False, True):
        for transpose_b in (False, True):
            A = rng.standard_normal((inner, rows) if transpose_a else (rows, inner)).astype(dtype)
            B = rng.standard_normal((cols, inner) if transpose_b else (inner, cols)).astype(dtype)
            product = (A.T if transpose_a else A).astype(float) @ (B.T if transpose_b else B).astype(float)
            for beta in (0.0, 1.0):
                wide = rng.standard_normal((rows, cols + 2)).astype(dtype)
                before = wide[:, 1:cols + 1].copy()
                if beta == 0:
                    wide[:, 1:cols + 1] = np.nan
                gemm(transpose_a, transpose_b, A, B, wide[:, 1:cols + 1], -0.5, beta, np.empty(2, dtype))
                expected = -0.5 * product + beta * before
                np.testing.assert_allclose(wide[:, 1:cols + 1], expected, rtol=tol, atol=tol * max(1, inner),
                                           err_msg=f"op(A) {'A.T' if transpose_a else 'A'}, "
                                                   f"op(B) {'B.T' if transpose_b else 'B'}, beta {beta}")
                C = before.copy() if beta else np.full((rows, cols), np.nan, dtype)
                gemm(transpose_a, transpose_b, A, B, C, -0.5, beta, np.empty(2, dtype))
                np.testing.assert_allclose(C, expected, rtol=tol, atol=tol * max(1, inner))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_one_row_gemm_writes_its_columns_only(dtype):
    """one_row_gemm on columns [c0, c1) (a column group of forward on one row) matches NumPy there and
    leaves C's other columns as they were, for inner dimensions that four-row steps do and do not
    divide."""
    from fastmlp.kernels.blas import one_row_gemm
    rng = np.random.default_rng(7)
    tol = 1e-13 if dtype == "float64" else 2e-5
    for inner in (1, 4, 13, 784):
        A = rng.standard_normal((1, inner)).astype(dtype)
        B = rng.standard_normal((inner, 50)).astype(dtype)
        for beta in (0.0, 1.0):
            C = rng.standard_normal((1, 50)).astype(dtype)
            before = C.copy()
            one_row_gemm(A, B, C, 2.0, beta, 17, 41)
            expected = 2.0 * A.astype(float) @ B[:, 17:41].astype(float) + beta * before[:, 17:41]
            np.testing.assert_allclose(C[:, 17:41], expected, rtol=tol, atol=tol * inner)
            assert np.array_equal(C[:, :17], before[:, :17]) and np.array_equal(C[:, 41:], before[:, 41:])


def test_one_blas_thread_restores_the_count_once_for_nested_holders():
    """Held, BLAS runs on one thread; overlapping holders (fits in two Python threads) leave the count
    as it was, not at 1, whichever leaves first."""
    from fastmlp.kernels.blas import one_blas_thread, openblas_thread_functions
    functions = openblas_thread_functions()
    if functions is None:
        pytest.skip("scipy's BLAS is not an OpenBLAS whose threads can be set")
    get, _ = functions
    before = get()
    with one_blas_thread():
        assert get() == 1
    assert get() == before
    outer, inner = one_blas_thread(), one_blas_thread()
    outer.__enter__()
    inner.__enter__()
    outer.__exit__(None, None, None)          # the first holder leaves first
    assert get() == 1
    inner.__exit__(None, None, None)
    assert get() == before


def test_short_calls_take_the_callers_core_and_the_idle_ones():
    """threads_given: runnable counts the caller and fastmlp's own threads still spinning."""
    from fastmlp.kernels.threads import threads_given
    assert threads_given(2, cpus=2, runnable=1, own_spinning=0) == 2         # the other core is idle
    assert threads_given(2, cpus=2, runnable=2, own_spinning=0) == 1         # someone holds it
    assert threads_given(2, cpus=2, runnable=2, own_spinning=1) == 2         # fastmlp's own thread holds it
    assert threads_given(4, cpus=8, runnable=6, own_spinning=0) == 3
    assert threads_given(2, cpus=2, runnable=9, own_spinning=0) == 1         # never fewer than one


def loadavg(tmp_path, runnable):
    path = tmp_path / "loadavg"
    path.write_text(f"0.52 0.61 0.70 {runnable}/187 4242\n")
    return str(path)


def test_idle_cores_reads_the_runnable_threads_and_allows_for_its_own_spin(tmp_path, monkeypatch):
    from fastmlp.kernels import threads
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    busy = threads.IdleCores(loadavg(tmp_path, 2))
    assert busy.runnable() == 2 and busy.threads(2) == 1 and busy.threads(1) == 1
    busy.ended(2)                                  # fastmlp's other thread may still spin ...
    assert busy.threads(2) == 2
    monkeypatch.setattr(threads.time, "perf_counter", lambda: busy.last_end + 2 * threads.OWN_SPIN_S)
    assert busy.threads(2) == 1                    # ... but not for long
    assert threads.IdleCores(loadavg(tmp_path, 1)).threads(2) == 2
    assert threads.IdleCores(str(tmp_path / "absent")).threads(2) == 2
    assert threads.IdleCores(loadavg(tmp_path, 2), follow=False).threads(2) == 2
    (tmp_path / "garbled").write_text("no numbers here")
    assert threads.IdleCores(str(tmp_path / "garbled")).threads(2) == 2


def test_a_small_call_that_comes_alone_wakes_no_thread(tmp_path, monkeypatch):
    """Below WAKE_MIN_MACS a call long after fastmlp's last runs on one thread (its threads sleep, and
    waking one costs more than it saves); calls in quick succession take the idle core."""
    from fastmlp.kernels import threads
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    now = [100.0]
    monkeypatch.setattr(threads.time, "perf_counter", lambda: now[0])
    idle, small = threads.IdleCores(loadavg(tmp_path, 1)), threads.WAKE_MIN_MACS - 1
    assert idle.threads(2, small) == 1 and idle.threads(2, threads.WAKE_MIN_MACS) == 2
    idle.ended(1)
    now[0] += threads.OWN_SPIN_S / 2
    assert idle.threads(2, small) == 2                         # the one before ended just now
    idle.ended(2)
    now[0] += 2 * threads.OWN_SPIN_S
    assert idle.threads(2, small) == 1


@pytest.mark.parametrize("rows, threads_inside", [(128, 1), (8192, 2)], ids=["short", "long"])
def test_a_short_call_runs_on_one_thread_when_the_other_core_is_busy(tmp_path, monkeypatch, rows,
                                                                      threads_inside):
    """A short step with the other core busy runs its groups on one thread (the same bits), and
    Numba's count is the caller's again afterwards; a long one keeps its threads."""
    import numba
    from fastmlp.kernels import threads
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has one thread here")
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    busy = threads.IdleCores(loadavg(tmp_path, 2))
    monkeypatch.setattr(threads, "idle_cores", lambda: busy)
    arch = Architecture((64, 128, 10), ("relu",), "softmax", "cross_entropy", True)
    X, Y, theta = random_problem(np.random.default_rng(0), arch, rows)
    seen, original = [], kernels.gradients_compiled
    monkeypatch.setattr(kernels, "gradients_compiled",
                        lambda *args: (seen.append(numba.get_num_threads()), original(*args))[1])
    before = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        loss_busy, gradient_busy = kernels.loss_and_gradients(arch, theta, X, Y)
        assert seen == [threads_inside] and numba.get_num_threads() == 2
        monkeypatch.setattr(threads, "idle_cores", lambda: threads.IdleCores(follow=False))
        loss_idle, gradient_idle = kernels.loss_and_gradients(arch, theta, X, Y)
        assert seen[-1] == 2 and loss_busy == loss_idle and np.array_equal(gradient_busy, gradient_idle)
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_elu_keeps_its_relative_accuracy_near_zero(dtype):
    """elu below 0 (fastmath.expm1_nonpositive: the odd part doubled for |z| <= ln2 / 2) within a few ulp
    of NumPy's expm1, down to tiny z, where exp(z) - 1 would keep only exp's absolute accuracy (z = -1e-10:
    a relative error of 1e-7 in float64); through the layer kernel, as training runs it."""
    import numba
    from fastmlp.kernels.fastmath import ELU, activate_rows
    elu_rows = numba.njit(lambda Z, b: activate_rows(Z, b, ELU))
    z = -np.concatenate([np.geomspace(1e-30, 1e-3, 500), np.linspace(1e-3, 40, 20001)])
    z = z[z >= (-87 if dtype == np.float32 else -708)].astype(dtype)
    Z = z.reshape(1, -1).copy()
    elu_rows(Z, np.zeros(z.size, dtype))
    want = np.expm1(z.astype(np.float64))
    assert np.all(np.abs(Z[0] - want) <= 4 * np.spacing(np.abs(want).astype(dtype)))


@pytest.mark.parametrize("fit, bound", [("ATANH_FIT_64", 2e-18), ("ATANH_FIT_32", 1e-9)])
def test_softplus_fits_are_rederived(fit, bound):
    """fastmath's ATANH_FIT_64 and _32, A(w) = atanh(sqrt w) / sqrt w on w <= (3 - 2 sqrt 2)**2 for
    softplus' log(1 + e) = 2 s A(s**2), are mpmath's Chebyshev fits there, within `bound` of A."""
    mp = pytest.importorskip("mpmath")
    from fastmlp.kernels import fastmath
    coefficients = getattr(fastmath, fit)
    with mp.workdps(40):
        def a(w):
            return mp.atanh(mp.sqrt(w)) / mp.sqrt(w) if w > 0 else mp.mpf(1)
        fitted, error = mp.chebyfit(a, [0, (3 - 2 * mp.sqrt(2)) ** 2], len(coefficients), error=True)
    assert error < bound
    rtol = 1e-7 if isinstance(coefficients[0], np.float32) else 1e-13
    np.testing.assert_allclose(np.array(coefficients, np.float64), [float(c) for c in fitted[::-1]], rtol=rtol)


@pytest.mark.parametrize("dtype, ulps", [(np.float64, 4), (np.float32, 4)])
def test_vectorisable_softplus_is_within_a_few_ulp(dtype, ulps):
    """softplus in the kernels (fastmath.softplus_and_sigmoid64/32: log(1 + exp(-|z|)) as a series in s
    with one division, not libm's scalar log1p) within a few ulp of NumPy's logaddexp(0, z) in float64,
    and its derivative from the same exponential within a few ulp of scipy's expit."""
    import numba
    from scipy.special import expit
    from fastmlp.kernels.fastmath import softplus_and_sigmoid
    parts = numba.njit(lambda a: (np.array([softplus_and_sigmoid(x)[0] for x in a]),
                                  np.array([softplus_and_sigmoid(x)[1] for x in a])))
    z = np.concatenate([np.linspace(-50, 50, 40001), -np.geomspace(1e-3, 700, 2000), np.geomspace(1e-30, 1e-3, 500),
                        [0.0, np.log(np.sqrt(2) - 1), -np.log(np.sqrt(2) - 1)]]).astype(dtype)
    z = z[z >= (-87 if dtype == np.float32 else -708)]      # beyond, exp(z) is clamped at the least normal
    got, slope = parts(z)
    assert got.dtype == dtype and slope.dtype == dtype
    want, want_slope = np.logaddexp(0, z.astype(np.float64)), expit(z.astype(np.float64))
    assert np.all(np.abs(got - want) <= ulps * np.spacing(want.astype(dtype)))
    assert np.all(np.abs(slope - want_slope) <= 2 * ulps * np.spacing(want_slope.astype(dtype)))   # (exp's own ulps)


def erfcx_rational(num_degree, den_degree, nodes=300, rounds=10):
    """N, D (lowest power first, D(0) = 1) with N(a) / D(a) ~ erfcx(a / sqrt 2) relative on
    0 <= a <= 6 sqrt 2, as fastmath derives ERFCX_NUM_64 and ERFCX_DEN_64: linearised least squares
    N - f D ~ 0 on Chebyshev nodes, weighted by 1 / (f D) of the previous round, at 40 digits."""
    mp = pytest.importorskip("mpmath")
    with mp.workdps(40):
        top = 6 * mp.sqrt(2)
        a = [top / 2 * (1 + mp.cos(mp.pi * (k + 0.5) / nodes)) for k in range(nodes)]
        f = [mp.erfc(x / mp.sqrt(2)) * mp.exp(x * x / 2) for x in a]
        weight = [1 / v for v in f]
        for _ in range(rounds):
            rows = [[w * x**i for i in range(num_degree + 1)] + [-w * v * x**j for j in range(1, den_degree + 1)]
                    for x, v, w in zip(a, f, weight)]
            solution = mp.qr_solve(mp.matrix(rows), mp.matrix([w * v for v, w in zip(f, weight)]))[0]
            num = [solution[i] for i in range(num_degree + 1)]
            den = [mp.mpf(1)] + [solution[num_degree + j] for j in range(1, den_degree + 1)]
            weight = [1 / (v * mp.polyval(den[::-1], x)) for x, v in zip(a, f)]
        return np.array(num, dtype=np.float64), np.array(den, dtype=np.float64)


def test_float64_gelus_rational_is_rederived():
    """fastmath's N / D for gelu's float64 erfc are the fit its comment describes (all coefficients
    positive, so that Horner's rule is stable on a >= 0)."""
    from fastmlp.kernels import fastmath
    num, den = erfcx_rational(len(fastmath.ERFCX_NUM_64) - 1, len(fastmath.ERFCX_DEN_64) - 1)
    np.testing.assert_allclose(fastmath.ERFCX_NUM_64, num, rtol=1e-12)
    np.testing.assert_allclose(fastmath.ERFCX_DEN_64, den, rtol=1e-12)
    assert min(fastmath.ERFCX_NUM_64) > 0 and min(fastmath.ERFCX_DEN_64) > 0


def test_float64_gelu_parts_are_scipys_within_a_few_ulp():
    """gelu's (Phi, phi) in float64 (fastmath.gelu_parts64: erfc = exp(-z**2 / 2) N(|z|) / D(|z|), one
    exponential for both, Phi from erfc below 0) against scipy's ndtr: Phi within 1e-15 everywhere, and
    relative, where |z| <= 6 sqrt 2 (the fit's interval), within a few ulp plus what exp(-z**2 / 2)
    loses to its rounded argument (z**2 ulp); N / D against scipy's erfcx beyond the fit's interval."""
    import numba
    from scipy.special import erfcx, ndtr
    from fastmlp.kernels import fastmath
    a = np.concatenate([np.linspace(0, 40, 40001), np.geomspace(1e-300, 1e-3, 100)])
    ratio = np.polynomial.polynomial.polyval(a, fastmath.ERFCX_NUM_64) / np.polynomial.polynomial.polyval(
        a, fastmath.ERFCX_DEN_64)
    within = a <= 6 * np.sqrt(2)
    assert np.abs(ratio[within] / erfcx(a[within] / np.sqrt(2)) - 1).max() <= 16 * 2.0**-53   # (erfcx's own too)
    assert np.abs(ratio[~within] / erfcx(a[~within] / np.sqrt(2)) - 1).max() <= 1e-3      # the 1 / x tail
    parts = numba.njit(lambda a: [fastmath.gelu_parts64(x) for x in a])
    z = np.concatenate([np.linspace(-40, 40, 160001), [0.0, -0.0, 1e-300, -1e-300, 8.5, -8.5, 1e300, -1e300]])
    got = np.array(parts(z))
    with np.errstate(over="ignore"):
        cdf, density = ndtr(z), np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    assert np.abs(got[:, 0] - cdf).max() <= 1e-15 and np.abs(got[:, 1] - density).max() <= 2e-16
    near = np.abs(z) <= 6 * np.sqrt(2)
    bound = 8 * 2.0**-53 * (1 + z[near] ** 2)
    assert np.all(np.abs(got[near, 0] / cdf[near] - 1) <= bound)
    assert np.all(np.abs(got[near, 1] / density[near] - 1) <= bound)


@pytest.mark.skipif(__import__("platform").machine() not in ("x86_64", "AMD64"), reason="reads x86 assembly")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gelu_rows_vectorise(dtype):
    """gelu's loops divide in packed registers (its t and its exponential): a dispatch by dtype per
    unit once left float64's body out of line and its loop scalar (the step 4x ReLU's)."""
    import numba
    from fastmlp.kernels import fastmath

    @numba.njit(**dict(fastmath.FAST, cache=False))     # (loaded from a cache, it has no assembly to read)
    def rows(Z, b, D):
        fastmath.gelu_rows_keeping_derivative(Z, b, D)
    Z = np.ones((4, 64), dtype)
    rows(Z, Z[0], Z.copy())
    assembly = rows.inspect_asm(rows.signatures[0])
    packed = "divpd" if dtype == np.float64 else "divps"
    assert packed in assembly, f"no packed division ({packed}) in the {np.dtype(dtype).name} gelu loop"


def test_float32_gelu_parts_keep_their_relative_accuracy_in_the_tail():
    """gelu's (Phi, phi) in float32 (fastmath.gelu_parts32: erfc = t exp(-x**2) P(t), one exponential
    for both, Phi from erfc below 0) against scipy's ndtr in float64 at the same float32 inputs:
    relative, down to Phi(-13) = 6e-39, within a few ulp plus what exp(-z**2 / 2) loses to its rounded
    argument (z**2 ulp: float32's 0.5 (1 + erf) is 0 from z = -6 on); P's coefficients re-derived."""
    import numba
    from numpy.polynomial import chebyshev
    from scipy.special import erfcx, ndtr
    from fastmlp.kernels import fastmath

    def erfcx_over_t(u):
        t = np.clip((u + 1) / 2, 1e-12, 1)
        return erfcx(2 / t - 2) / t
    power_form = chebyshev.cheb2poly(chebyshev.chebinterpolate(erfcx_over_t, len(fastmath.ERFCX_P_32) - 1))
    np.testing.assert_allclose(np.array(fastmath.ERFCX_P_32, np.float64), power_form, rtol=2e-7, atol=1e-9)
    parts = numba.njit(lambda a: [fastmath.gelu_parts32(x) for x in a])
    z = np.concatenate([np.linspace(-13, 13, 52001), [0.0, -0.0, 1e-30, -1e-30, 40.0, -40.0, 3e38, -3e38]])
    z = z.astype(np.float32).astype(np.float64)               # the references at the float32 inputs
    got = np.array(parts(z.astype(np.float32)), dtype=np.float64)
    cdf, density = ndtr(z), np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    finite = np.abs(z) <= 13
    bound = 8 * 2.0**-24 * (1 + z[finite] ** 2)
    assert np.all(np.abs(got[finite, 0] / cdf[finite] - 1) <= bound)
    assert np.all(np.abs(got[finite, 1] / density[finite] - 1) <= bound)
    assert np.all(np.abs(got[~finite, 0] - (z[~finite] > 0)) < 1e-37) and np.all(got[~finite, 1] < 1e-37)


@pytest.mark.parametrize("penalty", [0, 1])
def test_a_long_penalty_is_added_in_parts(penalty):
    """All of a large network's weights: the penalty's gradient added in parts side by side (the bits of
    one pass), its value summed in order from the parts' (to an ulp or two of one sum)."""
    from fastmlp.kernels.layers import PENALTY_PART_MIN_ENTRIES, add_penalty, add_penalty_flat, zero_flat
    kernels.threads.start_threads()          # (a parallel call loaded from the cache needs the pool started)
    rng = np.random.default_rng(6)
    W = rng.normal(size=2 * PENALTY_PART_MIN_ENTRIES + 13)
    grad = rng.normal(size=W.size)
    grads = [grad.copy(), grad.copy()]
    totals = [add_penalty_flat(W, grads[0], 1e-3, penalty), add_penalty(W, grads[1], 1e-3, penalty)]
    assert np.array_equal(grads[0], grads[1])
    assert totals[0] == pytest.approx(math.fsum(np.abs(W) if penalty == 0 else W * W / 2), rel=1e-13)
    assert totals[1] == pytest.approx(totals[0], rel=1e-13)
    zero_flat(grads[0])
    assert not grads[0].any()


def test_kernels_are_cached_under_a_stamp_of_all_fastmlp_sources(tmp_path):
    """Numba stamps a cached function with its own file alone, though its machine code holds what it
    inlines from other files; fastmlp's kernels are stamped with every source file of the package too
    (kernels.cache), so that an edit anywhere compiles them afresh. Other code keeps Numba's stamp."""
    import numba as nb
    from fastmlp.kernels import cache, loop
    locator = loop.train_loop_compiled._cache._impl._locator
    assert isinstance(locator, cache.PackageStamp)
    assert locator.get_source_stamp()[1] == cache.sources_hash()
    assert not isinstance(nb.njit(cache=True)(lambda: 0)._cache._impl._locator, cache.PackageStamp)
    package = tmp_path / "package"
    (package / "inner").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "inner" / "b.py").write_text("y = 2\n")
    before = cache.sources_hash(package)
    (package / "inner" / "b.py").write_text("y = 3\n")
    cache.sources_hash.cache_clear()
    assert cache.sources_hash(package) != before
