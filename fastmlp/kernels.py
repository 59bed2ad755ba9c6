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
- Small sizes are bound by overheads, not arithmetic: scratch is made once per call (train_loop:
  once for all its steps) and starts on 64-byte boundaries (aligned_empty); rows are indexed in
  place rather than sliced; the training loop runs on borrowed arrays (see borrowed), because
  numba's reference counting of arrays is atomic and cost more than the article's step itself.
- The accuracy that train_loop records is certified rather than recomputed: a float32 pass with
  rigorous error bounds, then bounds on how far each step moves the outputs, so that only samples
  near the decision boundary are recomputed in float64 (see "accuracy" below). It is the exact
  float64 count, sample for sample.

Flags: error_model="numpy" (no zero-division checks, which stop vectorisation); fastmath limited to
reassociation and contraction, so reductions vectorise, while NaN/inf keep their IEEE meaning (the
training loop checks for them). The sigmoid is compiled without reassociation.
"""

import functools
import math

import numba as nb
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .reference import PENALTIES, loss_from_output

STRICT = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
FAST = dict(STRICT, fastmath={"reassoc", "contract", "nsz"})

BLAS_MIN_INPUTS = 32           # from this many inputs on, layer 1 runs through BLAS
LANES = 16                     # chunks hold a multiple of this many samples (64 bytes of float32)
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


@intrinsic
def borrowed(typingctx, x):
    """x (an array, or a tuple of them, nested) without reference counting: the same data, with no
    owner (meminfo) attached, as numba.carray makes. Numba counts references to every array a
    function is handed or slices, with atomic instructions (tens of cycles each, and a barrier);
    at the article's size that cost more than the arithmetic. Whoever borrows must keep the owner
    alive for as long as the borrowed arrays are used (train_loop_compiled: its caller does)."""
    def strip(context, builder, typ, value):
        if isinstance(typ, types.Array):
            array = context.make_array(typ)(context, builder, value)
            array.meminfo = cgutils.get_null_value(array.meminfo.type)
            array.parent = cgutils.get_null_value(array.parent.type)
            return array._getvalue()
        if isinstance(typ, types.BaseTuple):
            for k, item_type in enumerate(typ):
                item = strip(context, builder, item_type, builder.extract_value(value, k))
                value = builder.insert_value(value, item, k)
        return value

    def codegen(context, builder, signature, args):
        return strip(context, builder, signature.args[0], args[0])
    return x(x), codegen


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
def padded(n, itemsize):
    """n rounded up to whole 64-byte vectors of itemsize-byte floats (8 float64, 16 float32): loops
    that long have no scalar remainder to run."""
    lanes = 64 // itemsize
    return (n + lanes - 1) // lanes * lanes


@nb.njit(**STRICT)
def aligned_empty(shape, dtype):
    """np.empty(shape, dtype) starting on a 64-byte boundary. Numba's own arrays start on 32-byte
    boundaries, so every AVX-512 load and store of a row would straddle two cache lines; rows of
    `block` (a multiple of LANES) elements then all start aligned."""
    size = 1
    for n in shape:
        size *= n
    buffer = np.empty(size + 64, dtype)
    skip = (-buffer.ctypes.data % 64) // buffer.itemsize
    return buffer[skip:skip + size].reshape(shape)


@nb.njit(**STRICT)
def chunk_scratch(X, H, O, block):
    """One chunk's scratch, made once and reused: (XT (D, block), h1T (H, block), h2T (O, block),
    dz2T (O, block), dz1 (block,)) in X's dtype; empty for wide inputs (BLAS allocates its own)."""
    D = X.shape[1]
    if D >= BLAS_MIN_INPUTS:
        block = 0
    dt = X.dtype
    return (aligned_empty((D, block), dt), aligned_empty((H, block), dt), aligned_empty((O, block), dt),
            aligned_empty((O, block), dt), aligned_empty((block,), dt))


@nb.njit(**STRICT)
def new_scratch(X, W1, W2):
    """chunk_scratch for a batch like X through a network with weights W1, W2."""
    N, D = X.shape
    H, O = W2.shape
    return chunk_scratch(X, H, O, plan(N, D, H, O, X.itemsize)[0])


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
def group_gradients_T(X, Y, W1, b1, W2, b2, start, stop, block, gW1, gb1, gW2, gb2, scratch):
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


@nb.njit(inline="always", **FAST)
def group_gradients(X, Y, W1, b1, W2, b2, start, stop, block, gW1, gb1, gW2, gb2, scratch):
    if X.shape[1] >= BLAS_MIN_INPUTS:
        return group_gradients_blas(X, Y, W1, b1, W2, b2, start, stop, block, gW1, gb1, gW2, gb2)
    return group_gradients_T(X, Y, W1, b1, W2, b2, start, stop, block, gW1, gb1, gW2, gb2, scratch)


@nb.njit(**FAST)
def group_forward(X, W1, b1, W2, b2, start, stop, block, h2_out, scratch):
    """h2_out[start:stop] = the network's output for rows [start, stop) of X."""
    D, H = W1.shape
    O = W2.shape[1]
    if D >= BLAS_MIN_INPUTS:
        for r0 in range(start, stop, block):
            r1 = min(r0 + block, stop)
            h2_out[r0:r1] = chunk_forward_blas(X[r0:r1], W1, b1, W2, b2)[1]
        return
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
def forward_into(X, W1, b1, W2, b2, h2_out, scratch):
    """h2_out (N, O) = the network's output for X (N, D); scratch: new_scratch's (used when serial)."""
    N, D = X.shape
    H, O = W2.shape
    block, n_chunks, n_groups = plan(N, D, H, O, X.itemsize)
    if n_groups == 1:
        group_forward(X, W1, b1, W2, b2, 0, N, block, h2_out, scratch)
    else:
        forward_in_groups(X, W1, b1, W2, b2, block, n_chunks, n_groups, h2_out)


@nb.njit(**STRICT)
def penalty_value(W, penalty):
    """sum |W| (penalty 0, "l1") or sum W**2 / 2 (penalty 1, "l2"), accumulated in float64."""
    total = 0.0
    for k in np.ndindex(W.shape):
        total += abs(W[k]) if penalty == 0 else 0.5 * W[k] * W[k]
    return total


@nb.njit(inline="always", **STRICT)
def add_penalty(dW, W, coef, penalty):
    """dW += coef * sign(W) ("l1") or coef * W ("l2"); returns penalty_value(W, penalty), in one pass."""
    total = 0.0
    if penalty == 0:
        for k in np.ndindex(W.shape):
            dW[k] += coef * np.sign(W[k])
            total += abs(W[k])
    else:
        for k in np.ndindex(W.shape):
            dW[k] += coef * W[k]
            total += 0.5 * W[k] * W[k]
    return total


@nb.njit(**FAST)
def loss_and_gradients_into(X, Y, W1, b1, W2, b2, reg, penalty, dW1, db1, dW2, db2, scratch):
    """Loss (float64) at the current parameters; the gradients are written into dW1, db1, dW2, db2.
    scratch: new_scratch's (used when serial)."""
    N, D = X.shape
    H, O = W2.shape
    block, n_chunks, n_groups = plan(N, D, H, O, X.itemsize)
    dW1[:] = 0
    db1[:] = 0
    dW2[:] = 0
    db2[:] = 0
    if n_groups == 1:
        sq = group_gradients(X, Y, W1, b1, W2, b2, 0, N, block, dW1, db1, dW2, db2, scratch)
    else:
        sq = gradients_in_groups(X, Y, W1, b1, W2, b2, block, n_chunks, n_groups, dW1, db1, dW2, db2)
    coef = X.dtype.type(reg / N)
    penalty_total = add_penalty(dW1, W1, coef, penalty) + add_penalty(dW2, W2, coef, penalty)
    return sq / (2 * N) + reg / N * penalty_total


@nb.njit(inline="always", **STRICT)
def update(P, dP, lr):
    """P -= lr * dP, elementwise, in place."""
    for k in np.ndindex(P.shape):
        P[k] -= lr * dP[k]


@nb.njit(**FAST)
def step_into(X, Y, W1, b1, W2, b2, lr, reg, penalty, bias, dW1, db1, dW2, db2, scratch):
    """One gradient-descent step in place (biases too if `bias`); returns the loss before it."""
    loss = loss_and_gradients_into(X, Y, W1, b1, W2, b2, reg, penalty, dW1, db1, dW2, db2, scratch)
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
    return forward_compiled(X, W1, b1, W2, b2)


def loss_and_gradients(X, Y, W1, b1, W2, b2, reg=0.0, penalty="l2"):
    """Returns (loss, (dLoss_dW1, dLoss_db1, dLoss_dW2, dLoss_db2)) at the current parameters."""
    start_threads()
    loss, *grads = loss_and_gradients_compiled(X, Y, W1, b1, W2, b2, reg, PENALTY_CODES[penalty])
    return float(loss), tuple(grads)


def loss(X, Y, W1, b1, W2, b2, reg=0.0, penalty="l2"):
    """Loss = sum((Y - h2)**2) / (2N) + (reg / N) * penalty(W1, W2), as a Python float: the
    kernels' forward step, then the reference's formula on its (N, O) output (no gradients)."""
    return loss_from_output(Y, forward(X, W1, b1, W2, b2), W1, W2, reg, penalty)


def step(X, Y, W1, b1, W2, b2, lr, reg=0.0, penalty="l2", bias=True):
    """One gradient-descent step in place: W -= lr * dLoss_dW (and b, if `bias`). Returns the loss before it."""
    start_threads()
    return float(step_compiled(X, Y, W1, b1, W2, b2, lr, reg, PENALTY_CODES[penalty], bias))


# The wrappers' compiled halves: each makes its outputs and scratch inside, in one call from Python.

@nb.njit(**FAST)
def forward_compiled(X, W1, b1, W2, b2):
    h2 = np.empty((X.shape[0], W2.shape[1]), X.dtype)
    forward_into(X, W1, b1, W2, b2, h2, new_scratch(X, W1, W2))
    return h2


@nb.njit(**FAST)
def loss_and_gradients_compiled(X, Y, W1, b1, W2, b2, reg, penalty):
    dW1, db1, dW2, db2 = np.empty_like(W1), np.empty_like(b1), np.empty_like(W2), np.empty_like(b2)
    loss = loss_and_gradients_into(X, Y, W1, b1, W2, b2, reg, penalty, dW1, db1, dW2, db2,
                                   new_scratch(X, W1, W2))
    return loss, dW1, db1, dW2, db2


@nb.njit(**FAST)
def step_compiled(X, Y, W1, b1, W2, b2, lr, reg, penalty, bias):
    dW1, db1, dW2, db2 = np.empty_like(W1), np.empty_like(b1), np.empty_like(W2), np.empty_like(b2)
    return step_into(X, Y, W1, b1, W2, b2, lr, reg, penalty, bias, dW1, db1, dW2, db2,
                     new_scratch(X, W1, W2))


# -- many steps in one compiled call ------------------------------------------------------------------

@nb.njit(**FAST)
def evaluate(X, Y, y, W1, b1, W2, b2, h2, scratch):
    """(sum (Y - h2)**2, accuracy against labels y) for X; h2 (N, O) and scratch (new_scratch's) are
    scratch. Y may have 0 rows."""
    forward_into(X, W1, b1, W2, b2, h2, scratch)
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


# -- accuracy on a fixed evaluation set: certified, and lazy between steps -----------------------------
# The training loop records the accuracy on the evaluation set, often after every step, and that costs
# more than the step itself (the article: 300 samples x 10 hidden units against a batch of 50). It
# needs only which output of each sample is largest, and between two small steps few samples change.
#
# Refresh: a float32 forward step (about twice the sigmoid throughput of float64) gives z2 to within
# E2[o] of the float64 one. Sample i's *margin* is the least of, over the outputs o other than its
# top t:  z2[t] - z2[o] - E2[t] - E2[o] - GAP,  Z_MAX - z2[o] - E2[o],  z2[o] - E2[o] - Z_MIN.
# With margin > 0 the float64 forward step surely predicts t too: its output sigmoids then order t above
# every o (z2[t] - z2[o] >= GAP with z2[o] <= Z_MAX gives sigmoid(z2[t]) / sigmoid(z2[o]) >= 1 + GAP
# (1 - sigmoid(Z_MAX + GAP)) = 1 + 2e-14, far above sigmoid64's 3 ulp; z2[o] >= Z_MIN keeps sigmoid64
# away from its clamp at -708). The other samples are recomputed exactly in float64.
# Later evaluations: from the reference parameters R (those of the refresh) to the current W, every
# sample's z2[o] moves by at most delta[o] (drift_bound). A sample whose margin exceeds 2 max(delta)
# keeps its prediction; the others ("near") are recomputed exactly in float64. When too many are near,
# refresh. Either way the count is the one the exact float64 forward step gives, sample for sample.
#
# The bounds, with u = 2**-24 (float32 rounding), |X[:, d]| <= xmax[d] and h in [0, 1]:
#   |z1_32[j] - z1[j]| <= E1[j] = 2 (D + 3) u (|b1[j]| + sum_d |W1[d, j]| xmax[d])
#   |h1_32[j] - h1[j]| <= Eh[j] = E1[j] / 4 + 8 u           (sigmoid' <= 1/4; sigmoid32 <= 3 ulp)
#   |z2_32[o] - z2[o]| <= E2[o] = 2 (sum_j |W2[j, o]| Eh[j] + (H + 3) u (|b2[o]| + sum_j |W2[j, o]|))
#                                 + TINY                      (TINY covers float32 underflow)
#   |z2(W)[o] - z2(R)[o]| <= delta[o] = |dB2[o]| + sum_j |dW2[j, o]|
#                                 + sum_j |R2[j, o]| (|dB1[j]| + sum_d |dW1[d, j]| xmax[d]) / 4
# Each line counts the rounding of the inputs, parameters, products and sums; the factors 2 (and
# delta's ROUND_64 term) cover the float64 computation's own rounding with a wide margin.

ROUND_32 = 2.0**-24
ROUND_64 = 2.0**-52
TINY = 1e-30
GAP, Z_MAX, Z_MIN = 1e-5, 20.0, -700.0


@nb.njit(**STRICT)
def certified_setup(Xe, H, O, block):
    """Everything certified_correct keeps for the evaluation set Xe (N, D), as nested tuples:
    (XeT, xmax)  XeT (n_chunks, D, block) float32: chunk c holds rows c*block.. of Xe, transposed and
                 zero-padded; xmax (D,) = max |Xe[:, d]|
    (W1f, b1f, W2f, b2f, h1T, z2T, Eh, E2)  float32 parameters and scratch of a refresh
    (R1, r1, R2, r2)  the reference parameters (float64, those of the last refresh)
    (order, margin, cum, info, raw, right)  the ranking (refresh_margins): samples by increasing
                 margin and their margins, cum[k] = how many of order[:k] were sure and right;
                 info = [sure and right at the last refresh, refreshed yet, unsure at it,
                 refreshes, near samples rechecked, samples ranked]; raw, right: scratch
    (z2n, rows, Xn, h2n, scratch)  for the near samples: z2n (O, 1) for the scalar float64 code; the
                 rest for those it leaves unsure, recomputed by the float64 forward step."""
    N, D = Xe.shape
    n_chunks = (N + block - 1) // block
    XeT = aligned_empty((n_chunks, D, block), np.float32)
    XeT[:] = 0
    xmax = np.zeros(D)
    for i in range(N):
        for d in range(D):
            XeT[i // block, d, i % block] = Xe[i, d]
            xmax[d] = max(xmax[d], abs(Xe[i, d]))
    f32 = np.float32
    refresh = (np.empty((D, H), f32), np.empty(H, f32), np.empty((H, O), f32), np.empty(O, f32),
               aligned_empty((H, block), f32), aligned_empty((O, block), f32), np.empty(H), np.empty(O))
    reference = (np.empty((D, H)), np.empty(H), np.empty((H, O)), np.empty(O))
    ranking = (np.arange(N), np.empty(N), np.zeros(N + 1, np.int64), np.zeros(6, np.int64), np.empty(N),
               np.empty(N, np.bool_))
    near = (np.empty((O, 1)), np.empty(N, np.int64), np.empty((N, D), Xe.dtype), np.empty((N, O), Xe.dtype),
            chunk_scratch(Xe, H, O, block))
    return (XeT, xmax), refresh, reference, ranking, near


@nb.njit(inline="always", **STRICT)
def z2_error_bounds(W1, b1, W2, b2, xmax, u, Eh, E2):
    """Fills E2 (O,) with the bound on |z2 - z2 of the float64 forward step| for a forward step in
    precision u (ROUND_32 for float32, ROUND_64 for other float64 code); Eh (H,) is scratch."""
    D, H = W1.shape
    O = W2.shape[1]
    for j in range(H):
        s = abs(b1[j])
        for d in range(D):
            s += abs(W1[d, j]) * xmax[d]
        Eh[j] = 2 * (D + 3) * u * s / 4 + 8 * u
    for o in range(O):
        propagated = 0.0
        s = abs(b2[o])
        for j in range(H):
            propagated += abs(W2[j, o]) * Eh[j]
            s += abs(W2[j, o])
        E2[o] = 2 * (propagated + (H + 3) * u * s) + TINY


@nb.njit(inline="always", **STRICT)
def drift_bound(W1, b1, W2, b2, R1, r1, R2, r2, xmax, dh):
    """2 max_o (delta[o] + rho[o]): z2[o] of the float64 forward step at W lies within delta[o] + rho[o]
    of the exact z2[o] at R for every sample (rho: its rounding, as in z2_error_bounds with ROUND_64).
    dh (H,) is scratch: the bound on each hidden unit's change plus its rounding."""
    D, H = W1.shape
    O = W2.shape[1]
    for j in range(H):
        change = abs(b1[j] - r1[j])
        size = abs(b1[j])
        for d in range(D):
            change += abs(W1[d, j] - R1[d, j]) * xmax[d]
            size += abs(W1[d, j]) * xmax[d]
        dh[j] = change / 4 + 2 * (D + 3) * ROUND_64 * size / 4 + 8 * ROUND_64
    worst = 0.0
    for o in range(O):
        bound = abs(b2[o] - r2[o]) + 2 * (H + 3) * ROUND_64 * abs(b2[o])
        for j in range(H):
            bound += (abs(W2[j, o] - R2[j, o]) + (abs(R2[j, o]) + abs(W2[j, o])) * dh[j]
                      + 2 * (H + 3) * ROUND_64 * abs(W2[j, o]))
        worst = max(worst, bound)
    return 2 * worst * (1 + 1e-9) + TINY


@nb.njit(inline="always", **STRICT)
def sample_z2(x, W1, b1, W2, b2, z2):
    """z2[:, 0] = b2 + sigmoid(b1 + x W1) W2 for one sample x (D,), in scalar float64 code."""
    D, H = W1.shape
    O = W2.shape[1]
    for o in range(O):
        z2[o, 0] = b2[o]
    for j in range(H):
        z = b1[j]
        for d in range(D):
            z += x[d] * W1[d, j]
        h = sigmoid(z)
        for o in range(O):
            z2[o, 0] += h * W2[j, o]


@nb.njit(inline="always", **STRICT)
def copy_into(dst, src):
    """dst[...] = src, converting to dst's dtype."""
    for k in np.ndindex(src.shape):
        dst[k] = src[k]


@nb.njit(inline="always", **STRICT)
def sample_margin(z2T, i, E2):
    """(top, margin) of sample i in z2T (O, n) float32: its largest output (the first of equals) and
    its margin (see the section's comment; > 0 when the float64 network surely predicts top)."""
    O = z2T.shape[0]
    top = 0
    for o in range(1, O):
        if z2T[o, i] > z2T[top, i]:
            top = o
    z_top = np.float64(z2T[top, i])
    margin = np.inf
    for o in range(O):
        if o != top:
            z_o = np.float64(z2T[o, i])
            margin = min(margin, z_top - z_o - E2[top] - E2[o] - GAP, Z_MAX - z_o - E2[o],
                         z_o - E2[o] - Z_MIN)
    return top, margin if margin > 0 else -np.inf     # -inf: also for NaN


@nb.njit(**FAST)
def refresh_margins(setup, Xe, ye, W1, b1, W2, b2):
    """The float32 pass over the whole evaluation set: the current parameters become the reference,
    and the ranking is rebuilt: first the unsure samples, then the near_limit(N) + 1 sure ones of
    least margin, by increasing margin (only those can turn near before the next refresh)."""
    (XeT, xmax), (W1f, b1f, W2f, b2f, h1T, z2T, Eh, E2), (R1, r1, R2, r2), ranking, _ = setup
    order, margin, cum, info, raw, right = ranking
    N = Xe.shape[0]
    H, O = W2.shape
    block = XeT.shape[2]
    z2_error_bounds(W1, b1, W2, b2, xmax, ROUND_32, Eh, E2)
    copy_into(W1f, W1)
    copy_into(b1f, b1)
    copy_into(W2f, W2)
    copy_into(b2f, b2)
    copy_into(R1, W1)
    copy_into(r1, b1)
    copy_into(R2, W2)
    copy_into(r2, b2)
    for c in range(XeT.shape[0]):
        r0 = c * block
        n = min(block, N - r0)
        m = padded(n, 4)
        for o in range(O):
            for i in range(m):
                z2T[o, i] = b2f[o]
        for j in range(H):
            hidden_unit_forward(j, m, W1f, b1f, W2f, XeT[c], h1T, z2T)
        for i in range(n):
            top, margin_i = sample_margin(z2T, i, E2)
            raw[r0 + i] = margin_i
            right[r0 + i] = top == ye[r0 + i]
    n_unsure = 0
    sure_right = 0
    for i in range(N):
        if raw[i] > 0:
            sure_right += right[i]
        else:
            order[n_unsure] = i
            margin[n_unsure] = raw[i]
            n_unsure += 1
    n_ranked = n_unsure
    most = min(N, n_unsure + near_limit(N) + 1)
    for i in range(N):                    # insertion into the short list of least sure margins
        if raw[i] > 0 and (n_ranked < most or raw[i] < margin[n_ranked - 1]):
            k = min(n_ranked, most - 1)
            while k > n_unsure and margin[k - 1] > raw[i]:
                order[k] = order[k - 1]
                margin[k] = margin[k - 1]
                k -= 1
            order[k] = i
            margin[k] = raw[i]
            n_ranked = min(n_ranked + 1, most)
    for k in range(n_ranked):
        cum[k + 1] = cum[k] + (margin[k] > 0 and right[order[k]])
    info[0] = sure_right
    info[1] = 1
    info[2] = n_unsure
    info[3] += 1
    info[5] = n_ranked


@nb.njit(**STRICT)
def near_limit(N):
    """How many near samples (beyond the unsure ones) the lazy evaluation rechecks before it refreshes."""
    return max(4, N // 64)


@nb.njit(inline="always", **STRICT)
def count_near(margin, delta):
    """How many of the increasing margins are not above delta (NaN and -inf included)."""
    near = 0
    while near < margin.size and not margin[near] > delta:
        near += 1
    return near


@nb.njit(**FAST)
def certified_correct(setup, Xe, ye, W1, b1, W2, b2):
    """How many rows i of Xe the float64 network (W1, b1, W2, b2) classifies as ye[i] (the argmax of
    its output, the first of equals), certified as in the section's comment."""
    (_, xmax), (_, _, _, _, _, _, Eh, E2), (R1, r1, R2, r2), (order, margin, cum, info, _, _), near_scratch = setup
    z2n, rows, Xn, h2n, scratch = near_scratch
    N = Xe.shape[0]
    delta = drift_bound(W1, b1, W2, b2, R1, r1, R2, r2, xmax, Eh) if info[1] else np.inf
    near = count_near(margin[:info[5]], delta) if info[1] else N
    if near > info[2] + near_limit(N):        # more than the unsure ones and a few: refresh
        refresh_margins(setup, Xe, ye, W1, b1, W2, b2)
        near = info[2]
    info[4] += near
    correct = info[0] - cum[near]
    if near == 0:
        return correct
    z2_error_bounds(W1, b1, W2, b2, xmax, ROUND_64, Eh, E2)
    n_exact = 0
    for k in range(near):                 # scalar float64 code, certified against the vector code
        i = order[k]
        sample_z2(Xe[i], W1, b1, W2, b2, z2n)
        top, sample_margin_ = sample_margin(z2n, 0, E2)
        if sample_margin_ > 0:
            correct += top == ye[i]
        else:
            rows[n_exact] = i
            Xn[n_exact] = Xe[i]
            n_exact += 1
    if n_exact > 0:                       # still unsure: the float64 forward step itself
        forward_into(Xn[:n_exact], W1, b1, W2, b2, h2n[:n_exact], scratch)
        for k in range(n_exact):
            correct += argmax_row(h2n[k]) == ye[rows[k]]
    return correct


@nb.njit(**STRICT)
def argmax_row(h):
    """The index of the largest entry of h (the first of equals, as np.argmax)."""
    best = 0
    for o in range(1, h.size):
        if h[o] > h[best]:
            best = o
    return best


@nb.njit(inline="always", **FAST)
def squared_norm(a):
    total = 0.0
    for k in np.ndindex(a.shape):
        total += a[k] * a[k]
    return total


@nb.njit(**FAST)
def train_loop_compiled(Xb, Yb, batch_size, lrs, reg, penalty, clip_norm, bias, W1, b1, W2, b2,
                        Xe, ye, Xv, Yv, yv, eval_every, step0, eval_last,
                        losses, grad_norms, accuracies, val_losses, val_accuracies):
    """The steps of fastmlp.reference.train_loop, compiled: see there for the arguments. Makes the
    scratch once, then runs train_steps, which borrows everything (see borrowed) while this call
    keeps it alive."""
    D, H = W1.shape
    O = W2.shape[1]
    grads = (np.empty_like(W1), np.empty_like(b1), np.empty_like(W2), np.empty_like(b2))
    outputs = (np.empty((Xe.shape[0], O), Xe.dtype), np.empty((Xv.shape[0], O), Xv.dtype))
    scratch = new_scratch(Xb, W1, W2)       # serial chunks of the batch and evaluation sets alike
    certify = Xe.itemsize == 8 and D < BLAS_MIN_INPUTS      # float64, feature-major path
    certified = certified_setup(Xe if certify else Xe[:0], H, O, plan(Xe.shape[0], D, H, O, 8)[0])
    return train_steps(Xb, Yb, batch_size, lrs, reg, penalty, clip_norm, bias, W1, b1, W2, b2,
                       Xe, ye, Xv, Yv, yv, eval_every, step0, eval_last,
                       losses, grad_norms, accuracies, val_losses, val_accuracies,
                       grads, outputs, scratch, certify, certified)


@nb.njit(**FAST)
def train_steps(Xb, Yb, batch_size, lrs, reg, penalty, clip_norm, bias, W1, b1, W2, b2,
                Xe, ye, Xv, Yv, yv, eval_every, step0, eval_last,
                losses, grad_norms, accuracies, val_losses, val_accuracies,
                grads, outputs, scratch, certify, certified):
    """train_loop_compiled's loop, on borrowed arrays (its caller owns them)."""
    Xb, Yb, W1, b1, W2, b2 = borrowed((Xb, Yb, W1, b1, W2, b2))
    Xe, ye, Xv, Yv, yv = borrowed((Xe, ye, Xv, Yv, yv))
    (dW1, db1, dW2, db2), (h2e, h2v), scratch, certified = borrowed((grads, outputs, scratch, certified))
    n_steps = lrs.size
    Nb = Xb.shape[0]
    for t in range(n_steps):
        start = (t * batch_size) % Nb
        stop = min(start + batch_size, Nb)
        loss = loss_and_gradients_into(Xb[start:stop], Yb[start:stop], W1, b1, W2, b2, reg, penalty,
                                       dW1, db1, dW2, db2, scratch)
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
            if certify:
                accuracies[t] = certified_correct(certified, Xe, ye, W1, b1, W2, b2) / Xe.shape[0]
            else:
                accuracies[t] = evaluate(Xe, Yv[:0], ye, W1, b1, W2, b2, h2e, scratch)[1]
            if Xv.shape[0] > 0:
                sqv, val_accuracies[t] = evaluate(Xv, Yv, yv, W1, b1, W2, b2, h2v, scratch)
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
