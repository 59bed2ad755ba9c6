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
