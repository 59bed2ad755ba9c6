"""Sparse X (scipy.sparse) through the reference, the kernels (fastmlp.kernels.sparse), MLP and fit: the
same numbers as the dense path, the first layer computed on the nonzeros, bad input refused by name."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st

import fastmlp
from fastmlp import kernels, reference
from fastmlp.architecture import Architecture
from test_kernels import TOL, assert_kernels_match, rel_err
from test_reference import architectures, random_problem, random_weights


def sparse_like(rng, X, density):
    """X with all but about `density` of its entries zero, as CSR (rows left empty included)."""
    keep = rng.random(X.shape) < density
    return sp.csr_matrix(np.where(keep, X, 0).astype(X.dtype))


@settings(max_examples=40, deadline=None)
@given(arch=architectures(max_depth=2, max_width=12), N=st.one_of(st.integers(1, 40), st.integers(300, 1500)),
       dtype=st.just(np.float64), density=st.sampled_from([0.0, 0.05, 0.3, 1.0]),   # float32: the next test
       reg=st.sampled_from([0.0, 0.01]), weighted=st.booleans(), seed=st.integers(0, 999))
def test_kernels_on_sparse_rows_match_the_reference(arch, N, dtype, density, reg, weighted, seed):
    """forward, loss, gradients and a step of the kernels on CSR X against the reference (which
    multiplies with scipy's sparse products), every brick, both dtypes, empty rows and all-zero X."""
    rng = np.random.default_rng(seed)
    X, Y, theta = random_problem(rng, arch, N, dtype)
    Xs = sparse_like(rng, X, density)
    assert_kernels_match(arch, Xs, Y, theta, reg, "l2", random_weights(rng, N, weighted, dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_rows_give_the_dense_rows_numbers(dtype):
    """The same X dense and sparse: forward, gradients and step agree to the kernels' tolerance, and the
    reference's own dense and sparse products too."""
    rng = np.random.default_rng(3)
    arch = Architecture((300, 64, 32, 5), ("relu", "tanh"), "softmax", "cross_entropy", True)
    X, Y, theta = random_problem(rng, arch, 700, dtype)
    X[:, :10] = 0                                   # columns with no nonzero
    Xs = sparse_like(rng, X, 0.02)
    Xd = Xs.toarray()
    for backend in (kernels, reference):
        assert rel_err(backend.forward(arch, theta, Xs), backend.forward(arch, theta, Xd)) <= TOL[dtype]
        loss_s, grad_s = backend.loss_and_gradients(arch, theta, Xs, Y, 0.1)
        loss_d, grad_d = backend.loss_and_gradients(arch, theta, Xd, Y, 0.1)
        assert loss_s == pytest.approx(loss_d, rel=TOL[dtype])
        assert rel_err(grad_s, grad_d) <= TOL[dtype]
    # the first layer's weight gradient is exactly zero in columns that have no nonzero
    unused = np.flatnonzero(np.asarray(Xs.getnnz(axis=0)) == 0)
    assert len(unused) > 0
    dW1 = arch.split(kernels.loss_and_gradients(arch, theta, Xs, Y)[1])[0][0]
    assert not dW1[unused].any()


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("optimizer, shuffle, weighted", [("adam", True, True), ("sgd", False, False),
                                                          ("momentum", True, False)])
def test_fit_on_sparse_rows_follows_the_dense_fit(backend, optimizer, shuffle, weighted):
    """A minibatch fit (batches gathered by a shuffled order, or sliced; sample weights; a dense and a
    sparse eval_set) walks the dense fit's path to rounding."""
    rng = np.random.default_rng(0)
    X = sparse_like(rng, rng.normal(size=(600, 120)), 0.05)
    y = (X[:, :60].sum(axis=1).A1 > 0).astype(int) + (X[:, 60:].sum(axis=1).A1 > 0)
    w = random_weights(rng, 600, weighted)
    runs = {}
    for kind, rows in (("sparse", X), ("dense", X.toarray())):
        net = fastmlp.MLP((120, 16, 3), activation="tanh", output="softmax", loss="cross_entropy",
                          backend=backend, seed=1)
        eval_set = (X[500:] if kind == "sparse" else X[500:].toarray(), y[500:])
        history = net.fit(rows[:500], y[:500], lr=0.05, epochs=3, batch_size=64, optimizer=optimizer,
                          shuffle=shuffle, seed=2, reg=0.01, eval_set=eval_set, progress=False,
                          sample_weight=None if w is None else w[:500])
        runs[kind] = (net, history)
    (sparse_net, sparse_history), (dense_net, dense_history) = runs["sparse"], runs["dense"]
    for a, b in zip(sparse_net.parameters, dense_net.parameters):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sparse_history.frame["val_loss"], dense_history.frame["val_loss"], rtol=1e-12)
    assert sparse_net.score(X[500:], y[500:]) == dense_net.score(X[500:].toarray(), y[500:])


def test_every_sparse_format_and_integer_values_are_taken():
    """CSC, COO, scipy's sparse arrays and integer counts (a bag of words): the same output as CSR
    floats; the user's matrix is left as it was."""
    rng = np.random.default_rng(1)
    counts = sp.random(50, 40, density=0.1, format="csr", random_state=2, data_rvs=lambda n: rng.integers(1, 5, n))
    counts = counts.astype(np.int64)
    before = counts.copy()
    net = fastmlp.MLP((40, 8, 2), activation="relu", output="softmax", loss="cross_entropy", seed=0)
    expected = net.forward(counts.toarray().astype(float))
    for X in (counts, counts.tocsc(), counts.tocoo(), sp.csr_array(counts), counts.astype(np.float32)):
        np.testing.assert_allclose(net.forward(X), expected, rtol=1e-12)
    assert (counts != before).nnz == 0 and counts.dtype == np.int64


def test_sparse_bad_input_is_refused_by_name():
    net = fastmlp.MLP((6, 4, 2), output="softmax", loss="cross_entropy")
    X = sp.csr_matrix(np.eye(6)[:4])
    bad = X.copy()
    bad.data[2] = np.nan
    with pytest.raises(ValueError, match=r"X must be finite, found NaN at index \(2, 2\)"):
        net.forward(bad)
    with pytest.raises(ValueError, match=r"X must be finite, found NaN at index \(2, 2\)"):
        net.fit(bad, [0, 1, 0, 1], lr=0.1, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"X must have shape \(N, 6\), got \(4, 5\)"):
        net.forward(X[:, :5])
    with pytest.raises(ValueError, match="X must not be empty"):
        net.forward(X[:0])
    with pytest.raises(TypeError, match="X must hold real numbers"):
        net.forward(X.astype(np.complex128))
    with pytest.raises(TypeError, match="Y is a scipy.sparse matrix: only X may be sparse"):
        net.loss(X, sp.csr_matrix(np.eye(2)[[0, 1, 0, 1]]))
    with pytest.raises(ValueError, match="X and Y must have the same number of rows, got 4 and 3"):
        net.loss(X, np.eye(2)[[0, 1, 0]])


def test_a_fit_on_sparse_rows_never_makes_them_dense():
    """A TF-IDF-shaped X whose dense form would take 320 MB: fit and predict allocate (through NumPy,
    which tracemalloc sees) under a tenth of that beyond the network itself."""
    rng = np.random.default_rng(0)
    N, D = 2000, 20000
    X = sp.random(N, D, density=0.001, format="csr", random_state=3)
    y = rng.integers(0, 2, N)
    net = fastmlp.MLP((D, 8, 2), activation="relu", output="softmax", loss="cross_entropy", seed=0)
    run = dict(lr=0.1, batch_size=100, shuffle=True, seed=0, optimizer="adam", progress=False)
    net.fit(X[:200], y[:200], epochs=1, **run)                  # compile first (tracemalloc would see it)
    net.predict(X[:10])
    dense_bytes = N * D * 8
    network_bytes = net._theta.nbytes
    tracemalloc.start()
    try:
        net.fit(X, y, epochs=2, **run)
        net.predict(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < dense_bytes / 10, f"peak {peak / 1e6:.0f} MB against dense X's {dense_bytes / 1e6:.0f} MB"
    assert peak < 12 * network_bytes + 40e6


def test_sparse_fits_are_bitwise_the_same_with_one_or_two_threads():
    """Sparse batches run in one group, the first layer in fastmlp's own loops in row order: the bits do
    not depend on Numba's thread count."""
    import numba
    rng = np.random.default_rng(0)
    X = sp.random(3000, 500, density=0.02, format="csr", random_state=4)
    y = rng.integers(0, 4, 3000)
    results = []
    before = numba.get_num_threads()
    try:
        for threads in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(threads)
            net = fastmlp.MLP((500, 64, 64, 4), activation="relu", output="softmax", loss="cross_entropy", seed=0)
            net.fit(X, y, lr=1e-3, epochs=2, batch_size=500, optimizer="adam", shuffle=True, seed=1, progress=False)
            results.append(np.concatenate([p.ravel() for p in net.parameters]))
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(results[0], results[1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_sparse_products_in_parts_of_columns_give_one_parts_bits(dtype):
    """A forward product with COLUMN_PARTS_MIN_MACS multiply-adds cuts its columns in two parts that
    threads run side by side: the bits of one part, and scipy's product to the kernels' tolerance."""
    import numba as nb
    from fastmlp.kernels.sparse import (COLUMN_PARTS_MIN_MACS, as_csr, column_parts, product_in_parts,
                                        sparse_product)
    kernels.threads.start_threads()          # (a parallel call loaded from the cache needs the pool started)

    @nb.njit
    def in_parts(X, W, Z, parts):
        product_in_parts(X.data, X.indices, X.indptr, W, Z, parts)

    rng = np.random.default_rng(5)
    Xs = sp.random(300, 2000, density=0.02, format="csr", random_state=5, dtype=dtype)
    X = as_csr(Xs)
    for H in (72, 130):                                     # parts of 32 + 40, and 64 + 66 columns
        W = rng.normal(size=(2000, H)).astype(dtype)
        assert X.data.size * H >= COLUMN_PARTS_MIN_MACS and column_parts(300, X, H) == 2
        Z = np.full((300, H), np.nan, dtype)
        sparse_product(X, W, Z, np.empty(2, dtype))
        for parts in (1, 3):
            other = np.full((300, H), np.nan, dtype)
            in_parts(X, W, other, parts)
            assert np.array_equal(other, Z)
        assert rel_err(Z, Xs @ W) <= TOL[dtype]
