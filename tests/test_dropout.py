"""Dropout (fastmlp.dropout): the masks' statistics and keys, gradients with the same masks against
central differences and PyTorch's autograd, the kernels against the reference, fits that replay bit for
bit and do not depend on the thread count, and the arguments' checks."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastmlp
from fastmlp import kernels, reference
from fastmlp.architecture import Architecture
from fastmlp.dropout import Dropout, mask
from test_kernels import TOL, rel_err
from test_reference import architectures, central_differences, random_problem, random_weights


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
def test_masks_keep_one_minus_the_rate_and_scale_the_kept(rate):
    m = mask(Dropout((rate,), seed=7, step=3), 1, 2000, 300, np.float64)
    assert set(np.unique(m)) <= {0.0, 1 / (1 - rate)}
    assert abs((m > 0).mean() - (1 - rate)) < 0.005
    assert abs(m.mean() - 1) < 0.02                   # inverted dropout: the expected activation is kept
    # no structure along rows or units: every row's and every unit's kept share near 1 - rate
    assert np.abs((m > 0).mean(axis=1) - (1 - rate)).max() < 0.15
    assert np.abs((m > 0).mean(axis=0) - (1 - rate)).max() < 0.05


def test_masks_are_keyed_by_seed_step_layer_and_the_rows_place():
    base = Dropout((0.5, 0.5), seed=1, step=0)
    m = mask(base, 1, 50, 40, np.float64)
    assert np.array_equal(m, mask(base, 1, 50, 40, np.float64))                  # replayable
    assert np.array_equal(m[:10], mask(base, 1, 10, 40, np.float64))             # a row's place, not the batch
    assert np.array_equal(m[:, :7], mask(base, 1, 50, 7, np.float64))
    for other in (mask(base._replace(seed=2), 1, 50, 40, np.float64), mask(base._replace(step=1), 1, 50, 40, np.float64),
                  mask(base, 2, 50, 40, np.float64)):
        assert 0.35 < np.mean(other != m) < 0.65                                 # independent masks
    assert np.array_equal(mask(base, 1, 50, 40, np.float32), m.astype(np.float32))


@settings(max_examples=60, deadline=None)
@given(arch=architectures(max_depth=3).filter(lambda a: a.n_layers > 1), N=st.integers(1, 6),
       rate=st.sampled_from([0.2, 0.5, 0.8]), weighted=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_dropout_gradients_match_central_differences(arch, N, rate, weighted, seed):
    """Every activation, output and loss, with the same masks in the loss and its gradient."""
    rng = np.random.default_rng(seed)
    X, Y, theta = random_problem(rng, arch, N)
    w = random_weights(rng, N, weighted)
    dropout = Dropout((rate,) * (arch.n_layers - 1), seed, int(rng.integers(0, 1000)))
    trace = reference.forward_trace(arch, theta, X, dropout)
    for l in range(1, arch.n_layers):        # kinks at 0 (elu's second derivative): keep z away from them
        if arch.activations[l - 1] in ("relu", "leaky_relu", "elu") and np.abs(trace[f"z{l}"]).min() < 1e-4:
            return
    _, gradient = reference.loss_and_gradients(arch, theta, X, Y, 0.1, "l2", w, dropout)
    numeric = central_differences(lambda: reference.loss_and_gradients(arch, theta, X, Y, 0.1, "l2", w, dropout)[0],
                                  theta)
    scale = max(np.abs(numeric).max(), np.abs(gradient).max(), 1e-3)
    assert np.abs(numeric - gradient).max() / scale <= 1e-6


def test_dropout_gradients_match_pytorchs_autograd():
    """The same masks applied in a PyTorch network: autograd's gradients equal the reference's."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    arch = Architecture((5, 16, 8, 3), ("tanh", "gelu"), "softmax", "cross_entropy", True)
    X, Y, theta = random_problem(rng, arch, 40)
    dropout = Dropout((0.4, 0.25), seed=9, step=12)
    loss, gradient = reference.loss_and_gradients(arch, theta, X, Y, dropout=dropout)
    Ws, bs = arch.split(theta)
    params = [torch.tensor(p, requires_grad=True) for p in (*Ws, *bs)]
    h = torch.tensor(X)
    for l, activation in ((1, torch.tanh), (2, torch.nn.functional.gelu)):
        h = activation(h @ params[l - 1] + params[3 + l - 1]) * torch.tensor(mask(dropout, l, 40, arch.sizes[l],
                                                                                   np.float64))
    logits = h @ params[2] + params[5]
    torch_loss = -(torch.tensor(Y) * torch.log_softmax(logits, dim=1)).sum() / 40
    torch_loss.backward()
    assert torch_loss.item() == pytest.approx(loss, rel=1e-12)
    torch_gradient = np.concatenate([p.grad.numpy().ravel() for p in params])
    np.testing.assert_allclose(gradient, torch_gradient, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("arch, N", [
    (Architecture((10, 16, 12, 3), ("relu", "gelu"), "softmax", "cross_entropy", True), 300),
    (Architecture((2, 32, 2), ("sigmoid",), "sigmoid", "mse", True), 100),        # the article's: not fused
    (Architecture((30, 64, 64, 64, 1), ("elu", "silu", "softplus"), "identity", "mse", False), 3000),  # groups
])
def test_kernels_drop_the_references_units(arch, N, dtype):
    rng = np.random.default_rng(1)
    X, Y, theta = random_problem(rng, arch, N, dtype)
    dropout = Dropout((0.3,) * (arch.n_layers - 1), seed=5, step=17)
    loss_r, grad_r = reference.loss_and_gradients(arch, theta, X, Y, 0.01, "l2", None, dropout)
    loss_k, grad_k = kernels.loss_and_gradients(arch, theta, X, Y, 0.01, "l2", None, dropout)
    assert loss_k == pytest.approx(loss_r, rel=TOL[dtype])
    assert rel_err(grad_k, grad_r) <= TOL[dtype]
    assert rel_err(grad_r, reference.loss_and_gradients(arch, theta, X, Y, 0.01)[1]) > 1e-3   # it dropped


def dropout_fit(backend="numba", threads=None, **changes):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 20))
    y = (X[:, 0] * X[:, 1] > 0).astype(int) + (X[:, 2] > 0)
    fit = dict(lr=1e-2, epochs=3, batch_size=500, shuffle=True, seed=4, optimizer="adam", dropout=(0.5, 0.2),
               progress=False, eval_set=(X[:300], y[:300]))
    fit.update(changes)
    net = fastmlp.MLP((20, 128, 64, 3), activation=("relu", "tanh"), output="softmax", loss="cross_entropy",
                      init="he", seed=0, backend=backend)
    before = numba.get_num_threads()
    try:
        if threads is not None:
            numba.set_num_threads(threads)
        history = net.fit(X, y, **fit)
    finally:
        numba.set_num_threads(before)
    return np.concatenate([p.ravel() for p in net.parameters]), history


def test_fits_with_dropout_replay_and_agree_across_backends_and_threads():
    """The same seed: the same bits, with 1 or 2 threads (batches of 500 rows split into groups); the
    reference walks the same path; another seed, other masks; a rate of 0 drops nothing."""
    theta, history = dropout_fit()
    assert np.array_equal(theta, dropout_fit()[0])
    assert np.array_equal(theta, dropout_fit(threads=1)[0])
    theta_r, history_r = dropout_fit(backend="numpy")
    assert rel_err(theta, theta_r) <= 1e-10
    np.testing.assert_allclose(history.frame["val_loss"], history_r.frame["val_loss"], rtol=1e-10)
    assert rel_err(dropout_fit(seed=5)[0], theta) > 1e-3
    assert np.array_equal(dropout_fit(dropout=0.0)[0], dropout_fit(dropout=(0.0, 0.0))[0])
    assert rel_err(dropout_fit(dropout=0.0)[0], theta) > 1e-3


@pytest.mark.parametrize("dropout, error, message", [
    (1.0, ValueError, r"dropout must be < 1, got 1.0"),
    (-0.1, ValueError, r"dropout must be >= 0, got -0.1"),
    ((0.1, 0.2, 0.3), ValueError, r"dropout must have one rate per hidden layer \(2\), got 3"),
    ((0.1, np.nan), ValueError, r"dropout\[1\] must be finite"),
    (True, TypeError, "dropout must be a real number"),
    ("0.5", TypeError, "dropout must be a rate or a sequence of rates"),
])
def test_bad_dropout_is_refused_by_name(dropout, error, message):
    net = fastmlp.MLP((2, 4, 4, 2), output="softmax", loss="cross_entropy")
    with pytest.raises(error, match=message):
        net.fit(np.zeros((4, 2)), [0, 1, 0, 1], lr=0.1, steps=1, dropout=dropout, progress=False)


def test_dropout_needs_a_hidden_layer():
    net = fastmlp.MLP((2, 2), output="softmax", loss="cross_entropy")
    with pytest.raises(ValueError, match="this network has no hidden layer"):
        net.fit(np.zeros((4, 2)), [0, 1, 0, 1], lr=0.1, steps=1, dropout=0.5, progress=False)
    net.fit(np.zeros((4, 2)), [0, 1, 0, 1], lr=0.1, steps=1, dropout=0.0, progress=False)


def test_estimators_drop_while_fitting_only():
    """MLPClassifier(dropout=...): the same fit on both backends and for the same random_state, other
    fits for another; predictions use every unit; lbfgs refuses it."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X, y = X[:500] / 16, y[:500]
    kw = dict(hidden_layer_sizes=(32, 16), dropout=(0.3, 0.1), max_iter=5, random_state=0)
    a = fastmlp.MLPClassifier(**kw).fit(X, y)
    b = fastmlp.MLPClassifier(**kw, backend="numpy").fit(X, y)
    np.testing.assert_allclose(a.coefs_[0], b.coefs_[0], rtol=0, atol=1e-12)
    assert np.array_equal(a.coefs_[0], fastmlp.MLPClassifier(**kw).fit(X, y).coefs_[0])
    assert not np.allclose(a.coefs_[0], fastmlp.MLPClassifier(**dict(kw, random_state=1)).fit(X, y).coefs_[0])
    plain = fastmlp.MLPClassifier(**dict(kw, dropout=0.0)).fit(X, y)
    assert not np.allclose(a.coefs_[0], plain.coefs_[0])
    np.testing.assert_array_equal(a.predict_proba(X), a.predict_proba(X))
    with pytest.raises(ValueError, match="needs solver 'sgd' or 'adam'"):
        fastmlp.MLPRegressor(solver="lbfgs", dropout=0.2).fit(X, y)
