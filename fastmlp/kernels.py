"""The reference's math as fused Numba kernels: the `backend="numba"` of fastmlp.MLP.

Same functions and signatures as fastmlp.reference (forward, loss, loss_and_gradients, step), plus
`train_loop`, which runs many gradient-descent steps in one compiled call.

How the work is laid out (N samples, D inputs, H hidden units, O outputs):

- Samples go in *chunks* of `block` rows. A chunk keeps its hidden layer transposed, h1T (H, block),
  so that the inner loops run over samples with unit stride and vectorise (SIMD across samples).
  Wide inputs (D >= BLAS_MIN_INPUTS) instead multiply sample-major chunks through BLAS (np.dot).
- Chunks are dealt to a fixed number of *groups*, contiguous runs of chunks, in parallel (prange).
  Each group accumulates its own gradient buffer; the buffers are then summed in group order. The
  chunking depends only on (N, D, H, O) and the dtype, never on the thread count, so every result is
  bitwise identical with 1 or many threads, run after run.
- No (N, H) array is ever made: memory is groups x (D*H + H*O) for the buffers plus one chunk's
  scratch per running thread, whatever N is.
- For D = O = 2 (the article's shape) each hidden unit's forward and backward are single fused
  loops over the chunk's samples; other shapes take one loop per input and output.
- The sigmoid is our own vectorisable one (numba's exp is a scalar libm call here): range
  reduction by ln 2, a Pade form of exp, one division (see "sigmoid" below).

Flags: error_model="numpy" (no zero-division checks, which stop vectorisation); fastmath limited to
reassociation and contraction, so reductions vectorise, while NaN/inf keep their IEEE meaning (the
training loop checks for them). The sigmoid is compiled without reassociation.
"""

import functools
import math

import numba as nb
import numpy as np
from numba import types
from numba.extending import intrinsic, overload

from .reference import PENALTIES, loss_from_output

STRICT = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
FAST = dict(STRICT, fastmath={"reassoc", "contract", "nsz"})

BLAS_MIN_INPUTS = 32           # from this many inputs on, layer 1 runs through BLAS
LANES = 64                     # chunk loops run over a multiple of this many samples (padding)
MAX_GROUPS = 64                # most gradient buffers summed per step
GROUP_BUFFER_BYTES = 32 << 20  # and at most this much memory for them
PENALTY_CODES = {name: code for code, name in enumerate(sorted(PENALTIES))}   # l1: 0, l2: 1


# -- sigmoid ----------------------------------------------------------------------------------------
# sigmoid(z) = 1 / (1 + e) for z >= 0 and e / (1 + e) for z < 0, with e = exp(-|z|) <= 1 (the
# reference's formula), in one division:
#   x = -|z| = k ln2 + r, |r| <= ln2 / 2   k = round(x / ln2) by adding MAGIC = 1.5 * 2**52 + 1023,
#                                           which also leaves k + 1023 in the low bits of the sum;
#                                           ln2 split into a head with trailing zero bits and a tail,
#                                           so that k * LN2_HI is exact
#   exp(r) = P(r) / P(-r)                   the diagonal Pade approximant, P = even + odd parts
#   e = 2**k P(r) / P(-r)                   2**k: those low bits k + 1023 shifted into the exponent
#   sigmoid(|z|) = P(-r) / (P(-r) + 2**k P(r)),  sigmoid(-|z|) = 2**k P(r) / (same)
# Pade [6/6] in float64 (truncation < 1e-18), [3/3] in float32 (< 1e-8). Every step vectorises; the
# measured error against the reference's sigmoid is <= 3 ulp (tests/test_kernels.py). These functions
# must not be compiled with reassociation (the rounding by MAGIC would fold away).

LOG2E = 1.4426950408889634
LN2_HI_64, LN2_LO_64 = 6.93147180369123816490e-01, 1.90821492927058770002e-10
LN2_HI_32, LN2_LO_32 = np.float32(0.693359375), np.float32(-2.12194440e-4)
LOG2E_32 = np.float32(LOG2E)
MAGIC_64, MAGIC_32 = 1.5 * 2.0**52 + 1023, np.float32(1.5 * 2.0**23 + 127)
X_MIN_64, X_MIN_32 = -708.0, np.float32(-87.0)     # exp(x) stays a normal number above these


def pade_exp_coefficients(n):
    """c_i of P(r) = sum c_i r**i, exp(r) ~ P(r) / P(-r): c_i = (2n - i)! n! / ((2n)! i! (n - i)!)."""
    f = math.factorial
    return tuple(f(2 * n - i) * f(n) / (f(2 * n) * f(i) * f(n - i)) for i in range(n + 1))


P64_0, P64_1, P64_2, P64_3, P64_4, P64_5, P64_6 = pade_exp_coefficients(6)
P32_0, P32_1, P32_2, P32_3 = (np.float32(c) for c in pade_exp_coefficients(3))
FLOAT_INT = {types.float64: types.int64, types.float32: types.int32}


@intrinsic
def float_bits(typingctx, x):
    """The IEEE-754 bit pattern of a float64 (as int64) or float32 (as int32)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(signature.return_type))
    return FLOAT_INT[x](x), codegen


@intrinsic
def bits_float(typingctx, bits):
    """The float64 (from int64) or float32 (from int32) whose IEEE-754 bit pattern is `bits`."""
    float_type = {v: k for k, v in FLOAT_INT.items()}[bits]

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(signature.return_type))
    return float_type(bits), codegen


@nb.njit(**STRICT)
def sigmoid64(z):
    """sigmoid(z) for a float64 z (no overflow for any finite z)."""
    x = -abs(z)
    x = X_MIN_64 if x < X_MIN_64 else x
    k_biased = x * LOG2E + MAGIC_64
    k = k_biased - MAGIC_64
    r = (x - k * LN2_HI_64) - k * LN2_LO_64
    r2 = r * r
    even = ((P64_6 * r2 + P64_4) * r2 + P64_2) * r2 + P64_0
    odd = ((P64_5 * r2 + P64_3) * r2 + P64_1) * r
    e_num = (even + odd) * bits_float(float_bits(k_biased) << 52)
    e_den = even - odd
    return (e_den if z >= 0 else e_num) / (e_den + e_num)


@nb.njit(**STRICT)
def sigmoid32(z):
    """sigmoid(z) for a float32 z, in float32 (no overflow for any finite z)."""
    x = -abs(z)
    x = X_MIN_32 if x < X_MIN_32 else x
    k_biased = x * LOG2E_32 + MAGIC_32
    k = k_biased - MAGIC_32
    r = (x - k * LN2_HI_32) - k * LN2_LO_32
    r2 = r * r
    even = P32_2 * r2 + P32_0
    odd = (P32_3 * r2 + P32_1) * r
    exponent = np.int32((float_bits(k_biased) << 23) & 0x7F800000)   # numba widens int32 shifts
    e_num = (even + odd) * bits_float(exponent)
    e_den = even - odd
    return (e_den if z >= 0 else e_num) / (e_den + e_num)


def sigmoid(z):
    """sigmoid(z) in z's own float type (a typing-time dispatch to sigmoid32 / sigmoid64)."""


@overload(sigmoid)
def _sigmoid_for_dtype(z):
    return _call_sigmoid32 if z == types.float32 else _call_sigmoid64


def _call_sigmoid32(z):
    return sigmoid32(z)


def _call_sigmoid64(z):
    return sigmoid64(z)


# -- how the samples are cut into chunks and groups ---------------------------------------------------

@nb.njit(**STRICT)
def plan(N, D, H, O, itemsize):
    """(block, n_chunks, n_groups) for N samples: depends on the shapes and dtype only, never on threads.

    block: samples per chunk, so that a chunk's hidden layer (H x block) stays in L2 cache.
    n_groups: at most MAX_GROUPS gradient buffers, within GROUP_BUFFER_BYTES. Wide inputs (BLAS
    path) take one group of 1024-row chunks: BLAS threads itself, and groups would oversubscribe it
    (measured at (4096, 784, 1024, 10): one group 147 ms, four groups 305 ms, float64).
    """
    if D >= BLAS_MIN_INPUTS:
        return 1024, (N + 1023) // 1024, 1
    block = min(512, max(LANES, (262144 // H) // LANES * LANES))
    n_chunks = (N + block - 1) // block
    n_params = D * H + H + H * O + O
    n_groups = min(n_chunks, MAX_GROUPS, max(1, GROUP_BUFFER_BYTES // (n_params * itemsize)))
    return block, n_chunks, n_groups


@nb.njit(**STRICT)
def group_rows(g, n_groups, n_chunks, block, N):
    """Rows [start, stop) of group g: a contiguous run of whole chunks."""
    start = (g * n_chunks // n_groups) * block
    stop = min(((g + 1) * n_chunks // n_groups) * block, N)
    return start, stop


# -- one chunk, feature-major (few inputs): SIMD across the chunk's samples ----------------------------

@nb.njit(**STRICT)
def padded(n):
    """n rounded up to a multiple of LANES: loops that long have no scalar remainder to run."""
    return (n + LANES - 1) // LANES * LANES


@nb.njit(**FAST)
def chunk_forward_T(X, r0, n, W1, b1, W2, b2, XT, h1T, h2T):
    """Forward step for rows r0 .. r0+n of X, transposed: h1T[:, :n] (H, n) and h2T[:, :n] (O, n).

    XT (D, block) receives the chunk's inputs, zero-padded to m = padded(n) columns; every loop runs
    over m samples (the padding lanes hold finite values that the callers ignore). z1 = b1 + X W1 and
    z2 = b2 + h1 W2, one hidden unit j (one row of h1T) at a time, so that z2 accumulates while h1T[j]
    is in L1 cache. Returns m.
    """
    D, H = W1.shape
    O = W2.shape[1]
    m = padded(n)
    for d in range(D):
        for i in range(n):
            XT[d, i] = X[r0 + i, d]
        for i in range(n, m):
            XT[d, i] = 0
    for o in range(O):
        for i in range(m):
            h2T[o, i] = b2[o]
    for j in range(H):
        hidden_unit_forward(j, m, W1, b1, W2, XT, h1T[j], h2T)
    for o in range(O):
        for i in range(m):
            h2T[o, i] = sigmoid(h2T[o, i])
    return m


@nb.njit(**FAST)
def group_gradients_T(X, Y, W1, b1, W2, b2, start, stop, block, gW1, gb1, gW2, gb2):
    """Adds the data-term gradients of rows [start, stop) to gW1, gb1, gW2, gb2; returns sum (Y - h2)**2.

    Per chunk: dLoss_dz2 = -(Y - h2) / N * h2 (1 - h2)  (O, n), then for each hidden unit j:
    dLoss_dW2[j] += h1[j] . dLoss_dz2,  dLoss_dz1[j] = (W2[j] . dLoss_dz2) * h1[j] (1 - h1[j]),
    dLoss_db1[j] += sum dLoss_dz1[j],   dLoss_dW1[:, j] += X^T dLoss_dz1[j].
    """
    N, D = X.shape
    H = W1.shape[1]
    O = W2.shape[1]
    dt = X.dtype
    XT = np.empty((D, block), dt)
    h1T = np.empty((H, block), dt)
    h2T = np.empty((O, block), dt)
    dz2T = np.empty((O, block), dt)
    dz1 = np.empty(block, dt)
    one = dt.type(1.0)
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
            hidden_unit_backward(j, m, W2, XT, h1T[j], dz2T, dz1, gW1, gb1, gW2)
    return sq


@nb.njit(**FAST)
def hidden_unit_forward(j, m, W1, b1, W2, XT, h1j, z2T):
    """h1j[:m] = sigmoid(b1[j] + W1[:, j] . XT[:, :m]); then z2T[o, :m] += W2[j, o] h1j[:m].

    For D = O = 2 (the article's shape) in one fused pass over the samples; otherwise one pass
    per input and per output.
    """
    D = XT.shape[0]
    O = z2T.shape[0]
    if D == 2 and O == 2:
        b, w0, w1, v0, v1 = b1[j], W1[0, j], W1[1, j], W2[j, 0], W2[j, 1]
        x0, x1, z0, z1 = XT[0], XT[1], z2T[0], z2T[1]
        for i in range(m):
            h = sigmoid(b + w0 * x0[i] + w1 * x1[i])
            h1j[i] = h
            z0[i] += v0 * h
            z1[i] += v1 * h
        return
    for i in range(m):
        h1j[i] = b1[j]
    for d in range(D):
        w = W1[d, j]
        xd = XT[d]
        for i in range(m):
            h1j[i] += w * xd[i]
    for i in range(m):
        h1j[i] = sigmoid(h1j[i])
    for o in range(O):
        w = W2[j, o]
        z2o = z2T[o]
        for i in range(m):
            z2o[i] += w * h1j[i]


@nb.njit(**FAST)
def hidden_unit_backward(j, m, W2, XT, h1j, dz2T, dz1, gW1, gb1, gW2):
    """Hidden unit j's share of the gradients over m samples:
    gW2[j] += h1j . dz2T,  dz1 = (W2[j] . dz2T) * h1j (1 - h1j),  gb1[j] += sum dz1,
    gW1[:, j] += XT dz1. For D = O = 2 in one fused pass; dz1 (>= m,) is scratch."""
    D = XT.shape[0]
    O = dz2T.shape[0]
    one = h1j.dtype.type(1.0)
    if D == 2 and O == 2:
        v0, v1 = W2[j, 0], W2[j, 1]
        x0, x1, d0, d1 = XT[0], XT[1], dz2T[0], dz2T[1]
        acc_v0, acc_v1, acc_b, acc_w0, acc_w1 = gW2[j, 0], gW2[j, 1], gb1[j], gW1[0, j], gW1[1, j]
        for i in range(m):
            h = h1j[i]
            acc_v0 += h * d0[i]
            acc_v1 += h * d1[i]
            dz = (v0 * d0[i] + v1 * d1[i]) * (h * (one - h))
            acc_b += dz
            acc_w0 += x0[i] * dz
            acc_w1 += x1[i] * dz
        gW2[j, 0], gW2[j, 1], gb1[j], gW1[0, j], gW1[1, j] = acc_v0, acc_v1, acc_b, acc_w0, acc_w1
        return
    for i in range(m):
        dz1[i] = 0
    for o in range(O):
        w = W2[j, o]
        dz2o = dz2T[o]
        acc = gW2[j, o]
        for i in range(m):
            acc += h1j[i] * dz2o[i]
            dz1[i] += w * dz2o[i]
        gW2[j, o] = acc
    acc = gb1[j]
    for i in range(m):
        dz1[i] *= h1j[i] * (one - h1j[i])
        acc += dz1[i]
    gb1[j] = acc
    for d in range(D):
        xd = XT[d]
        acc = gW1[d, j]
        for i in range(m):
            acc += xd[i] * dz1[i]
        gW1[d, j] = acc


# -- one chunk, sample-major (wide inputs): the products go through BLAS -------------------------------

@nb.njit(**FAST)
def chunk_forward_blas(Xc, W1, b1, W2, b2):
    """Forward step for a chunk Xc (n, D): returns h1 (n, H) and h2 (n, O)."""
    h1 = np.dot(Xc, W1)
    n, H = h1.shape
    for i in range(n):
        for j in range(H):
            h1[i, j] = sigmoid(h1[i, j] + b1[j])
    h2 = np.dot(h1, W2)
    for i in range(n):
        for o in range(h2.shape[1]):
            h2[i, o] = sigmoid(h2[i, o] + b2[o])
    return h1, h2


@nb.njit(**FAST)
def group_gradients_blas(X, Y, W1, b1, W2, b2, start, stop, block, gW1, gb1, gW2, gb2):
    """group_gradients_T for wide inputs: the same math, sample-major, products through BLAS."""
    N = X.shape[0]
    O = W2.shape[1]
    one = X.dtype.type(1.0)
    inv_N = one / N
    sq = 0.0
    for r0 in range(start, stop, block):
        Xc = X[r0:min(r0 + block, stop)]
        h1, h2 = chunk_forward_blas(Xc, W1, b1, W2, b2)
        n, H = h1.shape
        dz2 = np.empty_like(h2)
        for i in range(n):
            for o in range(O):
                diff = Y[r0 + i, o] - h2[i, o]
                sq += diff * diff
                dz2[i, o] = -diff * inv_N * (h2[i, o] * (one - h2[i, o]))
                gb2[o] += dz2[i, o]
        gW2 += np.dot(h1.T, dz2)
        dz1 = np.dot(dz2, W2.T)
        for i in range(n):
            for j in range(H):
                dz1[i, j] *= h1[i, j] * (one - h1[i, j])
                gb1[j] += dz1[i, j]
        gW1 += np.dot(Xc.T, dz1)
    return sq


@nb.njit(**FAST)
def group_gradients(X, Y, W1, b1, W2, b2, start, stop, block, gW1, gb1, gW2, gb2):
    if X.shape[1] >= BLAS_MIN_INPUTS:
        return group_gradients_blas(X, Y, W1, b1, W2, b2, start, stop, block, gW1, gb1, gW2, gb2)
    return group_gradients_T(X, Y, W1, b1, W2, b2, start, stop, block, gW1, gb1, gW2, gb2)


@nb.njit(**FAST)
def group_forward(X, W1, b1, W2, b2, start, stop, block, h2_out):
    """h2_out[start:stop] = the network's output for rows [start, stop) of X."""
    D, H = W1.shape
    O = W2.shape[1]
    if D >= BLAS_MIN_INPUTS:
        for r0 in range(start, stop, block):
            r1 = min(r0 + block, stop)
            h2_out[r0:r1] = chunk_forward_blas(X[r0:r1], W1, b1, W2, b2)[1]
        return
    XT = np.empty((D, block), X.dtype)
    h1T = np.empty((H, block), X.dtype)
    h2T = np.empty((O, block), X.dtype)
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
        group_forward(X, W1, b1, W2, b2, start, stop, block, h2_out)


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
        sq[g] = group_gradients(X, Y, W1, b1, W2, b2, start, stop, block, gW1[g], gb1[g], gW2[g], gb2[g])


@nb.njit(**FAST)
def gradients_in_groups(X, Y, W1, b1, W2, b2, block, n_chunks, n_groups, dW1, db1, dW2, db2):
    """Adds the data-term gradients to dW1, db1, dW2, db2 from n_groups parallel group buffers,
    summed in group order; returns sum (Y - h2)**2. (Kept out of loss_and_gradients_into: a
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
def forward_into(X, W1, b1, W2, b2, h2_out):
    """h2_out (N, O) = the network's output for X (N, D)."""
    N, D = X.shape
    H, O = W2.shape
    block, n_chunks, n_groups = plan(N, D, H, O, X.itemsize)
    if n_groups == 1:
        group_forward(X, W1, b1, W2, b2, 0, N, block, h2_out)
    else:
        forward_in_groups(X, W1, b1, W2, b2, block, n_chunks, n_groups, h2_out)


@nb.njit(**STRICT)
def penalty_value(W, penalty):
    """sum |W| (penalty 0, "l1") or sum W**2 / 2 (penalty 1, "l2"), accumulated in float64."""
    total = 0.0
    for w in W.ravel():
        total += abs(w) if penalty == 0 else 0.5 * w * w
    return total


@nb.njit(**STRICT)
def add_penalty_gradient(dW, W, coef, penalty):
    """dW += coef * sign(W) ("l1") or coef * W ("l2")."""
    flat_dW = dW.ravel()
    flat_W = W.ravel()
    for k in range(flat_W.size):
        flat_dW[k] += coef * (np.sign(flat_W[k]) if penalty == 0 else flat_W[k])


@nb.njit(**FAST)
def loss_and_gradients_into(X, Y, W1, b1, W2, b2, reg, penalty, dW1, db1, dW2, db2):
    """Loss (float64) at the current parameters; the gradients are written into dW1, db1, dW2, db2."""
    N, D = X.shape
    H, O = W2.shape
    block, n_chunks, n_groups = plan(N, D, H, O, X.itemsize)
    dW1[:] = 0
    db1[:] = 0
    dW2[:] = 0
    db2[:] = 0
    if n_groups == 1:
        sq = group_gradients(X, Y, W1, b1, W2, b2, 0, N, block, dW1, db1, dW2, db2)
    else:
        sq = gradients_in_groups(X, Y, W1, b1, W2, b2, block, n_chunks, n_groups, dW1, db1, dW2, db2)
    coef = X.dtype.type(reg / N)
    add_penalty_gradient(dW1, W1, coef, penalty)
    add_penalty_gradient(dW2, W2, coef, penalty)
    return sq / (2 * N) + reg / N * (penalty_value(W1, penalty) + penalty_value(W2, penalty))


@nb.njit(**STRICT)
def update(P, dP, lr):
    """P -= lr * dP, elementwise, in place."""
    flat_P = P.ravel()
    flat_dP = dP.ravel()
    for k in range(flat_P.size):
        flat_P[k] -= lr * flat_dP[k]


@nb.njit(**FAST)
def step_into(X, Y, W1, b1, W2, b2, lr, reg, penalty, bias, dW1, db1, dW2, db2):
    """One gradient-descent step in place (biases too if `bias`); returns the loss before it."""
    loss = loss_and_gradients_into(X, Y, W1, b1, W2, b2, reg, penalty, dW1, db1, dW2, db2)
    lr = X.dtype.type(lr)
    update(W1, dW1, lr)
    update(W2, dW2, lr)
    if bias:
        update(b1, db1, lr)
        update(b2, db2, lr)
    return loss


# -- the backend interface: the same functions and signatures as fastmlp.reference --------------------

@functools.cache
def start_threads():
    """Start Numba's thread pool, once per process. A cached function that calls a parallel one does
    not start it when loaded from the cache, and the parallel call then crashes (numba issue #8578);
    get_num_threads() starts it. Every entry point below calls this first."""
    nb.get_num_threads()


def forward(X, W1, b1, W2, b2):
    """The network's output h2 (N, O)."""
    start_threads()
    h2 = np.empty((X.shape[0], W2.shape[1]), X.dtype)
    forward_into(X, W1, b1, W2, b2, h2)
    return h2


def loss_and_gradients(X, Y, W1, b1, W2, b2, reg=0.0, penalty="l2"):
    """Returns (loss, (dLoss_dW1, dLoss_db1, dLoss_dW2, dLoss_db2)) at the current parameters."""
    start_threads()
    grads = tuple(np.empty_like(p) for p in (W1, b1, W2, b2))
    loss = loss_and_gradients_into(X, Y, W1, b1, W2, b2, reg, PENALTY_CODES[penalty], *grads)
    return float(loss), grads


def loss(X, Y, W1, b1, W2, b2, reg=0.0, penalty="l2"):
    """Loss = sum((Y - h2)**2) / (2N) + (reg / N) * penalty(W1, W2), as a Python float: the
    kernels' forward step, then the reference's formula on its (N, O) output (no gradients)."""
    return loss_from_output(Y, forward(X, W1, b1, W2, b2), W1, W2, reg, penalty)


def step(X, Y, W1, b1, W2, b2, lr, reg=0.0, penalty="l2", bias=True):
    """One gradient-descent step in place: W -= lr * dLoss_dW (and b, if `bias`). Returns the loss before it."""
    start_threads()
    grads = tuple(np.empty_like(p) for p in (W1, b1, W2, b2))
    return float(step_into(X, Y, W1, b1, W2, b2, lr, reg, PENALTY_CODES[penalty], bias, *grads))


# -- many steps in one compiled call ------------------------------------------------------------------

@nb.njit(**FAST)
def evaluate(X, Y, y, W1, b1, W2, b2, h2):
    """(sum (Y - h2)**2, accuracy against labels y) for X; h2 (N, O) is scratch. Y may have 0 rows."""
    forward_into(X, W1, b1, W2, b2, h2)
    N, O = h2.shape
    correct = 0
    sq = 0.0
    for i in range(N):
        best = 0
        for o in range(1, O):
            if h2[i, o] > h2[i, best]:
                best = o
        correct += best == y[i]
        if Y.shape[0] == N:
            for o in range(O):
                sq += (Y[i, o] - h2[i, o]) ** 2
    return sq, correct / N


@nb.njit(**FAST)
def squared_norm(a):
    total = 0.0
    for v in a.ravel():
        total += v * v
    return total


@nb.njit(**FAST)
def train_loop_compiled(Xb, Yb, batch_size, lrs, reg, penalty, clip_norm, bias, W1, b1, W2, b2,
                        Xe, ye, Xv, Yv, yv, eval_every, step0, eval_last,
                        losses, grad_norms, accuracies, val_losses, val_accuracies):
    """The steps of fastmlp.reference.train_loop, compiled: see there for the arguments."""
    n_steps = lrs.size
    Nb = Xb.shape[0]
    dW1, db1, dW2, db2 = np.empty_like(W1), np.empty_like(b1), np.empty_like(W2), np.empty_like(b2)
    h2e = np.empty((Xe.shape[0], W2.shape[1]), Xe.dtype)
    h2v = np.empty((Xv.shape[0], W2.shape[1]), Xv.dtype)
    for t in range(n_steps):
        start = (t * batch_size) % Nb
        stop = min(start + batch_size, Nb)
        loss = loss_and_gradients_into(Xb[start:stop], Yb[start:stop], W1, b1, W2, b2, reg, penalty,
                                       dW1, db1, dW2, db2)
        sq = squared_norm(dW1) + squared_norm(dW2)
        if bias:
            sq += squared_norm(db1) + squared_norm(db2)
        grad_norm = np.sqrt(sq)
        losses[t] = loss
        grad_norms[t] = grad_norm
        if not (np.isfinite(loss) and np.isfinite(grad_norm)):
            return t
        scale = clip_norm / grad_norm if 0 < clip_norm < grad_norm else 1.0
        lr = Xb.dtype.type(lrs[t] * scale)
        update(W1, dW1, lr)
        update(W2, dW2, lr)
        if bias:
            update(b1, db1, lr)
            update(b2, db2, lr)
        if (step0 + t + 1) % eval_every == 0 or (eval_last and t == n_steps - 1):
            accuracies[t] = evaluate(Xe, Yv[:0], ye, W1, b1, W2, b2, h2e)[1]
            if Xv.shape[0] > 0:
                sqv, val_accuracies[t] = evaluate(Xv, Yv, yv, W1, b1, W2, b2, h2v)
                Nv = Xv.shape[0]
                val_losses[t] = (sqv / (2 * Nv) + reg / Nv * (penalty_value(W1, penalty)
                                                              + penalty_value(W2, penalty)))
    return n_steps


def train_loop(Xb, Yb, batch_size, lrs, reg, penalty, clip_norm, bias, W1, b1, W2, b2,
               Xe, ye, Xv, Yv, yv, eval_every, step0, eval_last,
               losses, grad_norms, accuracies, val_losses, val_accuracies):
    """fastmlp.reference.train_loop in one compiled call (Python sees none of the steps)."""
    start_threads()
    return train_loop_compiled(
        Xb, Yb, batch_size, lrs, reg, PENALTY_CODES[penalty], clip_norm, bias, W1, b1, W2, b2,
        Xe, ye, Xv, Yv, yv, eval_every, step0, eval_last,
        losses, grad_norms, accuracies, val_losses, val_accuracies)


def warmup(dtypes=("float64", "float32")):
    """Compile (or load from the cache) every kernel for each dtype; returns seconds taken per dtype."""
    import time
    timings = {}
    for name in dtypes:
        dt = np.dtype(name)
        t0 = time.perf_counter()
        for D in (2, BLAS_MIN_INPUTS):      # both layer-1 paths
            X = np.zeros((3, D), dt)
            Y = np.zeros((3, 2), dt)
            params = [np.zeros(s, dt) for s in [(D, 2), (2,), (2, 2), (2,)]]
            forward(X, *params)
            step(X, Y, *params, 0.1)
            curves = [np.zeros(1) for _ in range(5)]
            y = np.zeros(3, np.int64)
            train_loop(X, Y, 3, np.full(1, 0.1), 0.0, "l2", 0.0, True, *params,
                       X, y, X, Y, y, 1, 0, True, *curves)
        timings[name] = time.perf_counter() - t0
    return timings
