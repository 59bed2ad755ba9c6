"""Rows of X in compressed sparse row form (CSR): the first layer's product and its weight gradient on
the nonzeros alone, in compiled code.

A sparse X reaches the kernels as CSR(data, indices, indptr, shape): row i's nonzeros are
data[indptr[i]:indptr[i + 1]] in columns indices[...] (int64), and indptr holds absolute positions into
data, so rows [start, stop) are CSR(data, indices, indptr[start:stop + 1], (stop - start, D)) with
nothing copied. Only the first layer sees X:

    Z_1 = X @ W_1                  Z_1[i, :] = sum_k data[k] W_1[indices[k], :]       over row i's k
    dLoss_dW_1 += X.T @ dLoss_dz_1 dLoss_dW_1[indices[k], :] += data[k] dLoss_dz_1[i, :]  row by row

Each row's sum runs over its nonzeros in stored order and the gradient over the rows in order, so the
bits follow from X alone (no BLAS). A large forward product is cut into two parts of columns that
threads run side by side (column_parts), each entry still the same sum in the same order. The functions
below take dense (an ndarray) or sparse X alike: each is a pair, chosen by X's type when a kernel is
compiled (by_kind), so the layers and the loop are written once for both. The fused path (the
article's arrangement) is dense only: kernels.spec_of never gives it a sparse X, and its functions'
sparse halves are never called.
"""

from collections import namedtuple

import numba as nb
import numpy as np
from numba import types
from numba.extending import intrinsic

from .blas import gemm
from .fastmath import FAST, STRICT, all_finite
from .plan import LINE_ENTRIES, part_start

CSR = namedtuple("CSR", "data indices indptr shape")

# The forward product cuts its columns in two from this many multiply-adds (nonzeros x columns): a
# 5,000-word first layer of 128 units on 200 rows of 37 nonzeros each (947,000) took 0.14 ms on one core
# of a 2-core AMD EPYC (AVX-512, aligned rows) and 0.10 in two parts, waking a thread costing 20-40 us.
COLUMN_PARTS_MIN_MACS = 1 << 18


def as_csr(X):
    """A scipy.sparse matrix (or array) as the kernels' CSR: data in X's dtype, int64 indices and indptr
    (converted once here, shared where they already are)."""
    X = X.tocsr()
    return CSR(np.ascontiguousarray(X.data), np.ascontiguousarray(X.indices, np.int64),
               np.ascontiguousarray(X.indptr, np.int64), (int(X.shape[0]), int(X.shape[1])))


def by_kind(dense, sparse, at=0):
    """A function for compiled code that calls dense(*args) where X = args[at] is an array and
    sparse(*args) where it is a CSR, chosen when the caller is compiled. The call is made in the
    caller's own code, as if it had called dense or sparse by name (an @overload puts a function
    between them, which Numba compiles, even where it inlines it, and optimises again with the whole
    call tree below it linked in)."""
    @intrinsic
    def either(typingctx, *args):
        chosen = types.Dispatcher(dense if isinstance(args[at], types.Array) else sparse)
        call = chosen.get_call_type(typingctx, args, {})

        def codegen(context, builder, signature, packed):
            values = [context.cast(builder, builder.extract_value(packed[0], k), args[k], call.args[k])
                      for k in range(len(args))]
            return context.get_function(chosen, call)(builder, values)
        return call.return_type(types.StarArgTuple.from_types(args)), codegen
    return either


# -- rows [start, stop) --------------------------------------------------------------------------------------

@nb.njit(**STRICT)
def dense_rows(X, start, stop):
    return X[start:stop]


@nb.njit(**STRICT)
def sparse_rows(X, start, stop):
    return CSR(X.data, X.indices, X.indptr[start:stop + 1], (stop - start, X.shape[1]))


rows_of = by_kind(dense_rows, sparse_rows)


# -- Z = X @ W ---------------------------------------------------------------------------------------------

@nb.njit(**STRICT)
def dense_product(X, W, Z, scalars):
    gemm(False, False, X, W, Z, 1.0, 0.0, scalars)


@nb.njit(inline="always", **FAST)
def column_parts(n_rows, X, H):
    """How many parts of columns the sparse forward product cuts H into: 2 where its multiply-adds (X's
    nonzeros in rows [0, n_rows) times H) take COLUMN_PARTS_MIN_MACS and each part holds a cache line's
    worth of columns (plan.LINE_ENTRIES; plan.part_start cuts them), else 1. Each entry of the result
    is the same sum in the same order either way."""
    nonzeros = X.indptr[n_rows] - X.indptr[0]
    return 2 if nonzeros * H >= COLUMN_PARTS_MIN_MACS and H >= 2 * LINE_ENTRIES else 1


@nb.njit(inline="always", **FAST)
def rows_times(data, indices, indptr, W, Z, j0, j1):
    """Z[:, j0:j1] = X @ W[:, j0:j1] for the CSR rows (data, indices, indptr), W (D, H) and Z (n, H): each
    row of Z the sum of W's rows at the row's nonzero columns, each times its value (one vectorised
    loop over the columns per nonzero, on contiguous slices)."""
    for i in range(Z.shape[0]):
        z = Z[i, j0:j1]
        z[:] = 0
        for k in range(indptr[i], indptr[i + 1]):
            v = data[k]
            w = W[indices[k], j0:j1]
            for j in range(z.size):
                z[j] += v * w[j]


@nb.njit(parallel=True, **FAST)
def product_in_parts(data, indices, indptr, W, Z, parts):
    """rows_times on `parts` parts of W's and Z's columns side by side."""
    for p in nb.prange(parts):
        H = Z.shape[1]
        rows_times(data, indices, indptr, W, Z, part_start(p, parts, H), part_start(p + 1, parts, H))


@nb.njit(**FAST)
def sparse_product(X, W, Z, scalars):
    """Z (n, H) = X @ W for CSR X (n, D) and W (D, H) (rows_times), in column_parts parts."""
    parts = column_parts(Z.shape[0], X, Z.shape[1])
    if parts == 1:
        rows_times(X.data, X.indices, X.indptr, W, Z, 0, Z.shape[1])
    else:
        product_in_parts(X.data, X.indices, X.indptr, W, Z, parts)


first_product = by_kind(dense_product, sparse_product)


# -- G += alpha X.T @ dZ -----------------------------------------------------------------------------------

@nb.njit(**STRICT)
def dense_add_transposed(X, dZ, G, alpha, scalars):
    gemm(True, False, X, dZ, G, alpha, 1.0, scalars)


@nb.njit(**FAST)
def sparse_add_transposed(X, dZ, G, alpha, scalars):
    """G (D, H) += alpha X.T @ dZ for CSR X (n, D) and dZ (n, H): row after row, each nonzero adds its
    value times the row's dZ to G's row at its column (only the columns that occur are touched). On one
    thread: two threads, each adding half of every row (or every other row), took longer than one (the
    threads write the same rows, or skip half the nonzeros at a division each)."""
    data, indices, indptr = X.data, X.indices, X.indptr
    n, H = dZ.shape
    a = G.dtype.type(alpha)
    for i in range(n):
        d = dZ[i]
        for k in range(indptr[i], indptr[i + 1]):
            v = a * data[k]
            g = G[indices[k]]
            for j in range(H):
                g[j] += v * d[j]


add_transposed_product = by_kind(dense_add_transposed, sparse_add_transposed)


# -- whole X: finiteness, batches gathered by row order -----------------------------------------------------

@nb.njit(**STRICT)
def sparse_finite(X):
    return all_finite(X.data[X.indptr[0]:X.indptr[X.indptr.size - 1]])


rows_finite = by_kind(all_finite, sparse_finite)


@nb.njit(**STRICT)
def dense_batch_buffer(X, rows):
    """Room for `rows` rows gathered from X."""
    return np.empty((rows, X.shape[1]), X.dtype)


@nb.njit(**STRICT)
def sparse_batch_buffer(X, rows):
    """Room for any `rows` rows gathered from CSR X: as many nonzeros as its `rows` longest rows hold."""
    lengths = np.sort(X.indptr[1:] - X.indptr[:-1])
    most = 0
    for k in range(max(0, lengths.size - rows), lengths.size):
        most += lengths[k]
    return CSR(np.empty(most, X.data.dtype), np.empty(most, np.int64), np.zeros(rows + 1, np.int64),
               (rows, X.shape[1]))


batch_buffer = by_kind(dense_batch_buffer, sparse_batch_buffer)


@nb.njit(**STRICT)
def dense_gather(X, order, into):
    """into[:n] = X[order] (n = order.size), returned as a view. Entry by entry: a row copied as a slice
    (into[i] = X[order[i]]) makes two array views a row, and took 35 us where this takes 9 to 13 for
    200 rows of 20 float32 out of 500,000 (2-core AMD EPYC)."""
    for i in range(order.size):
        r = order[i]
        for j in range(X.shape[1]):
            into[i, j] = X[r, j]
    return into[:order.size]


@nb.njit(**STRICT)
def sparse_gather(X, order, into):
    """The rows X[order] written into the CSR buffer `into` (sparse_batch_buffer), returned as a CSR."""
    at = 0
    for i in range(order.size):
        r = order[i]
        for k in range(X.indptr[r], X.indptr[r + 1]):
            into.data[at] = X.data[k]
            into.indices[at] = X.indices[k]
            at += 1
        into.indptr[i + 1] = at
    return CSR(into.data, into.indices, into.indptr[:order.size + 1], (order.size, X.shape[1]))


gather_rows = by_kind(dense_gather, sparse_gather)
