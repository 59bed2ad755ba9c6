"""The public MLP contract, through every backend."""

import numpy as np
import pytest

import fastmlp

ATOL = 1e-8


def article_net(backend, bias=False):
    return fastmlp.MLP((2, 3, 2), bias=bias, seed=2017, backend=backend, dtype="float64")


@pytest.mark.parametrize("bias", [False, True])
def test_worked_example_through_public_api(worked_example, backend, bias):
    ex = worked_example
    net = article_net(backend, bias)
    W1, W2 = net.weights
    np.testing.assert_allclose(W1, ex["W1"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(W2, ex["W2"], rtol=0, atol=ATOL)
    X = ex["X"][None, :]
    Y = np.array(ex["setup"]["y"])[None, :]
    np.testing.assert_allclose(net.forward(X)[0], ex["h2"], rtol=0, atol=ATOL)
    loss, grads = net.loss_and_gradients(X, Y)
    np.testing.assert_allclose(grads[0], ex["dLoss_dW1"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(grads[1], ex["dLoss_dW2"], rtol=0, atol=ATOL)
    assert loss == pytest.approx(0.5 * np.sum((Y - ex["h2"]) ** 2), abs=1e-8)
    loss_before = net.step(X, Y, lr=ex["setup"]["learning_rate"])
    assert loss_before == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(net.weights[0], ex["W1_after"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(net.weights[1], ex["W2_after"], rtol=0, atol=ATOL)


def test_init_is_the_article_code_and_leaves_global_state_alone():
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    net = fastmlp.MLP((2, 3, 2), seed=2017)
    assert np.random.random() == expected_next
    np.random.seed(2017)   # the article's code, drawn from the global generator
    W1 = (2 * np.random.random((2, 3)) - 1) / np.sqrt(2)
    W2 = (2 * np.random.random((3, 2)) - 1) / np.sqrt(3)
    assert np.array_equal(net.weights[0], W1) and np.array_equal(net.weights[1], W2)
    assert [b.tolist() for b in net.biases] == [[0.0] * 3, [0.0] * 2]


def test_contract_attributes(backend):
    net = fastmlp.MLP((4, 5, 3), bias=True, seed=1, backend=backend, dtype="float32")
    assert net.sizes == (4, 5, 3) and net.bias is True and net.backend == backend
    assert net.dtype == np.float32
    assert [p.shape for p in net.parameters] == [(4, 5), (5, 3), (5,), (3,)]
    assert all(p.dtype == np.float32 for p in net.parameters)
    X = np.random.default_rng(0).normal(size=(6, 4))
    y = np.array([0, 1, 2, 0, 1, 2])
    h2 = net.forward(X)
    assert h2.shape == (6, 3) and h2.dtype == np.float32
    assert np.array_equal(net.predict(X), np.argmax(h2, axis=1))
    assert net.score(X, y) == np.mean(net.predict(X) == y)
    loss, grads = net.loss_and_gradients(X, fastmlp.one_hot(y, 3))
    assert [g.shape for g in grads] == [p.shape for p in net.parameters]
    assert isinstance(loss, float)
    no_bias = fastmlp.MLP((4, 5, 3), bias=False, backend=backend)
    assert no_bias.biases == [] and len(no_bias.loss_and_gradients(X, fastmlp.one_hot(y, 3))[1]) == 2


def test_parameters_are_assignable_and_validated():
    net = fastmlp.MLP((2, 3, 2))
    W1 = np.ones((2, 3))
    net.weights = [W1, np.ones((3, 2))]
    W1[0, 0] = 5.0                                  # the network keeps its own copy
    assert net.weights[0][0, 0] == 1.0
    net.biases = [np.full(3, 0.5), np.zeros(2)]
    assert net.biases[0][0] == 0.5
    with pytest.raises(ValueError, match=r"weights\[1\] must have shape \(3, 2\)"):
        net.weights = [np.ones((2, 3)), np.ones((2, 2))]
    with pytest.raises(ValueError, match=r"weights\[0\] must be finite"):
        net.weights = [np.full((2, 3), np.nan), np.ones((3, 2))]
    with pytest.raises(ValueError, match=r"biases\[0\] must be finite"):
        net.biases = [np.array([np.inf, 0, 0]), np.zeros(2)]
    with pytest.raises(ValueError, match="weights must be a list of 2 arrays"):
        net.weights = [np.ones((2, 3))]
    with pytest.raises(ValueError, match="bias=False"):
        fastmlp.MLP((2, 3, 2), bias=False).biases = [np.zeros(3), np.zeros(2)]
    with pytest.raises(ValueError, match="read-only"):
        net.weights[0][0, 0] = 1.0


def test_step_updates_biases_only_when_present(backend):
    X = np.random.default_rng(1).normal(size=(8, 2))
    Y = fastmlp.one_hot(np.arange(8) % 2, 2)
    with_b = fastmlp.MLP((2, 3, 2), bias=True, backend=backend)
    without_b = fastmlp.MLP((2, 3, 2), bias=False, backend=backend)
    assert with_b.step(X, Y, 0.5) == pytest.approx(without_b.step(X, Y, 0.5), rel=1e-12)
    assert np.abs(with_b.biases[0]).sum() > 0
    # same math on the weights: zero biases change no number of the first step
    np.testing.assert_allclose(with_b.weights[0], without_b.weights[0], rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_preserved(backend, dtype):
    net = fastmlp.MLP((2, 4, 2), backend=backend, dtype=dtype)
    X = np.random.default_rng(2).normal(size=(5, 2)).astype(np.float64)
    Y = fastmlp.one_hot(np.arange(5) % 2, 2)
    assert net.forward(X).dtype == dtype
    net.step(X, Y, 0.1, reg=0.1)
    assert all(p.dtype == dtype for p in net.parameters)
    assert all(g.dtype == dtype for g in net.loss_and_gradients(X, Y)[1])


def test_reference_learns_xor_with_biases_and_stalls_without(xor_data):
    """Numbers from a run (lr 3 against the mean loss, full batch): with biases 0.987-0.993 after 2,000
    steps for seeds 2017, 0, 1; without, 0.55-0.68 after 5,000 (the antisymmetry argument caps it)."""
    X, y, Y = xor_data
    learner = fastmlp.MLP((2, 10, 2), bias=True, seed=2017, backend="numpy")
    for _ in range(2000):
        learner.step(X, Y, lr=3.0)
    assert learner.score(X, y) >= 0.95
    article = fastmlp.MLP((2, 10, 2), bias=False, seed=2017, backend="numpy")
    for _ in range(5000):
        article.step(X, Y, lr=3.0)
    assert article.score(X, y) < 0.85


def test_bricks_contract_attributes(backend):
    net = fastmlp.MLP((4, 6, 5, 3), seed=3, backend=backend, activation=["relu", "tanh"], output="softmax",
                      loss="cross_entropy", init="glorot")
    assert net.sizes == (4, 6, 5, 3) and net.activations == ("relu", "tanh")
    assert (net.output, net.loss_name, net.init, net.bias) == ("softmax", "cross_entropy", "glorot", True)
    assert [p.shape for p in net.parameters] == [(4, 6), (6, 5), (5, 3), (6,), (5,), (3,)]
    X = np.random.default_rng(0).normal(size=(7, 4))
    p = net.forward(X)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    assert np.array_equal(net.predict(X), np.argmax(p, axis=1))
    y = np.arange(7) % 3
    loss, grads = net.loss_and_gradients(X, fastmlp.one_hot(y, 3))
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(7), y])), rel=1e-12)
    assert [g.shape for g in grads] == [p.shape for p in net.parameters]
    for name in ("sizes", "activations", "output", "loss_name", "init", "bias", "backend", "dtype"):
        assert hasattr(net, name)
    with pytest.raises(AttributeError):
        net.output = "identity"
    assert callable(net.loss)


def test_no_hidden_layer_is_logistic_regression():
    net = fastmlp.MLP((3, 1), output="sigmoid", loss="cross_entropy", backend="numpy")
    assert net.activations == () and len(net.parameters) == 2
    X = np.random.default_rng(1).normal(size=(5, 3))
    W, b = net.parameters
    np.testing.assert_allclose(net.forward(X), 1 / (1 + np.exp(-(X @ W + b))), rtol=1e-14)


def test_one_sigmoid_output_predicts_where_it_exceeds_half(backend):
    net = fastmlp.MLP((2, 4, 1), seed=0, backend=backend, loss="cross_entropy")
    X = np.random.default_rng(2).normal(size=(50, 2))
    out = net.forward(X)
    assert out.shape == (50, 1)
    assert np.array_equal(net.predict(X), (out[:, 0] > 0.5).astype(int))
    y = (X[:, 0] > 0).astype(int)
    assert net.score(X, y) == np.mean(net.predict(X) == y)


def test_regression_predicts_values_and_scores_r2(backend):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    net = fastmlp.MLP((3, 8, 1), seed=0, backend=backend, activation="tanh", output="identity")
    assert net.predict(X).shape == (40, 1)
    pred = net.predict(X)[:, 0]
    assert net.score(X, y) == pytest.approx(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2), rel=1e-10)
    history = net.fit(X, y, lr=0.05, steps=300, eval_every=100, progress=False)
    assert list(history.frame.columns) == ["step", "loss", "r2", "lr", "grad_norm"]
    assert history.frame["r2"].iloc[-1] > 0.9


def test_glorot_init_is_scikit_learns():
    """scikit-learn's _init_coef: per layer W then b ~ U(-s, s) from one RandomState, s = sqrt(f / (fan_in
    + fan_out)), f = 2 for logistic and 6 otherwise."""
    for activation, factor in (("sigmoid", 2.0), ("relu", 6.0)):
        net = fastmlp.MLP((5, 4, 3), seed=7, activation=activation, init="glorot")
        rng = np.random.RandomState(7)
        expected = []
        for fan_in, fan_out in ((5, 4), (4, 3)):
            s = np.sqrt(factor / (fan_in + fan_out))
            expected.append((rng.uniform(-s, s, (fan_in, fan_out)), rng.uniform(-s, s, fan_out)))
        for (W, b), got_W, got_b in zip(expected, net.weights, net.biases):
            assert np.array_equal(W, got_W) and np.array_equal(b, got_b)


def test_he_init_bounds_and_zero_biases():
    net = fastmlp.MLP((50, 40, 2), seed=0, init="he")
    W1 = net.weights[0]
    assert np.abs(W1).max() <= np.sqrt(6 / 50) and np.abs(W1).max() > 0.9 * np.sqrt(6 / 50)
    assert not any(b.any() for b in net.biases)


def test_deep_network_learns_xor_with_both_backends(xor_data):
    X, y, _ = xor_data
    for backend in ("numpy", "numba"):
        net = fastmlp.MLP((2, 16, 16, 2), seed=0, backend=backend, activation="relu", output="softmax",
                          loss="cross_entropy", init="he")
        net.fit(X, y, lr=0.5, steps=1500, batch_size=50, shuffle=True, seed=0, progress=False)
        assert net.score(X, y) >= 0.95
