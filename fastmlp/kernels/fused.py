"""The article's network, fused: one sigmoid hidden layer, sigmoid outputs, squared error, few inputs.

For this arrangement (and few inputs and outputs: FUSED_MAX_INPUTS, FUSED_MAX_OUTPUTS) the layered
path's matrix products are too thin for BLAS, and one fused pass per hidden unit is faster:

- Samples go in chunks of `block` rows (fastmlp.kernels.plan). A chunk keeps its hidden layer
  transposed, h1T (H, block), so that the inner loops run over samples with unit stride and vectorise
  (SIMD across samples).
- Each hidden unit's forward (z1, h1, its share of z2) and backward (its share of every gradient) are
  single loops over the chunk's samples while h1T[j] is in L1 cache; for D = O = 2 (the article's
  shape) each is one fused loop.
- Chunks are dealt to groups in parallel; no (N, H) array is ever made: memory is groups x (D*H + H*O)
  for the buffers plus one chunk's scratch per running thread, whatever N is.
- Rows are indexed in place, never sliced: each slice (a view) costs an atomic reference count.
"""

import numba as nb
import numpy as np

from .fastmath import FAST, STRICT, sigmoid
from .memory import aligned_empty, padded
from .plan import fused_plan, group_rows

FUSED_MAX_INPUTS = 8
FUSED_MAX_OUTPUTS = 8


@nb.njit(**STRICT)
def chunk_scratch(X, H, O, block):
    """One chunk's scratch, made once and reused: (XT (D, block), h1T (H, block), h2T (O, block),
    dz2T (O, block), dz1 (block,)) in X's dtype."""
    D = X.shape[1]
    dt = X.dtype
    return (aligned_empty((D, block), dt), aligned_empty((H, block), dt), aligned_empty((O, block), dt),
            aligned_empty((O, block), dt), aligned_empty((block,), dt))


@nb.njit(**STRICT)
def new_scratch(X, W1, W2, rows):
    """chunk_scratch for batches of up to `rows` rows like X through a network with weights W1, W2
    (rows 0: no scratch)."""
    D = X.shape[1]
    H, O = W2.shape
    return chunk_scratch(X, H, O, fused_plan(rows, D, H, O, X.itemsize)[0] if rows > 0 else 0)


@nb.njit(inline="always", **FAST)
def chunk_forward_T(X, r0, n, W1, b1, W2, b2, XT, h1T, h2T):
    """Forward step for rows r0 .. r0+n of X, transposed: h1T[:, :n] (H, n) and h2T[:, :n] (O, n).

    XT (D, block) receives the chunk's inputs, zero-padded to m = padded(n, itemsize) columns; every loop runs
    over m samples (the padding lanes hold finite values that the callers ignore). z1 = b1 + X W1 and
    z2 = b2 + h1 W2, one hidden unit j (one row of h1T) at a time, so that z2 accumulates while h1T[j]
    is in L1 cache. Returns m.
    """
    D, H = W1.shape
    O = W2.shape[1]
    m = padded(n, X.itemsize)
    for d in range(D):
        for i in range(n):
            XT[d, i] = X[r0 + i, d]
        for i in range(n, m):
            XT[d, i] = 0
    for o in range(O):
        for i in range(m):
            h2T[o, i] = b2[o]
    for j in range(H):
        hidden_unit_forward(j, m, W1, b1, W2, XT, h1T, h2T)
    for o in range(O):
        for i in range(m):
            h2T[o, i] = sigmoid(h2T[o, i])
    return m


@nb.njit(inline="always", **FAST)
def group_gradients(X, Y, W1, b1, W2, b2, start, stop, block, gW1, gb1, gW2, gb2, scratch):
    """Adds the data-term gradients of rows [start, stop) to gW1, gb1, gW2, gb2; returns sum (Y - h2)**2.

    Per chunk: dLoss_dz2 = -(Y - h2) / N * h2 (1 - h2)  (O, n), then for each hidden unit j:
    dLoss_dW2[j] += h1[j] . dLoss_dz2,  dLoss_dz1[j] = (W2[j] . dLoss_dz2) * h1[j] (1 - h1[j]),
    dLoss_db1[j] += sum dLoss_dz1[j],   dLoss_dW1[:, j] += X^T dLoss_dz1[j].
    """
    N = X.shape[0]
    H = W1.shape[1]
    O = W2.shape[1]
    XT, h1T, h2T, dz2T, dz1 = scratch
    one = X.dtype.type(1.0)
    inv_N = one / N
    sq = 0.0
    for r0 in range(start, stop, block):
        n = min(block, stop - r0)
        m = chunk_forward_T(X, r0, n, W1, b1, W2, b2, XT, h1T, h2T)
        for o in range(O):
            acc = gb2[o]
            for i in range(n):
                h = h2T[o, i]
                diff = Y[r0 + i, o] - h
                sq += diff * diff
                dz2T[o, i] = -diff * inv_N * (h * (one - h))
                acc += dz2T[o, i]
            gb2[o] = acc
            for i in range(n, m):
                dz2T[o, i] = 0          # padding lanes add nothing below
        for j in range(H):
            hidden_unit_backward(j, m, W2, XT, h1T, dz2T, dz1, gW1, gb1, gW2)
    return sq


@nb.njit(inline="always", **FAST)
def hidden_unit_forward(j, m, W1, b1, W2, XT, h1T, z2T):
    """h1T[j, :m] = sigmoid(b1[j] + W1[:, j] . XT[:, :m]); then z2T[o, :m] += W2[j, o] h1T[j, :m].

    For D = O = 2 (the article's shape) in one fused pass over the samples; otherwise one pass
    per input and per output. Rows are indexed in place, never sliced out: each slice (a view) costs
    an atomic reference count increment and decrement, which at the article's size cost more than the
    arithmetic.
    """
    D = XT.shape[0]
    O = z2T.shape[0]
    if D == 2 and O == 2:
        b, w0, w1, v0, v1 = b1[j], W1[0, j], W1[1, j], W2[j, 0], W2[j, 1]
        for i in range(m):
            h = sigmoid(b + w0 * XT[0, i] + w1 * XT[1, i])
            h1T[j, i] = h
            z2T[0, i] += v0 * h
            z2T[1, i] += v1 * h
        return
    for i in range(m):
        h1T[j, i] = b1[j]
    for d in range(D):
        w = W1[d, j]
        for i in range(m):
            h1T[j, i] += w * XT[d, i]
    for i in range(m):
        h1T[j, i] = sigmoid(h1T[j, i])
    for o in range(O):
        w = W2[j, o]
        for i in range(m):
            z2T[o, i] += w * h1T[j, i]


@nb.njit(inline="always", **FAST)
def hidden_unit_backward(j, m, W2, XT, h1T, dz2T, dz1, gW1, gb1, gW2):
    """Hidden unit j's share of the gradients over m samples, with h = h1T[j]:
    gW2[j] += h . dz2T,  dz1 = (W2[j] . dz2T) * h (1 - h),  gb1[j] += sum dz1,
    gW1[:, j] += XT dz1. For D = O = 2 in one fused pass; dz1 (>= m,) is scratch."""
    D = XT.shape[0]
    O = dz2T.shape[0]
    one = h1T.dtype.type(1.0)
    if D == 2 and O == 2:
        v0, v1 = W2[j, 0], W2[j, 1]
        acc_v0, acc_v1, acc_b, acc_w0, acc_w1 = gW2[j, 0], gW2[j, 1], gb1[j], gW1[0, j], gW1[1, j]
        for i in range(m):
            h = h1T[j, i]
            d0, d1 = dz2T[0, i], dz2T[1, i]
            acc_v0 += h * d0
            acc_v1 += h * d1
            dz = (v0 * d0 + v1 * d1) * (h * (one - h))
            acc_b += dz
            acc_w0 += XT[0, i] * dz
            acc_w1 += XT[1, i] * dz
        gW2[j, 0], gW2[j, 1], gb1[j], gW1[0, j], gW1[1, j] = acc_v0, acc_v1, acc_b, acc_w0, acc_w1
        return
    for i in range(m):
        dz1[i] = 0
    for o in range(O):
        w = W2[j, o]
        acc = gW2[j, o]
        for i in range(m):
            acc += h1T[j, i] * dz2T[o, i]
            dz1[i] += w * dz2T[o, i]
        gW2[j, o] = acc
    acc = gb1[j]
    for i in range(m):
        dz1[i] *= h1T[j, i] * (one - h1T[j, i])
        acc += dz1[i]
    gb1[j] = acc
    for d in range(D):
        acc = gW1[d, j]
        for i in range(m):
            acc += XT[d, i] * dz1[i]
        gW1[d, j] = acc


@nb.njit(**FAST)
def group_forward(X, W1, b1, W2, b2, start, stop, block, h2_out, scratch):
    """h2_out[start:stop] = the network's output for rows [start, stop) of X."""
    O = W2.shape[1]
    XT, h1T, h2T = scratch[:3]
    for r0 in range(start, stop, block):
        n = min(block, stop - r0)
        chunk_forward_T(X, r0, n, W1, b1, W2, b2, XT, h1T, h2T)
        for i in range(n):
            for o in range(O):
                h2_out[r0 + i, o] = h2T[o, i]


# -- whole batches: groups in parallel, buffers summed in group order ----------------------------------

@nb.njit(parallel=True, **FAST)
def forward_groups(X, W1, b1, W2, b2, block, n_chunks, n_groups, h2_out):
    for g in nb.prange(n_groups):
        start, stop = group_rows(g, n_groups, n_chunks, block, X.shape[0])
        group_forward(X, W1, b1, W2, b2, start, stop, block, h2_out,
                      chunk_scratch(X, W1.shape[1], W2.shape[1], block))


@nb.njit(**FAST)
def forward_in_groups(X, W1, b1, W2, b2, block, n_chunks, n_groups, h2_out):
    """forward_groups behind a plain call: a parallel region called directly from forward_into
    made its serial path ~1 us slower per call (measured at (50, 2, 10, 2))."""
    forward_groups(X, W1, b1, W2, b2, block, n_chunks, n_groups, h2_out)


@nb.njit(parallel=True, **FAST)
def gradient_groups(X, Y, W1, b1, W2, b2, block, n_chunks, gW1, gb1, gW2, gb2, sq):
    n_groups = sq.size
    for g in nb.prange(n_groups):
        start, stop = group_rows(g, n_groups, n_chunks, block, X.shape[0])
        sq[g] = group_gradients(X, Y, W1, b1, W2, b2, start, stop, block, gW1[g], gb1[g], gW2[g], gb2[g],
                                chunk_scratch(X, W1.shape[1], W2.shape[1], block))


@nb.njit(**FAST)
def gradients_in_groups(X, Y, W1, b1, W2, b2, block, n_chunks, n_groups, dW1, db1, dW2, db2):
    """Adds the data-term gradients to dW1, db1, dW2, db2 from n_groups parallel group buffers,
    summed in group order; returns sum (Y - h2)**2. (Kept out of gradients_into: a
    parallel region called there made its serial path ~1 us slower per call.)"""
    D, H = W1.shape
    O = W2.shape[1]
    gW1 = np.zeros((n_groups, D, H), X.dtype)
    gb1 = np.zeros((n_groups, H), X.dtype)
    gW2 = np.zeros((n_groups, H, O), X.dtype)
    gb2 = np.zeros((n_groups, O), X.dtype)
    sqs = np.zeros(n_groups)
    gradient_groups(X, Y, W1, b1, W2, b2, block, n_chunks, gW1, gb1, gW2, gb2, sqs)
    sq = 0.0
    for g in range(n_groups):
        dW1 += gW1[g]
        db1 += gb1[g]
        dW2 += gW2[g]
        db2 += gb2[g]
        sq += sqs[g]
    return sq


@nb.njit(**FAST)
def forward_into(X, W1, b1, W2, b2, h2_out, scratch):
    """h2_out (N, O) = the network's output for X (N, D); scratch: new_scratch's (used when serial)."""
    N, D = X.shape
    H, O = W2.shape
    block, n_chunks, n_groups = fused_plan(N, D, H, O, X.itemsize)
    if n_groups == 1:
        group_forward(X, W1, b1, W2, b2, 0, N, block, h2_out, scratch)
    else:
        forward_in_groups(X, W1, b1, W2, b2, block, n_chunks, n_groups, h2_out)


@nb.njit(**FAST)
def gradients_into(X, Y, W1, b1, W2, b2, dW1, db1, dW2, db2, scratch):
    """Sets dW1, db1, dW2, db2 to the data term's gradients for X, Y; returns sum (Y - h2)**2.
    scratch: new_scratch's (used when serial)."""
    N, D = X.shape
    H, O = W2.shape
    block, n_chunks, n_groups = fused_plan(N, D, H, O, X.itemsize)
    dW1[:] = 0
    db1[:] = 0
    dW2[:] = 0
    db2[:] = 0
    if n_groups == 1:
        return group_gradients(X, Y, W1, b1, W2, b2, 0, N, block, dW1, db1, dW2, db2, scratch)
    return gradients_in_groups(X, Y, W1, b1, W2, b2, block, n_chunks, n_groups, dW1, db1, dW2, db2)

