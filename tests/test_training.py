"""fit: options do what they say, both backends agree, divergence is reported."""

import math
import warnings

import numpy as np
import pytest

import fastmlp


def test_fit_learns_xor_with_both_backends_and_histories_agree(xor_data):
    X, y, _ = xor_data
    frames = {}
    for backend in ("numpy", "numba"):
        net = fastmlp.MLP((2, 10, 2), seed=2017, backend=backend)
        history = net.fit(X, y, lr=3.0, steps=2000, eval_every=50, progress=False)
        frames[backend] = history.frame
        assert history.frame["accuracy"].iloc[-1] >= 0.95      # measured 0.987 (test_network)
    a, b = frames["numpy"], frames["numba"]
    assert list(a.columns) == ["step", "loss", "accuracy", "lr", "grad_norm"]
    assert a["step"].tolist() == list(range(50, 2001, 50))
    np.testing.assert_allclose(a[["loss", "grad_norm"]], b[["loss", "grad_norm"]], rtol=1e-9)
    assert (a["accuracy"] == b["accuracy"]).all()


def test_article_run_is_the_fixed_first_batch(xor_data):
    """fit(batch_size=50) trains only on the first 50 points, as the article's code does."""
    X, y, Y = xor_data
    net = fastmlp.MLP((2, 10, 2), bias=False, seed=2017)
    manual = fastmlp.MLP((2, 10, 2), bias=False, seed=2017, backend="numpy")
    history = net.fit(X, y, lr=0.05, steps=30, batch_size=50, reg=1e-6, eval_every=1, progress=False)
    losses = [manual.step(X[:50], Y[:50], lr=0.05, reg=1e-6) for _ in range(30)]
    np.testing.assert_allclose(history.frame["loss"], losses, rtol=1e-12)
    assert history.frame["accuracy"].iloc[-1] == manual.score(X, y)


def test_shuffle_visits_every_sample_each_epoch(xor_data):
    X, y, _ = xor_data
    fixed = fastmlp.MLP((2, 5, 2), seed=1)
    shuffled = fastmlp.MLP((2, 5, 2), seed=1)
    fixed.fit(X, y, lr=1.0, steps=12, batch_size=50, progress=False)
    shuffled.fit(X, y, lr=1.0, steps=12, batch_size=50, shuffle=True, seed=3, progress=False)
    assert not np.array_equal(fixed.weights[0], shuffled.weights[0])
    again = fastmlp.MLP((2, 5, 2), seed=1)
    again.fit(X, y, lr=1.0, steps=12, batch_size=50, shuffle=True, seed=3, progress=False)
    assert np.array_equal(again.weights[0], shuffled.weights[0])      # seeded


@pytest.mark.parametrize("schedule, expected", [
    ("constant", lambda t: 0.5 + 0 * t),
    ("inverse", lambda t: 0.5 / (1 + 0.1 * t)),
    ("exponential", lambda t: 0.5 * np.exp(-0.1 * t)),
])
def test_schedules_set_the_lr_of_each_step(xor_data, schedule, expected):
    X, y, _ = xor_data
    net = fastmlp.MLP((2, 4, 2))
    frame = net.fit(X, y, lr=0.5, steps=20, schedule=schedule, decay=0.1, eval_every=1,
                    progress=False).frame
    np.testing.assert_allclose(frame["lr"], expected(np.arange(20.0)), rtol=1e-12)


def test_clipping_bounds_the_update(xor_data):
    X, y, _ = xor_data
    net = fastmlp.MLP((2, 6, 2), backend="numba")
    before = [p.copy() for p in net.parameters]
    frame = net.fit(X, y, lr=1.0, steps=1, clip_norm=1e-3, eval_every=1, progress=False).frame
    update = np.sqrt(sum(np.sum((p - b) ** 2) for p, b in zip(net.parameters, before)))
    assert frame["grad_norm"].iloc[0] > 1e-3
    assert update == pytest.approx(1e-3, rel=1e-9)


def test_l1_differs_from_l2_and_shrinks_weights(xor_data):
    X, y, _ = xor_data
    nets = {}
    for penalty in ("l1", "l2"):
        nets[penalty] = fastmlp.MLP((2, 6, 2), seed=0)
        nets[penalty].fit(X, y, lr=1.0, steps=200, reg=20.0, penalty=penalty, progress=False)
    free = fastmlp.MLP((2, 6, 2), seed=0)
    free.fit(X, y, lr=1.0, steps=200, progress=False)
    assert not np.allclose(nets["l1"].weights[0], nets["l2"].weights[0])
    assert np.abs(nets["l1"].weights[0]).sum() < np.abs(free.weights[0]).sum()


def test_eval_set_adds_validation_columns(xor_data):
    X, y, _ = xor_data
    net = fastmlp.MLP((2, 8, 2))
    frame = net.fit(X[:200], y[:200], lr=2.0, steps=100, eval_every=25, eval_set=(X[200:], y[200:]),
                    progress=False).frame
    assert list(frame.columns)[-2:] == ["val_loss", "val_accuracy"]
    assert frame["val_loss"].iloc[-1] == pytest.approx(
        net.loss(X[200:], fastmlp.one_hot(y[200:], 2)), rel=1e-12)
    assert frame["val_accuracy"].iloc[-1] == net.score(X[200:], y[200:])


def test_snapshots_every_k_steps(xor_data):
    X, y, _ = xor_data
    net = fastmlp.MLP((2, 3, 2))
    history = net.fit(X, y, lr=1.0, steps=100, snapshot_every=25, progress=False)
    assert [s for s, _ in history.snapshots] == [0, 25, 50, 75, 100]
    assert all(np.array_equal(a, b) for a, b in zip(history.snapshots[-1][1], net.parameters))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_divergence_raises_with_history(xor_data, backend):
    X, _, _ = xor_data
    y = X @ [1000.0, 2000.0]             # (a saturated sigmoid network at lr 1e308 stays finite: not divergence)
    regression = dict(activation="relu", output="identity", backend=backend)
    net = fastmlp.MLP((2, 3, 1), **regression)
    with pytest.raises(fastmlp.DivergenceError, match=r"diverged at step \d+.*smaller lr") as info:
        net.fit(X, y, lr=1e308, steps=50, eval_every=1, progress=False)
    assert isinstance(info.value, FloatingPointError)
    assert info.value.step >= 1 and len(info.value.history.frame) == info.value.step - 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = fastmlp.MLP((2, 3, 1), **regression).fit(
            X, y, lr=1e308, steps=50, eval_every=1, progress=False, on_divergence="stop")
    assert history.diverged_at is not None and any("diverged" in str(w.message) for w in caught)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(lr=0.0), ValueError, "lr must be > 0"),
    (dict(steps=0), ValueError, "steps must be >= 1"),
    (dict(steps=1.5), TypeError, "steps must be an integer"),
    (dict(batch_size=301), ValueError, "batch_size must be at most the number of samples"),
    (dict(schedule="cosine"), ValueError, "schedule must be one of"),
    (dict(penalty="l0"), ValueError, "penalty must be one of"),
    (dict(clip_norm=0.0), ValueError, "clip_norm must be > 0"),
    (dict(decay=-1.0), ValueError, "decay must be >= 0"),
    (dict(eval_every=0), ValueError, "eval_every must be >= 1"),
    (dict(on_divergence="ignore"), ValueError, "on_divergence must be one of"),
    (dict(eval_set=[1, 2, 3, 4]), ValueError, r"eval_set must be a pair"),
    (dict(sample_weight=[1.0, 2.0]), ValueError, r"sample_weight must have shape \(300,\)"),
    (dict(sample_weight=-np.ones(300)), ValueError, "sample_weight must be non-negative"),
    (dict(sample_weight=np.zeros(300)), ValueError, "sample_weight must not be all zero"),
    (dict(sample_weight=np.full(300, np.nan)), ValueError, "sample_weight must be finite, found NaN"),
    (dict(shuffle="yes"), TypeError, "shuffle must be True or False"),
    (dict(seed=1.5), ValueError, "seed must be None or an integer"),
    (dict(epochs=3), ValueError, "give exactly one of steps and epochs"),
    (dict(optimizer="rmsprop"), ValueError, "optimizer must be one of"),
    (dict(early_stopping=True), ValueError, "needs an eval_set"),
    (dict(monitor="accuracy"), ValueError, "monitor must be one of"),
    (dict(tol=-1.0), ValueError, "tol must be >= 0"),
    (dict(early_stopping=True, monitor="loss", patience=0), ValueError, "patience must be >= 1"),
    (dict(early_stopping="yes"), TypeError, "early_stopping must be True or False"),
])
def test_bad_fit_options(xor_data, kwargs, error, message):
    X, y, _ = xor_data
    options = dict(lr=1.0, steps=10, progress=False)
    options.update(kwargs)
    with pytest.raises(error, match=message):
        fastmlp.MLP((2, 3, 2)).fit(X, y, **options)


BACKENDS = ("numpy", "numba")


def blowup_problem():
    X = np.random.RandomState(0).randn(20, 3)
    return X, (X[:, 0] > 0).astype(int)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_step_that_overflows_leaves_the_parameters_and_raises(backend):
    X, y = blowup_problem()
    net = fastmlp.MLP((3, 4, 2), activation="relu", output="softmax", loss="cross_entropy", backend=backend)
    Y = fastmlp.one_hot(y, 2)
    with np.errstate(all="ignore"), pytest.raises(fastmlp.DivergenceError, match="lr=1e\\+300"):
        for _ in range(3):
            before = net._theta.copy()
            net.step(X, Y, lr=1e300)
    assert np.array_equal(net._theta, before) and np.isfinite(net._theta).all()


def overflow_at_step_5(lr, decay, t):
    """A schedule whose fifth step's rate is infinite: its update overflows, the steps before are sane."""
    return np.where(t == 4, np.inf, lr)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("on_divergence", ["raise", "stop"])
def test_a_diverged_fit_keeps_the_last_finite_parameters(monkeypatch, backend, optimizer, on_divergence):
    """Step 5's update overflows: the network holds the parameters after step 4 (those of a run of 4
    steps, bit for bit), the optimizer the state that goes with them, and the History says step 5."""
    monkeypatch.setitem(fastmlp.training.SCHEDULES, "overflow", overflow_at_step_5)
    X, _ = blowup_problem()
    y = X @ [1.0, 2, 3]
    runs = {}
    for steps, schedule in ((4, "constant"), (20, "overflow")):
        net = fastmlp.MLP((3, 8, 1), activation="relu", output="identity", backend=backend, seed=1)
        opt = fastmlp.optimizers.get_optimizer(optimizer)
        settings = dict(lr=0.01, steps=steps, optimizer=opt, progress=False, schedule=schedule, batch_size=8,
                        eval_every=1,                 # every step on the same path in both runs
                        shuffle=True, seed=3)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if schedule == "overflow" and on_divergence == "raise":
                with pytest.raises(fastmlp.DivergenceError, match="step 5") as caught:
                    net.fit(X, y, **settings)
                history = caught.value.history
            else:
                history = net.fit(X, y, on_divergence=on_divergence, **settings)
        runs[schedule] = (net._theta.copy(), opt.slots.copy(), opt.count.copy(), history)
    (theta_4, slots_4, count_4, _), (theta, slots, count, history) = runs["constant"], runs["overflow"]
    assert history.diverged_at == 5 and len(history.losses) == 4
    assert np.array_equal(theta, theta_4) and np.array_equal(slots, slots_4) and np.array_equal(count, count_4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_reg_adds_nothing_even_to_overflowed_weights(backend):
    """0 * inf is NaN: a zero reg must not compute the penalty at all."""
    X, y = blowup_problem()
    net = fastmlp.MLP((3, 4, 1), activation="identity", output="identity", backend=backend)
    net.weights = [np.full((3, 4), 1e200), np.full((4, 1), 1e200)]
    with np.errstate(all="ignore"):
        assert net.loss(X, X[:, :1]) == np.inf
        assert not np.isnan(net.loss_and_gradients(X, X[:, :1])[0])


def test_backends_agree_on_a_huge_reg():
    """Finite gradient entries near 1e298 have a finite norm (scaled first): both backends take the
    first update and stop at the second step, keeping its parameters."""
    X, _ = blowup_problem()
    results = {}
    for backend in BACKENDS:
        net = fastmlp.MLP((3, 8, 1), activation="relu", output="identity", backend=backend)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            history = net.fit(X, X @ [1.0, 2, 3], lr=0.1, reg=1e300, steps=5, on_divergence="stop", progress=False)
        results[backend] = (history.diverged_at, net._theta.copy())
    (at_r, theta_r), (at_k, theta_k) = results["numpy"], results["numba"]
    assert at_r == at_k == 2
    np.testing.assert_allclose(theta_k, theta_r, rtol=1e-12)


def test_norm_is_scaled_and_keeps_nan_and_inf():
    from fastmlp import reference
    from fastmlp.kernels.loop import norm
    for g in (np.full(4, 1e300), np.array([3.0, 4.0]), np.zeros(3), np.array([1.0, np.nan, 1e300]),
              np.array([1.0, np.inf]), np.array([np.inf, np.nan])):
        want = math.hypot(*g)           # scaled, exact to an ulp; inf if an inf, NaN if a NaN and no inf
        if np.isnan(g).any():
            want = np.nan
        for got in (reference.norm(g), norm(g, g.size)):
            assert got == pytest.approx(want, rel=1e-15, nan_ok=True)


def test_norm_of_a_long_gradient_sums_in_parts():
    """Past two parts' entries the kernels' norm sums its squares in parts side by side, added in order:
    the norm to an ulp or two, and the scaled, NaN and inf cases as for a short one."""
    from fastmlp.kernels.loop import NORM_PART_MIN_ENTRIES, norm
    from fastmlp.kernels.threads import start_threads
    start_threads()                          # (a parallel call loaded from the cache needs the pool started)
    rng = np.random.default_rng(4)
    g = rng.normal(size=2 * NORM_PART_MIN_ENTRIES + 7)
    assert norm(g, g.size) == pytest.approx(math.sqrt(math.fsum(g * g)), rel=1e-14)
    assert norm(g, 100) == pytest.approx(math.sqrt(math.fsum(g[:100] ** 2)), rel=1e-14)
    big = g * 1e300
    assert norm(big, big.size) == pytest.approx(1e300 * math.sqrt(math.fsum(g * g)), rel=1e-14)
    for bad, want in ((np.nan, np.nan), (np.inf, np.inf)):
        g2 = g.copy()
        g2[-1] = bad
        assert norm(g2, g2.size) == pytest.approx(want, nan_ok=True)


def test_fit_refuses_a_history_larger_than_memory_before_allocating():
    net = fastmlp.MLP((2, 3, 2))
    with pytest.raises(ValueError, match="shorter fits"):
        net.fit(np.zeros((4, 2)), [0, 1, 0, 1], lr=0.1, steps=10**12)
    with pytest.raises(ValueError, match="shorter fits"):
        net.fit(np.zeros((4, 2)), [0, 1, 0, 1], lr=0.1, epochs=10**12, batch_size=1)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_batches_whose_weights_sum_to_zero_change_nothing(backend):
    """Batches of one row, a third of them weighted 0: plain SGD over all rows ends where it ends over
    the weighted rows alone (a zero-weight batch has loss and gradient 0, penalty included)."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 3)), rng.integers(0, 2, 30)
    w = np.where(np.arange(30) % 3 == 0, 0.0, 1.0)
    nets = [fastmlp.MLP((3, 5, 2), backend=backend, activation="tanh", output="softmax", loss="cross_entropy",
                        init="glorot", seed=1) for _ in range(2)]
    nets[0].fit(X, y, lr=0.1, epochs=2, batch_size=1, reg=0.1, sample_weight=w, progress=False)
    kept = w > 0
    nets[1].fit(X[kept], y[kept], lr=0.1, epochs=2, batch_size=1, reg=0.1, progress=False)
    for a, b in zip(nets[0].parameters, nets[1].parameters):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
