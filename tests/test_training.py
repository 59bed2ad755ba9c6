"""fit: options do what they say, both backends agree, divergence is reported."""

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
    X, y, _ = xor_data
    net = fastmlp.MLP((2, 3, 2), backend=backend)
    with pytest.raises(fastmlp.DivergenceError, match=r"diverged at step \d+.*smaller lr") as info:
        net.fit(X, y, lr=1e308, steps=50, eval_every=1, progress=False)
    assert isinstance(info.value, FloatingPointError)
    assert info.value.step >= 1 and len(info.value.history.frame) == info.value.step - 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = fastmlp.MLP((2, 3, 2), backend=backend).fit(
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
    (dict(eval_set=[1, 2, 3]), ValueError, r"eval_set must be a pair"),
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
