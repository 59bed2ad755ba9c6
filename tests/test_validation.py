"""Bad input gets a clear error naming the argument, never a crash deep inside numpy."""

import numpy as np
import pytest

import fastmlp

X = np.zeros((4, 2))
Y = fastmlp.one_hot([0, 1, 0, 1], 2)


@pytest.fixture
def net(backend):
    return fastmlp.MLP((2, 3, 2), backend=backend)


@pytest.mark.parametrize("X_bad, error, message", [
    (np.zeros(4), ValueError, r"X must be 2-D, got 1-D"),
    (np.zeros((4, 2, 1)), ValueError, r"X must be 2-D, got 3-D"),
    (np.zeros((4, 3)), ValueError, r"X must have shape \(N, 2\), got \(4, 3\)"),
    (np.zeros((0, 2)), ValueError, r"X must not be empty"),
    (np.array([[0.0, np.nan]]), ValueError, r"X must be finite, found NaN at index \(0, 1\)"),
    (np.array([[0.0, np.inf]]), ValueError, r"X must be finite, found inf"),
    (np.zeros((4, 2), dtype=object), TypeError, r"X must hold real numbers, got dtype object"),
    (np.zeros((4, 2), dtype=complex), TypeError, r"X must hold real numbers, got dtype complex128"),
    (np.array([["a", "b"]]), TypeError, r"X must hold real numbers, got dtype <U1"),
    ("ab", TypeError, r"X must be a numeric array, got a string"),
])
def test_bad_X(net, X_bad, error, message):
    with pytest.raises(error, match=message):
        net.forward(X_bad)
    with pytest.raises(error, match=message):
        net.step(X_bad, Y, 0.1)


@pytest.mark.parametrize("Y_bad, message", [
    (np.zeros((4, 3)), r"Y must have shape \(N, 2\), got \(4, 3\)"),
    (np.zeros(4), r"Y must be 2-D"),
    (np.zeros((3, 2)), r"X and Y must have the same number of rows, got 4 and 3"),
    (np.full((4, 2), np.nan), r"Y must be finite"),
])
def test_bad_Y(net, Y_bad, message):
    with pytest.raises(ValueError, match=message):
        net.loss_and_gradients(X, Y_bad)
    with pytest.raises(ValueError, match=message):
        net.step(X, Y_bad, 0.1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_any_non_finite_entry_is_named_and_changes_nothing(backend, dtype, bad):
    """Every entry position (the numba backend finds them in its own compiled pass), on both paths
    (fused and layered), for every function that takes X and Y."""
    rng = np.random.default_rng(0)
    for net in (fastmlp.MLP((3, 4, 2), backend=backend, dtype=dtype),
                fastmlp.MLP((3, 5, 4, 2), backend=backend, dtype=dtype, activation="relu", output="softmax",
                            loss="cross_entropy")):
        before = [p.copy() for p in net.parameters]
        X, Y = rng.standard_normal((37, 3)).astype(dtype), np.eye(2, dtype=dtype)[rng.integers(0, 2, 37)]
        for name, array in (("X", X), ("Y", Y)):
            for index in ((0, 0), (17, 1), (36, array.shape[1] - 1)):
                A = array.copy()
                A[index] = bad
                XY = (A, Y) if name == "X" else (X, A)
                message = rf"{name} must be finite, found {'NaN' if np.isnan(bad) else bad} at index \({index[0]}, {index[1]}\)"
                calls = [lambda: net.step(*XY, 0.1), lambda: net.loss(*XY), lambda: net.loss_and_gradients(*XY)]
                if name == "X":
                    calls += [lambda: net.forward(A), lambda: net.predict(A), lambda: net.score(A, Y.argmax(1))]
                for call in calls:
                    with pytest.raises(ValueError, match=message):
                        call()
        assert all(np.array_equal(p, q) for p, q in zip(net.parameters, before))


@pytest.mark.parametrize("y_bad, error, message", [
    ([0, 1, 2, 0], ValueError, r"y must hold labels in \[0, 2\)"),
    ([0, 1, 0], ValueError, r"y must have 4 labels"),
    ([0.5, 1, 0, 1], ValueError, r"y must hold integer class labels"),
    (np.zeros((4, 1)), ValueError, r"y must be 1-D"),
])
def test_bad_labels(net, y_bad, error, message):
    with pytest.raises(error, match=message):
        net.score(X, y_bad)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(lr=0.0), ValueError, r"lr must be > 0, got 0.0"),
    (dict(lr=-1.0), ValueError, r"lr must be > 0"),
    (dict(lr=float("nan")), ValueError, r"lr must be finite, got nan"),
    (dict(lr=float("inf")), ValueError, r"lr must be finite"),
    (dict(lr="0.1"), TypeError, r"lr must be a real number, got str"),
    (dict(lr=0.1, reg=-1.0), ValueError, r"reg must be >= 0"),
    (dict(lr=0.1, reg=float("nan")), ValueError, r"reg must be finite"),
    (dict(lr=0.1, penalty="l3"), ValueError, r"penalty must be one of \['l1', 'l2'\], got 'l3'"),
])
def test_bad_step_options(net, kwargs, error, message):
    with pytest.raises(error, match=message):
        net.step(X, Y, **kwargs)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(sizes=(2,)), ValueError, r"sizes must be \(n_inputs, \*hidden, n_outputs\): at least two"),
    (dict(sizes=(2, 0, 2)), ValueError, r"sizes must all be positive"),
    (dict(sizes=(2, 3.5, 2)), TypeError, r"sizes must hold integers"),
    (dict(sizes=5), TypeError, r"sizes must be a sequence"),
    (dict(sizes=(2, 3, 2), backend="torch"), ValueError, r"backend must be one of \['numba', 'numpy'\], got 'torch'"),
    (dict(sizes=(2, 3, 2), dtype="float16"), ValueError, r"dtype must be one of \['float32', 'float64'\], got 'float16'"),
    (dict(sizes=(2, 3, 2), dtype="banana"), ValueError, r"dtype must be one of"),
    (dict(sizes=(2, 3, 2), bias="yes"), TypeError, r"bias must be True or False"),
    (dict(sizes=(2, 3, 2), seed=-1), ValueError, r"seed must be None or an integer in \[0, 2\*\*32\)"),
    (dict(sizes=(2, 3, 2), seed="abc"), ValueError, r"seed must be None or an integer"),
    (dict(sizes=(2, 3, 2), activation="mish"), ValueError,
     r"activation must be one of \['elu', 'gelu', 'identity', 'leaky_relu', 'relu', 'sigmoid', 'silu', "
     r"'softplus', 'tanh'\], got 'mish'"),
    (dict(sizes=(2, 3, 4, 2), activation=["relu"]), ValueError,
     r"activation must have one name per hidden layer \(2 for sizes \(2, 3, 4, 2\)\), got 1"),
    (dict(sizes=(2, 3, 4, 2), activation=["relu", "swish"]), ValueError, r"activation\[1\] must be one of"),
    (dict(sizes=(2, 3, 2), activation=3), TypeError, r"activation must be a name or a sequence of names"),
    (dict(sizes=(2, 3, 2), output="tanh"), ValueError,
     r"output must be one of \['exp', 'identity', 'sigmoid', 'softmax'\], got 'tanh'"),
    (dict(sizes=(2, 3, 2), loss="hinge"), ValueError, r"loss must be one of \['cross_entropy', 'mse', 'poisson'\]"),
    (dict(sizes=(2, 3, 2), output="identity", loss="poisson"), ValueError,
     r"loss='poisson' needs output='exp', got output='identity'"),
    (dict(sizes=(2, 3, 2), output="identity", loss="cross_entropy"), ValueError,
     r"loss='cross_entropy' needs output='sigmoid' or 'softmax', got output='identity'"),
    (dict(sizes=(2, 3, 1), output="softmax"), ValueError, r"output='softmax' needs at least 2 outputs"),
    (dict(sizes=(2, 3, 2), init="xavier"), ValueError, r"init must be one of \['article', 'glorot', 'he'\]"),
])
def test_bad_constructor_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        fastmlp.MLP(**kwargs)


def test_one_hot_and_xor_arguments():
    with pytest.raises(ValueError, match=r"y must hold labels in \[0, 2\)"):
        fastmlp.one_hot([0, 2], 2)
    with pytest.raises(ValueError, match="n_classes must be >= 1"):
        fastmlp.one_hot([0], 0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        fastmlp.datasets.xor(n=0)


def test_targets_that_do_not_fit_the_output():
    X = np.random.default_rng(0).normal(size=(6, 2))
    regressor = fastmlp.MLP((2, 4, 2), output="identity")
    with pytest.raises(ValueError, match=r"y must be targets of shape \(N,\) or \(N, 2\), got shape \(6,\)"):
        regressor.fit(X, np.zeros(6), lr=0.1, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"y must have shape \(N, 2\), got \(6, 3\)"):
        regressor.score(X, np.zeros((6, 3)))
    with pytest.raises(ValueError, match=r"y must be finite"):
        regressor.fit(X, np.full((6, 2), np.nan), lr=0.1, steps=1, progress=False)
    binary = fastmlp.MLP((2, 4, 1))
    with pytest.raises(ValueError, match=r"y must hold labels in \[0, 2\)"):
        binary.fit(X, [0, 1, 2, 0, 1, 0], lr=0.1, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"eval_set y must hold labels in \[0, 3\)"):
        fastmlp.MLP((2, 4, 3)).fit(X, [0, 1, 2, 0, 1, 0], lr=0.1, steps=1, progress=False,
                                   eval_set=(X, [0, 1, 5, 0, 1, 0]))


def test_booleans_scalars_sparse_and_huge_labels():
    """Momentum's nesterov strictly boolean; 0-d arrays count as numbers; sparse X taken (as CSR) but
    sparse targets and weights refused by name; a uint64 label beyond int64 reported as itself."""
    with pytest.raises(TypeError, match="nesterov must be True or False"):
        fastmlp.Momentum(nesterov="no")
    X = np.random.default_rng(0).normal(size=(6, 2))
    Y = fastmlp.one_hot(np.array([0, 1, 0, 1, 0, 1]), 2)
    net = fastmlp.MLP((2, 3, 2))
    net.step(X, Y, lr=np.array(0.1))
    scipy_sparse = pytest.importorskip("scipy.sparse")
    np.testing.assert_allclose(net.forward(scipy_sparse.csr_matrix(X)), net.forward(X), rtol=1e-14)
    with pytest.raises(TypeError, match="Y is a scipy.sparse matrix: only X may be sparse"):
        net.step(X, scipy_sparse.csr_matrix(Y), lr=0.1)
    with pytest.raises(ValueError, match=str(2**63)):
        net.fit(X, np.array([0, 1, 0, 1, 0, 2**63], np.uint64), lr=0.1, steps=1, progress=False)
