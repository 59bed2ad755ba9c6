"""Optimizers, epochs and early stopping: the reference rules against scikit-learn's optimizers, the
compiled loop against the reference loop, and fit's options doing what they say."""

import numpy as np
import pytest

import fastmlp
from fastmlp import kernels, reference
from fastmlp.architecture import Architecture
from fastmlp.loop import LoopSettings, Stopping
from fastmlp.optimizers import OPTIMIZERS, Adam, Momentum, get_optimizer

RULES = ["sgd", "momentum", "nesterov", "adam"]


def sklearn_optimizer(name, params, lr):
    optimizers = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    if name == "adam":
        return optimizers.AdamOptimizer(params, lr)
    return optimizers.SGDOptimizer(params, lr, momentum={"sgd": 0.0}.get(name, 0.9), nesterov=name == "nesterov")


@pytest.mark.parametrize("name", RULES)
def test_rules_update_as_scikit_learns_optimizers(name):
    rng = np.random.default_rng(0)
    theta = rng.normal(size=40)
    theirs = [theta[:30].reshape(5, 6).copy(), theta[30:].copy()]     # a weight and a bias, as sklearn holds them
    ours = get_optimizer(name).prepare(theta, theta.size)
    reference_sgd = sklearn_optimizer(name, theirs, 0.01)
    for _ in range(100):
        grad = rng.normal(size=40)
        ours.update(theta, grad, 0.01)
        reference_sgd.update_params(theirs, [grad[:30].reshape(5, 6), grad[30:]])
    np.testing.assert_allclose(theta, np.concatenate([p.ravel() for p in theirs]), rtol=0, atol=1e-10)


ARCH = Architecture((5, 7, 6, 3), ("tanh", "relu"), "softmax", "cross_entropy", True)


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_compiled_loop_matches_reference_loop(name, dtype, tol):
    """100 steps over shuffled epochs with an uneven last batch, clipping and l1, for each optimizer."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(45, 5)).astype(dtype)
    y = rng.integers(0, 3, 45)
    Y = np.eye(3, dtype=dtype)[y]
    theta0 = (rng.normal(size=ARCH.n_parameters) * 0.5).astype(dtype)
    order = np.stack([rng.permutation(45) for _ in range(20)])     # 5 steps an epoch
    results = {}
    for backend in (reference, kernels):
        theta, optimizer = theta0.copy(), get_optimizer(name)
        curves = tuple(np.full(100, np.nan) for _ in range(5))
        settings = LoopSettings(10, np.full(100, 0.05), 1e-2, "l1", 2.0, 9, 0, True, optimizer, None, order)
        data = ((X, Y, X[0, :0]), (X, Y, y), (X[:0], Y[:0], y[:0], X[0, :0]))
        assert backend.train_loop(ARCH, theta, data, settings, curves) == 100
        results[backend.__name__] = theta, optimizer.slots, curves
    (a, slots_a, curves_a), (b, slots_b, curves_b) = results.values()
    np.testing.assert_allclose(b, a, rtol=0, atol=tol)
    np.testing.assert_allclose(slots_b, slots_a, rtol=0, atol=tol)
    np.testing.assert_allclose(curves_b[0], curves_a[0], rtol=tol)


def test_optimizer_state_carries_across_fits(xor_data):
    """Two fits sharing one Adam equal one fit of twice the steps."""
    X, y, _ = xor_data
    once, twice = fastmlp.MLP((2, 8, 2), seed=0), fastmlp.MLP((2, 8, 2), seed=0)
    once.fit(X, y, lr=0.01, steps=60, batch_size=50, optimizer="adam", progress=False)
    adam = Adam()
    for _ in range(2):
        twice.fit(X, y, lr=0.01, steps=30, batch_size=50, optimizer=adam, progress=False)
    assert adam.count[0] == 60
    for p, q in zip(once.parameters, twice.parameters):
        np.testing.assert_allclose(p, q, rtol=1e-12)


def test_optimizers_train_and_differ(xor_data):
    X, y, _ = xor_data
    final = {}
    for name in RULES:
        net = fastmlp.MLP((2, 10, 2), seed=1, activation="tanh")
        history = net.fit(X, y, lr=0.5 if name != "adam" else 0.05, epochs=40, batch_size=30, shuffle=True,
                          seed=0, optimizer=name, progress=False)
        final[name] = history.frame["loss"].iloc[-1]
        assert history.frame["accuracy"].iloc[-1] > 0.9, name
    assert len(set(final.values())) == 4


def test_epochs_walk_every_batch_in_order(xor_data):
    """epochs=2, batch_size=64 on 300 rows: 5 steps an epoch, the last on 44 rows."""
    X, y, Y = xor_data
    net = fastmlp.MLP((2, 4, 2), seed=3)
    manual = fastmlp.MLP((2, 4, 2), seed=3, backend="numpy")
    history = net.fit(X, y, lr=0.5, epochs=2, batch_size=64, eval_every=1, progress=False)
    losses = [manual.step(X[s:s + 64], Y[s:s + 64], lr=0.5) for _ in range(2) for s in range(0, 300, 64)]
    np.testing.assert_allclose(history.frame["loss"], losses, rtol=1e-12)
    assert len(history.losses) == 10
    assert net.fit(X, y, lr=0.5, epochs=1, batch_size=64, progress=False).frame["step"].tolist() == [5]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_early_stopping_restores_the_best_parameters(xor_data, backend):
    X, y, _ = xor_data
    rng = np.random.default_rng(0)
    y_noisy = np.where(rng.random(len(y)) < 0.3, 1 - y, y)           # overfits: val loss turns up
    Xv, yv = X[::2] + 0.01, y[::2]
    kwargs = dict(lr=0.1, batch_size=20, shuffle=True, seed=1, optimizer="adam", eval_set=(Xv, yv),
                  eval_every=15, progress=False)
    net = fastmlp.MLP((2, 64, 64, 2), seed=0, activation="relu", backend=backend)
    history = net.fit(X, y_noisy, steps=6000, early_stopping=True, patience=4, tol=0.0, **kwargs)
    frame = history.frame
    assert history.stopped_at is not None and history.stopped_at < 6000
    assert "val_loss did not improve" in history.stop_reason
    assert frame["step"].iloc[-1] == history.stopped_at
    best = frame.loc[frame["val_loss"].idxmin()]
    assert history.best_step == best["step"]
    assert (frame["val_loss"].iloc[-4:] >= best["val_loss"]).all()
    replay = fastmlp.MLP((2, 64, 64, 2), seed=0, activation="relu", backend=backend)
    replay.fit(X, y_noisy, steps=int(best["step"]), **kwargs)
    for p, q in zip(net.parameters, replay.parameters):
        np.testing.assert_allclose(p, q, rtol=1e-12)
    assert net.loss(Xv, np.eye(2)[yv]) == pytest.approx(best["val_loss"], rel=1e-9)


def test_stopping_rule_is_scikit_learns():
    """Bad evaluations: not below best - tol; stop once patience of them follow one another."""
    theta = np.zeros(3)
    stopping = Stopping.start(theta, "loss", tol=0.1, patience=2)
    values = [1.0, 0.95, 0.8, 0.75, 0.74]       # 0.95 bad, 0.8 good, 0.75 bad, 0.74 bad: stop
    stops = [reference.should_stop(stopping, v, theta, k, 0.1) for k, v in enumerate(values, 1)]
    assert stops == [False, False, False, False, True]
    assert stopping.state[0] == 0.74 and stopping.state[3] == 5


def test_optimizer_names_and_objects():
    assert set(OPTIMIZERS) == {"sgd", "momentum", "nesterov", "adam"}
    assert get_optimizer("nesterov").nesterov and not get_optimizer("momentum").nesterov
    assert repr(Momentum(0.5)) == "Momentum(momentum=0.5, nesterov=False)"
    with pytest.raises(ValueError, match="optimizer must be one of"):
        get_optimizer("rmsprop")
    with pytest.raises(ValueError, match="beta_1 must be < 1"):
        Adam(beta_1=1.0)


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_long_updates_run_in_parts_to_the_same_bits(name, dtype):
    """theta longer than two parts' entries is updated in parts (kernels.optimizers.apply_in_parts) that
    threads share: any number of parts gives the bits of one loop over all of it, and the rule is the
    reference's (to an ulp or two: the kernels contract a * b + c into one fused multiply-add)."""
    import numba as nb
    from fastmlp.kernels.optimizers import ADAM_PART_MIN_ENTRIES, PART_MIN_ENTRIES, apply_in_parts, rates, update
    from fastmlp.kernels.plan import flat_parts

    @nb.njit
    def step_parts(state, theta, grad, lr, parts):
        apply_in_parts(state[0], rates(state, lr, theta.dtype.type), theta, grad, state[2][0], state[2][1], parts)

    @nb.njit
    def step(state, theta, grad, lr, n):
        update(state, theta, grad, lr, n)

    n = 2 * (ADAM_PART_MIN_ENTRIES if name == "adam" else PART_MIN_ENTRIES) + 1001   # uneven parts
    assert flat_parts(n, ADAM_PART_MIN_ENTRIES if name == "adam" else PART_MIN_ENTRIES) == 2
    rng = np.random.default_rng(3)
    theta0 = rng.normal(size=n).astype(dtype)
    grads = [rng.normal(size=n).astype(dtype) for _ in range(3)]
    results = []
    for parts in (None, 1, 3, 8):
        theta, optimizer = theta0.copy(), get_optimizer(name).prepare(theta0, n)
        for grad in grads:
            if parts is None:
                step(optimizer.kernel_state(), theta, grad, 0.01, n)
            else:
                step_parts(optimizer.kernel_state(), theta, grad, 0.01, parts)
        results.append((theta, optimizer.slots.copy()))
    for theta, slots in results[1:]:
        assert np.array_equal(theta, results[0][0]) and np.array_equal(slots, results[0][1])
    theta, optimizer = theta0.copy(), get_optimizer(name).prepare(theta0, n)
    for grad in grads:
        optimizer.update(theta, grad, 0.01)
    tol = 1e-14 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(results[0][0], theta, rtol=tol, atol=tol)
    np.testing.assert_allclose(results[0][1], optimizer.slots, rtol=tol, atol=tol)


def test_theta_and_optimizer_state_start_on_cache_lines():
    net = fastmlp.MLP((700, 30, 3), dtype="float32")
    optimizer = get_optimizer("adam").prepare(net._theta, net._arch.n_trained)
    for array in (net._theta, net.astype("float64")._theta, optimizer.slots, net._zeroed((3, 4, 2))._theta):
        assert array.ctypes.data % 64 == 0 and array.flags.c_contiguous
    np.testing.assert_array_equal(net.astype("float64")._theta, net._theta.astype(np.float64))
    assert not optimizer.slots.any() and optimizer.slots.shape == (2, net._arch.n_trained)
