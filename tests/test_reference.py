"""The NumPy reference against the article's worked example and against finite differences."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastmlp
from fastmlp import reference

ATOL = 1e-8          # the fixture's tolerance for values printed to 8 decimals
ATOL_Z = 2e-8        # z1 and z2: the article truncates their last digit


def test_worked_example_intermediates(worked_example):
    ex = worked_example
    X = ex["X"][None, :]
    Y = np.array(ex["setup"]["y"])[None, :]
    b1, b2 = np.zeros(3), np.zeros(2)
    z1, h1, z2, h2 = reference.forward_trace(X, ex["W1"], b1, ex["W2"], b2)
    np.testing.assert_allclose(z1[0], ex["z1"], rtol=0, atol=ATOL_Z)
    np.testing.assert_allclose(h1[0], ex["h1"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(z2[0], ex["z2"], rtol=0, atol=ATOL_Z)
    np.testing.assert_allclose(h2[0], ex["h2"], rtol=0, atol=ATOL)
    g = reference.backward(X, Y, ex["W1"], ex["W2"], h1, h2)
    for name in ["dLoss_dh2", "dh2_dz2", "dLoss_dh1", "dh1_dz1", "dLoss_dW1", "dLoss_dW2"]:
        np.testing.assert_allclose(np.squeeze(g[name]), ex[name], rtol=0, atol=ATOL, err_msg=name)


def test_worked_example_first_row_of_xor_data(worked_example):
    X, y = fastmlp.datasets.xor()
    np.testing.assert_allclose(X[0], worked_example["X"], rtol=0, atol=ATOL)


def _random_problem(rng, N, D, H, O, dtype=np.float64):
    X = rng.normal(size=(N, D)).astype(dtype)
    Y = fastmlp.one_hot(rng.integers(0, O, N), O).astype(dtype)
    params = [rng.normal(size=s).astype(dtype) for s in [(D, H), (H,), (H, O), (O,)]]
    return X, Y, params


@settings(max_examples=25, deadline=None)
@given(
    N=st.integers(1, 7), D=st.integers(1, 4), H=st.integers(1, 6), O=st.integers(1, 3),
    reg=st.sampled_from([0.0, 0.3]), penalty=st.sampled_from(["l2", "l1"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_gradients_match_central_finite_differences(N, D, H, O, reg, penalty, seed):
    rng = np.random.default_rng(seed)
    X, Y, params = _random_problem(rng, N, D, H, O)
    if penalty == "l1":                      # |w| has a kink at 0: keep weights away from it
        for W in params[::2]:
            W[np.abs(W) < 1e-3] = 0.5
    _, grads = reference.loss_and_gradients(X, Y, *params, reg, penalty)
    eps = 1e-6
    for k, (p, g) in enumerate(zip(params, grads)):
        numeric = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up = reference.loss(X, Y, *params, reg, penalty)
            p[idx] = old - eps
            down = reference.loss(X, Y, *params, reg, penalty)
            p[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        scale = max(np.abs(numeric).max(), np.abs(g).max(), 1e-3)
        assert np.abs(numeric - g).max() / scale <= 1e-6, f"parameter {k}"


def test_sigmoid_is_clean_at_extremes():
    z = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = reference.sigmoid(z)
        s32 = reference.sigmoid(z.astype(np.float32))
    assert s[0] == 0.0 and s[-1] == 1.0 and s[2] == 0.5
    assert s32[0] == 0.0 and s32[-1] == 1.0
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s[1], np.exp(-50.0), rtol=1e-14)   # relative accuracy on the small side


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reference_keeps_dtype(dtype):
    rng = np.random.default_rng(0)
    X, Y, params = _random_problem(rng, 5, 2, 4, 2, dtype)
    assert reference.forward(X, *params).dtype == dtype
    _, grads = reference.loss_and_gradients(X, Y, *params, 0.1, "l2")
    assert all(g.dtype == dtype for g in grads)
    before = [p.copy() for p in params]
    reference.step(X, Y, *params, 0.1, 0.1, "l2", True)
    assert all(p.dtype == dtype for p in params)
    assert all(not np.array_equal(p, b) for p, b in zip(params, before))
