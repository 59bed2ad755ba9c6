"""The NumPy reference against the article's worked example and against finite differences."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastmlp
from fastmlp import reference
from fastmlp.architecture import Architecture

ATOL = 1e-8          # the fixture's tolerance for values printed to 8 decimals
ATOL_Z = 2e-8        # z1 and z2: the article truncates their last digit

ARTICLE = Architecture((2, 3, 2), ("sigmoid",), "sigmoid", "mse", False)


def article_theta(ex):
    return np.concatenate([np.ravel(ex["W1"]), np.ravel(ex["W2"]), np.zeros(5)])


def test_worked_example_intermediates(worked_example):
    """The article's names, layer by layer: z1, h1, z2, h2 forward; dLoss_dh2 ... dLoss_dW1 backward."""
    ex = worked_example
    X = ex["X"][None, :]
    Y = np.array(ex["setup"]["y"])[None, :]
    theta = article_theta(ex)
    trace = reference.forward_trace(ARTICLE, theta, X)
    for name, atol in [("z1", ATOL_Z), ("h1", ATOL), ("z2", ATOL_Z), ("h2", ATOL)]:
        np.testing.assert_allclose(trace[name][0], ex[name], rtol=0, atol=atol, err_msg=name)
    g = reference.backward(ARTICLE, theta, trace, Y)
    for name in ["dLoss_dh2", "dh2_dz2", "dLoss_dh1", "dh1_dz1", "dLoss_dW1", "dLoss_dW2"]:
        np.testing.assert_allclose(np.squeeze(g[name]), ex[name], rtol=0, atol=ATOL, err_msg=name)


def test_worked_example_first_row_of_xor_data(worked_example):
    X, y = fastmlp.datasets.xor()
    np.testing.assert_allclose(X[0], worked_example["X"], rtol=0, atol=ATOL)


ACTIVATIONS = sorted(reference.ACTIVATIONS)
OUTPUT_LOSSES = [("sigmoid", "mse"), ("softmax", "mse"), ("identity", "mse"), ("exp", "mse"),
                 ("sigmoid", "cross_entropy"), ("softmax", "cross_entropy"), ("exp", "poisson")]


def random_problem(rng, arch, N, dtype=np.float64):
    """Inputs, targets fitting the output (one-hot rows, or probabilities for sigmoid cross-entropy,
    non-negative rates for exp, or values) and a random theta (smaller for exp, whose output would overflow)."""
    D, O = arch.sizes[0], arch.sizes[-1]
    X = rng.normal(size=(N, D)).astype(dtype)
    if arch.output == "identity":
        Y = rng.normal(size=(N, O))
    elif arch.output == "exp":                      # rates, some zero (integer counts would often equal
        Y = rng.exponential(2.0, size=(N, O))       # exp(z) ~ 1: a float32 loss of 1e-7 is all rounding)
        Y[rng.random((N, O)) < 0.2] = 0
    elif arch.output == "sigmoid" and arch.loss == "cross_entropy":
        Y = rng.random((N, O))
    else:
        Y = np.eye(O)[rng.integers(0, O, N)]
    theta = rng.normal(size=arch.n_parameters) * (0.3 if arch.output == "exp" else 1.0)
    if not arch.bias:
        theta[arch.n_weights:] = 0
    return X, Y.astype(dtype), theta.astype(dtype)


@st.composite
def architectures(draw, max_depth=3, max_width=5):
    depth = draw(st.integers(0, max_depth))
    output, loss = draw(st.sampled_from(OUTPUT_LOSSES))
    n_out = draw(st.integers(2 if output == "softmax" else 1, 4))
    sizes = (draw(st.integers(1, max_width)), *draw(st.lists(st.integers(1, max_width), min_size=depth,
                                                             max_size=depth)), n_out)
    activations = tuple(draw(st.lists(st.sampled_from(ACTIVATIONS), min_size=depth, max_size=depth)))
    return Architecture(sizes, activations, output, loss, draw(st.booleans()))


def central_differences(f, theta, eps=1e-6):
    numeric = np.zeros_like(theta)
    for k in range(theta.size):
        old = theta[k]
        theta[k] = old + eps
        up = f()
        theta[k] = old - eps
        down = f()
        theta[k] = old
        numeric[k] = (up - down) / (2 * eps)
    return numeric


def random_weights(rng, N, weighted, dtype=np.float64):
    """Sample weights for N rows: None, or draws in [0, 3) with some exact zeros (never all zero)."""
    if not weighted:
        return None
    w = rng.random(N) * 3
    w[rng.random(N) < 0.2] = 0
    w[0] = max(w[0], 0.5)
    return w.astype(dtype)


@settings(max_examples=150, deadline=None)
@given(arch=architectures(), N=st.integers(1, 6), reg=st.sampled_from([0.0, 0.3]),
       penalty=st.sampled_from(["l2", "l1"]), weighted=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_gradients_match_central_finite_differences(arch, N, reg, penalty, weighted, seed):
    """Every activation x output x loss, depths 0 to 3, biases on and off, l1 and l2, with and without
    sample weights."""
    rng = np.random.default_rng(seed)
    X, Y, theta = random_problem(rng, arch, N)
    w = random_weights(rng, N, weighted)
    W = theta[:arch.n_weights]
    if penalty == "l1":                      # |w| has a kink at 0: keep weights away from it
        W[np.abs(W) < 1e-3] = 0.5
    trace = reference.forward_trace(arch, theta, X)
    for l in range(1, arch.n_layers):        # the relus' kink at 0: keep pre-activations away from it
        if arch.activations[l - 1] in ("relu", "leaky_relu") and np.abs(trace[f"z{l}"]).min() < 1e-4:
            return
    _, gradient = reference.loss_and_gradients(arch, theta, X, Y, reg, penalty, w)
    numeric = central_differences(lambda: reference.loss(arch, theta, X, Y, reg, penalty, w), theta)
    scale = max(np.abs(numeric).max(), np.abs(gradient).max(), 1e-3)
    assert np.abs(numeric - gradient).max() / scale <= 1e-6


def test_softmax_cross_entropy_gradient_is_p_minus_y_over_n():
    rng = np.random.default_rng(3)
    arch = Architecture((3, 4), (), "softmax", "cross_entropy", True)
    X, Y, theta = random_problem(rng, arch, 5)
    trace = reference.forward_trace(arch, theta, X)
    g = reference.backward(arch, theta, trace, Y)
    np.testing.assert_allclose(g["dLoss_dz1"], (trace["h1"] - Y) / 5, rtol=1e-15)


def test_r2_is_scikit_learns():
    Y = np.array([[1.0, 2.0], [2.0, 2.0], [4.0, 2.0]])
    h = np.array([[1.5, 2.0], [2.0, 2.0], [3.0, 2.0]])
    # output 0: 1 - 1.25 / 4.6667; output 1: constant and exact, 1
    assert reference.r2(Y, h) == pytest.approx((1 - 1.25 / (14 / 3) + 1) / 2)
    assert reference.r2(Y, h + 1) == pytest.approx((1 - (2.25 + 1 + 0) / (14 / 3) + 0) / 2)


def test_weighted_scores_and_losses_are_scikit_learns():
    """With sample weights: r2 and accuracy as r2_score / accuracy_score weight them; the loss of a
    network whose rows are weighted 2 and 0 has the gradient of the weight-2 rows alone (the penalty
    divided by sum(w) = 24, twice their number)."""
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    Y, h, w = rng.normal(size=(30, 2)), rng.normal(size=(30, 2)), rng.random(30)
    assert reference.r2(Y, h, w) == pytest.approx(metrics.r2_score(Y, h, sample_weight=w), rel=1e-14)
    arch = Architecture((3, 4, 3), ("tanh",), "softmax", "cross_entropy", True)
    X, Y, theta = random_problem(rng, arch, 30)
    out = reference.forward(arch, theta, X)
    labels = rng.integers(0, 3, 30)
    assert reference.score_from_output(arch, out, Y, labels, w) == pytest.approx(
        metrics.accuracy_score(labels, out.argmax(axis=1), sample_weight=w), rel=1e-14)
    w = np.where(np.arange(30) < 12, 2.0, 0.0)
    np.testing.assert_allclose(reference.loss_and_gradients(arch, theta, X, Y, 0.3, "l2", w)[1],
                               reference.loss_and_gradients(arch, theta, X[:12], Y[:12], 0.15, "l2")[1], rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reference_keeps_dtype(dtype):
    rng = np.random.default_rng(0)
    arch = Architecture((2, 4, 3, 2), ("tanh", "relu"), "softmax", "cross_entropy", True)
    X, Y, theta = random_problem(rng, arch, 5, dtype)
    assert reference.forward(arch, theta, X).dtype == dtype
    _, gradient = reference.loss_and_gradients(arch, theta, X, Y, 0.1, "l2")
    assert gradient.dtype == dtype
    before = theta.copy()
    reference.step(arch, theta, X, Y, 0.1, 0.1, "l2")
    assert theta.dtype == dtype and not np.array_equal(theta, before)


def test_step_leaves_biases_alone_without_bias():
    rng = np.random.default_rng(1)
    arch = Architecture((2, 3, 3, 2), ("relu", "sigmoid"), "sigmoid", "mse", False)
    X, Y, theta = random_problem(rng, arch, 4)
    reference.step(arch, theta, X, Y, 0.5)
    assert not theta[arch.n_weights:].any()


def torch_loss(torch, arch, params, X, Y, reg, weights):
    """The loss of fastmlp's bricks written in PyTorch's own functions, for its autograd: params are
    the weights then the biases (as Architecture.split gives them)."""
    F = torch.nn.functional
    functions = {"identity": lambda z: z, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
                 "leaky_relu": lambda z: F.leaky_relu(z, 0.01), "elu": F.elu,
                 "softplus": lambda z: F.softplus(z, threshold=50), "gelu": lambda z: F.gelu(z, approximate="none"),
                 "silu": F.silu, "exp": torch.exp, "softmax": lambda z: torch.softmax(z, dim=1)}
    L = arch.n_layers
    Ws, bs = params[:L], params[L:]
    h = torch.tensor(X)
    for l in range(L):
        z = h @ Ws[l] + (bs[l] if arch.bias else 0)
        h = functions[arch.activations[l] if l < L - 1 else arch.output](z)
    Y = torch.tensor(Y)
    if arch.loss == "mse":
        rows = 0.5 * ((Y - h) ** 2).sum(dim=1)
    elif arch.loss == "poisson":
        rows = (torch.xlogy(Y, Y) - Y * z - Y + torch.exp(z)).sum(dim=1)
    elif arch.output == "softmax":
        rows = -(Y * torch.log_softmax(z, dim=1)).sum(dim=1)
    else:
        rows = (F.softplus(z, threshold=50) - Y * z).sum(dim=1)
    w = torch.ones(len(X), dtype=torch.float64) if weights is None else torch.tensor(weights)
    return (w * rows).sum() / w.sum() + reg / w.sum() * 0.5 * sum((W ** 2).sum() for W in Ws)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("output, loss", OUTPUT_LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradients_equal_pytorchs_autograd(activation, output, loss, backend):
    """Every brick, with sample weights and the l2 penalty, on both backends: loss and gradient equal
    those PyTorch's autograd computes from its own functions (an oracle independent of fastmlp's
    derivatives), to 1e-12."""
    torch = pytest.importorskip("torch")
    arch = Architecture((4, 7, 5, 3), (activation, activation), output, loss, True)
    rng = np.random.default_rng(len(activation) * 7 + len(output))
    X, Y, theta = random_problem(rng, arch, 40)
    X *= 2.0                                          # z across the bricks' branches (elu, relu: both signs)
    w = random_weights(rng, 40, True)
    net = fastmlp.MLP(arch.sizes, activation=activation, output=output, loss=loss, backend=backend)
    net._theta[...] = theta
    value, grads = net.loss_and_gradients(X, Y, reg=0.3, sample_weight=w)
    params = [torch.tensor(p, requires_grad=True) for p in net.parameters]
    expected = torch_loss(torch, arch, params, X, Y, 0.3, w)
    expected.backward()
    assert value == pytest.approx(expected.item(), rel=1e-12)
    for ours, theirs in zip(grads, params):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)
