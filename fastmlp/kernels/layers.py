"""Any network, layer by layer: dense layers through BLAS, activations, the output and the loss.

A chunk of n rows goes through the layers sample-major. With h0 = the chunk's rows of X:

    forward    Z_l = h_{l-1} @ W_l                      (gemm, into the chunk's activations)
               h_l = f_l(Z_l + b_l)                     (in place, one vectorised loop per function)
    output     h_L, the loss, and dLoss_dz_L            (one pass per row: output_and_loss; each row's
                                                         share of the batch 1 / N, or w_i / sum(w))
    backward   dLoss_dz_{l-1} = (dLoss_dz_l @ W_l.T) * f'_{l-1}(h_{l-1})
               dLoss_dW_l += h_{l-1}.T @ dLoss_dz_l     (gemm with beta = 1: straight into the gradient)
               dLoss_db_l += column sums of dLoss_dz_l

A batch that is one chunk can also take its gradient-descent step during the backward pass, with no
gradient buffer: W_l += -lr h_{l-1}.T @ dLoss_dz_l is the same gemm with alpha = -lr into W_l itself,
once dLoss_dz_{l-1} has read W_l (step_in_place).

The network arrives as `spec` = (sizes, codes, output, loss, bias, fused, max_groups, dropout) with
int64 arrays sizes (L + 1,) and codes (L - 1,) (the hidden activations, fastmath's codes), the output's
and the loss's codes, two flags, the most parallel groups a batch may be split into
(plan.layers_groups), and what a training step drops (float64 [seed, step, p_1 .. p_{L-1}], empty for
nothing: fastmlp.dropout; a hidden layer that drops keeps f'(z) times its mask in dh_dz);
the parameters as the flat theta of fastmlp.architecture. The chunk's scratch (layers_scratch) holds
every layer's activations for `block` rows and two delta buffers, so memory is bounded by the chunk,
whatever the batch.
"""

import math

import numba as nb
import numpy as np

from .blas import gemm, one_row_gemm
from .fastmath import (
    EXP, FAST, IDENTITY, SIGMOID, SOFTMAX, STRICT, activate_rows, activate_rows_keeping_derivative, exp_nonpositive,
    keeps_derivative, scale_by_derivative, sigmoid,
)
from .memory import aligned_empty
from .plan import (
    COLUMN_GROUPS, FORWARD_MIN_ROWS, column_groups, cuts_columns, flat_parts, layers_groups, layers_plan, part_start,
)
from .sparse import add_transposed_product, by_kind, first_product, rows_of, sparse_product
from ..dropout import row_key, threshold, unit_bits

MSE, CROSS_ENTROPY, POISSON = 0, 1, 2
PENALTY_PART_MIN_ENTRIES = 1 << 17    # add_penalty_flat's least part: 0.13 ms for 641,000 float64 weights
ZERO_PART_MIN_ENTRIES = 1 << 18       # zero_flat's: 0.05 ms for 641,000 float64 entries (one core of a
                                      # 2-core AMD EPYC, AVX-512, as all such figures here)
LOSS_CODES = {"mse": MSE, "cross_entropy": CROSS_ENTROPY, "poisson": POISSON}


# -- where each layer's parameters live in theta ------------------------------------------------------------

@nb.njit(inline="always", **STRICT)
def weight_view(theta, sizes, l):
    """W_l (sizes[l-1], sizes[l]) of layer l (1-based), a view into theta."""
    at = 0
    for k in range(1, l):
        at += sizes[k - 1] * sizes[k]
    return theta[at:at + sizes[l - 1] * sizes[l]].reshape((sizes[l - 1], sizes[l]))


@nb.njit(inline="always", **STRICT)
def bias_view(theta, sizes, l):
    """b_l (sizes[l],) of layer l (1-based), a view into theta (biases follow all the weights)."""
    at = 0
    for k in range(1, sizes.size):
        at += sizes[k - 1] * sizes[k]
    for k in range(1, l):
        at += sizes[k]
    return theta[at:at + sizes[l]]


@nb.njit(**STRICT)
def layers_scratch(sizes, codes, dropout, rows, dtype):
    """A chunk's scratch for batches of up to `rows` rows: (acts, delta_a, delta_b, scalars, dh_dz):
    every layer's activations (block x sum of widths), two delta buffers (block x the widest layer),
    gemm's [alpha, beta], and where a hidden activation's derivative is kept (fastmath.keeps_derivative,
    or units are dropped) each layer's f'(z) laid out as acts (else empty). rows 0: empty."""
    width_total = scratch_width_total(sizes)
    width_max = 0
    for l in range(1, sizes.size):
        width_max = max(width_max, sizes[l])
    kept = dropout.size > 0
    for code in codes:
        kept = kept or keeps_derivative(code)
    block = layers_plan(rows, width_total)[0] if rows > 0 else 0
    return (aligned_empty((block * width_total,), dtype), aligned_empty((block * width_max,), dtype),
            aligned_empty((block * width_max,), dtype), np.empty(2, dtype),
            aligned_empty((block * width_total if kept else 0,), dtype))


@nb.njit(inline="always", **STRICT)
def rows_view(buffer, at, n, width):
    """buffer[at : at + n * width] as an (n, width) array."""
    return buffer[at:at + n * width].reshape((n, width))


# -- one chunk -------------------------------------------------------------------------------------------------

@nb.njit(**FAST)
def chunk_forward(spec, theta, X, r0, n, scratch):
    """h_1 .. h_{L-1} and z_L (bias added) of rows [r0, r0 + n) of X (dense or sparse) into the chunk's
    activations, layer after layer (and f'(z_l) into scratch's dh_dz where the activation
    keeps_derivative); returns the view of z_L (n, O)."""
    sizes, codes = spec[0], spec[1]
    acts, _, _, scalars, dh_dz = scratch
    L = sizes.size - 1
    prev = rows_view(acts, 0, n, sizes[1])
    at = 0
    for l in range(1, L + 1):
        Z = rows_view(acts, at, n, sizes[l])
        if l == 1:
            first_product(rows_of(X, r0, r0 + n), weight_view(theta, sizes, 1), Z, scalars)
        else:
            gemm(False, False, prev, weight_view(theta, sizes, l), Z, 1.0, 0.0, scalars)
        b, code = bias_view(theta, sizes, l), codes[l - 1] if l < L else IDENTITY
        if keeps_derivative(code):
            activate_rows_keeping_derivative(Z, b, code, rows_view(dh_dz, at, n, sizes[l]))
        else:
            activate_rows(Z, b, code)
        if l < L and drops(spec, l):
            drop_units(Z, rows_view(dh_dz, at, n, sizes[l]), code, spec[7], l, r0)
        prev = Z
        at += n * sizes[l]
    return prev


@nb.njit(inline="always", **STRICT)
def drops(spec, l):
    """Whether a training step drops units of hidden layer l (spec's dropout: [seed, step, p_1, ...])."""
    return spec[7].size > 0 and spec[7][1 + l] > 0


@nb.njit(**FAST)
def drop_units(H, dH, code, dropout, l, r0):
    """Inverted dropout of hidden layer l for rows r0 .. r0 + n of the batch (fastmlp.dropout): H = f(z)
    (n, width) and dH (its kept f'(z) where keeps_derivative, else written here from H) times the
    mask, 1 / (1 - p) where the unit's bits reach threshold(p), else 0."""
    if not keeps_derivative(code):
        dH[:] = 1
        scale_by_derivative(dH, H, dH, code)
    n, width = H.shape
    seed, step, p = np.uint64(dropout[0]), np.uint64(dropout[1]), dropout[1 + l]
    least, scale, zero = threshold(p), H.dtype.type(1.0 / (1.0 - p)), H.dtype.type(0)
    for i in range(n):
        key = row_key(seed, step, np.uint64(l), np.uint64(r0 + i))
        for j in range(width):
            m = scale if unit_bits(key, np.uint64(j)) >= least else zero
            H[i, j] *= m
            dH[i, j] *= m


@nb.njit(inline="always", **FAST)
def multiply_in_place(D, M):
    """D *= M elementwise, both (n, width)."""
    n, width = D.shape
    for i in range(n):
        for j in range(width):
            D[i, j] *= M[i, j]


@nb.njit(inline="always", **STRICT)
def weight_total(w, N):
    """sum(w) in float64: the N of a weighted batch (N itself when the rows have no weights, w empty);
    inf for weights that sum to 0, so that such a batch contributes nothing (every 1 / N and reg / N
    is then 0), as fastmlp.reference.shares."""
    if w.shape[0] == 0:
        return float(N)
    total = 0.0
    for i in range(w.shape[0]):
        total += w[i]
    return total if total > 0 else np.inf


@nb.njit(**FAST)
def output_and_loss(spec, Z, Y, w, r0, inv_N, dZ, with_loss):
    """Turns z_L (n, O) into h_L in place; with_loss: also writes dLoss_dz_L into dZ (n, O) and returns
    the chunk's data loss times N (float64), against targets Y[r0 : r0 + n] (else returns 0), each row's
    loss and dLoss_dz times its weight w[r0 + i] if the rows have weights (w not empty):
      mse            sum (Y - h)**2 / 2            dLoss_dz = -(Y - h) / N * dh_dz (softmax: its Jacobian)
      cross_entropy  softmax: -sum Y log p,  sigmoid: sum softplus(z) - Y z,   dLoss_dz = (p - Y) / N
      poisson        sum Y log Y - Y z - Y + exp(z) (0 log 0 = 0),            dLoss_dz = (exp(z) - Y) / N
    inv_N: 1 / the whole batch's N (its sum of weights)."""
    output, loss = spec[2], spec[3]
    n, O = Z.shape
    one = Z.dtype.type(1)
    weighted = w.shape[0] > 0
    total = 0.0
    for i in range(n):
        row = 0.0
        if output == SOFTMAX:
            top = Z[i, 0]
            for o in range(O):
                top = max(top, Z[i, o])
            s = Z.dtype.type(0)
            y_dot_shifted = 0.0
            y_sum = 0.0
            for o in range(O):
                if with_loss:
                    y_dot_shifted += Y[r0 + i, o] * (Z[i, o] - top)
                    y_sum += Y[r0 + i, o]
                Z[i, o] = exp_nonpositive(Z[i, o] - top)
                s += Z[i, o]
            inv_s = one / s
            for o in range(O):
                Z[i, o] *= inv_s
            if with_loss and loss == CROSS_ENTROPY:
                row += y_sum * math.log(s) - y_dot_shifted
        elif output == SIGMOID:
            for o in range(O):
                z = Z[i, o]
                if with_loss and loss == CROSS_ENTROPY:
                    row += max(z, 0.0) + math.log1p(exp_nonpositive(-abs(z))) - Y[r0 + i, o] * z
                Z[i, o] = sigmoid(z)
        elif output == EXP:
            for o in range(O):
                z = Z[i, o]
                Z[i, o] = math.exp(z)
                if with_loss and loss == POISSON:
                    y = Y[r0 + i, o]
                    row += (y * math.log(y) if y > 0 else 0.0) - y * z - y + Z[i, o]
        if not with_loss:
            continue
        scale = inv_N * w[r0 + i] if weighted else inv_N
        if loss == CROSS_ENTROPY or loss == POISSON:
            for o in range(O):
                dZ[i, o] = (Z[i, o] - Y[r0 + i, o]) * scale
        else:
            g_dot_h = Z.dtype.type(0)
            for o in range(O):
                diff = Y[r0 + i, o] - Z[i, o]
                row += 0.5 * diff * diff
                dZ[i, o] = -diff * scale
                g_dot_h += dZ[i, o] * Z[i, o]
            if output == SIGMOID:
                for o in range(O):
                    dZ[i, o] *= Z[i, o] * (one - Z[i, o])
            elif output == SOFTMAX:
                for o in range(O):
                    dZ[i, o] = Z[i, o] * (dZ[i, o] - g_dot_h)
            elif output == EXP:
                for o in range(O):
                    dZ[i, o] *= Z[i, o]
        total += row * w[r0 + i] if weighted else row
    return total


@nb.njit(**FAST)
def chunk_backward(spec, theta, X, r0, n, dZ_L, scratch, grad, descent):
    """Walks the layers from L down, from dLoss_dz_L (n, O) (in scratch's delta_a) and the activations
    chunk_forward left. descent = (lr, coef, penalty):

      lr 0    adds rows [r0, r0 + n)'s share of every gradient to grad (flat, like theta);
      lr > 0  the whole batch (one chunk) takes its gradient-descent step on theta in place and grad is
              not used: W_l -= lr (coef dPenalty/dW_l + h_{l-1}.T @ dLoss_dz_l), and b_l -= lr times the
              column sums of dLoss_dz_l if the network has biases.
    Returns the penalty of the weights before the step (0 when lr is 0)."""
    sizes, codes = spec[0], spec[1]
    acts, delta_a, delta_b, scalars, dh_dz = scratch
    lr, coef, penalty = descent
    into, alpha = (theta, -lr) if lr > 0 else (grad, 1.0)
    L = sizes.size - 1
    at = 0
    for l in range(1, L):
        at += n * sizes[l]                      # where h_{L-1} ends
    penalty_total = 0.0
    dZ = dZ_L
    for l in range(L, 0, -1):
        W = weight_view(into, sizes, l)
        if l > 1:
            at -= n * sizes[l - 1]
            prev = rows_view(acts, at, n, sizes[l - 1])
            spare = delta_b if (L - l) % 2 == 0 else delta_a     # dZ_L is in delta_a
            dPrev = rows_view(spare, 0, n, sizes[l - 1])
            gemm(False, True, dZ, weight_view(theta, sizes, l), dPrev, 1.0, 0.0, scalars)
            kept = rows_view(dh_dz, at, n, sizes[l - 1]) if dh_dz.size > 0 else prev   # (read if kept)
            if drops(spec, l - 1):
                multiply_in_place(dPrev, kept)          # f'(z) times the mask, kept by chunk_forward
            else:
                scale_by_derivative(dPrev, prev, kept, codes[l - 2])
        if lr > 0 and coef != 0:    # a zero reg adds nothing (not 0 * inf where a weight has overflowed)
            flat = W.reshape(W.size)
            penalty_total += add_penalty(flat, flat, -lr * coef, penalty)
        if l > 1:
            gemm(True, False, prev, dZ, W, alpha, 1.0, scalars)
        else:
            add_transposed_product(rows_of(X, r0, r0 + n), dZ, W, alpha, scalars)
        if lr == 0 or spec[4]:
            b = bias_view(into, sizes, l)
            a = dZ.dtype.type(alpha)
            for i in range(n):
                for j in range(sizes[l]):
                    b[j] += a * dZ[i, j]
        if l > 1:
            dZ = dPrev
    return penalty_total


@nb.njit(inline="always", **STRICT)
def add_penalty(W, into, coef, penalty):
    """into += coef * dPenalty/dW (l1, penalty 0: sign(W); l2, penalty 1: W) over flat arrays of one size
    (into may be W itself); returns the penalty of W before (sum |W|, or sum W**2 / 2) in float64.
    One loop per penalty: with the choice inside the loop, inlined into the entry points, the loop ran
    scalar (1.2 ms a step for the 640,000 weights of a 5,000-word first layer, against 0.2 ms)."""
    total = 0.0
    c = W.dtype.type(coef)
    if penalty == 0:
        for k in range(W.size):
            total += abs(W[k])
            into[k] += c * np.sign(W[k])
    else:
        for k in range(W.size):
            total += 0.5 * W[k] * W[k]
            into[k] += c * W[k]
    return total


@nb.njit(parallel=True, **FAST)
def add_penalty_in_parts(W, into, coef, penalty, totals):
    """add_penalty on totals.size parts of W and into side by side, each part's penalty in totals."""
    parts = totals.size
    for p in nb.prange(parts):
        lo, hi = part_start(p, parts, W.size), part_start(p + 1, parts, W.size)
        totals[p] = add_penalty(W[lo:hi], into[lo:hi], coef, penalty)


@nb.njit(inline="always", **FAST)
def add_penalty_flat(W, into, coef, penalty):
    """add_penalty over long flat arrays (all of a network's weights) in plan.flat_parts parts side by side,
    their penalties added in order."""
    parts = flat_parts(W.size, PENALTY_PART_MIN_ENTRIES)
    if parts == 1:
        return add_penalty(W, into, coef, penalty)
    totals = np.empty(parts)
    add_penalty_in_parts(W, into, coef, penalty, totals)
    total = 0.0
    for p in range(parts):
        total += totals[p]
    return total


@nb.njit(**FAST)
def step_in_place(spec, theta, X, Y, w, lr, reg, penalty, scratch, guard):
    """One gradient-descent step on theta for a batch that is one chunk, taken during the backward pass
    (chunk_backward with lr > 0); returns the loss before it. guard: no step if the data loss is not
    finite (the training loop stops there, before the update)."""
    N = X.shape[0]
    W_sum = weight_total(w, N)
    first = np.int64(0)        # not a literal 0: that is another Numba type, and a second compile of all below
    with_loss = np.bool_(True)                                     # (not a literal True, likewise)
    Z = chunk_forward(spec, theta, X, first, N, scratch)
    dZ = rows_view(scratch[1], 0, N, Z.shape[1])
    data_loss = output_and_loss(spec, Z, Y, w, first, theta.dtype.type(1.0 / W_sum), dZ, with_loss) / W_sum
    if guard and not np.isfinite(data_loss):
        return data_loss
    penalty_total = chunk_backward(spec, theta, X, first, N, dZ, scratch, theta, (lr, reg / W_sum, penalty))
    return data_loss + (0.0 if reg == 0 else reg / W_sum * penalty_total)


@nb.njit(**STRICT)
def is_one_chunk(spec, N, itemsize):
    """Whether the layered path runs a batch of N rows as one chunk in one group (step_in_place's case)."""
    return (layers_plan(N, scratch_width_total(spec[0]))[1] == 1
            and layers_groups(N, spec[0], spec[6], itemsize) == 1)


# -- a whole batch, chunk after chunk ---------------------------------------------------------------------

@nb.njit(**FAST)
def rows_forward(spec, theta, X, Y, w, start, stop, inv_N, out, scratch):
    """out[start:stop] = the network's output for rows [start, stop) of X, chunk after chunk; returns
    their data loss times N against Y (0 when Y has no rows), rows weighted by w if it has entries.
    inv_N: 1 / the whole batch's N (sum of weights)."""
    block = layers_plan(stop - start, scratch_width_total(spec[0]))[0]
    with_loss = Y.shape[0] == X.shape[0]
    total = 0.0
    for r0 in range(start, stop, block):
        n = min(block, stop - r0)
        Z = chunk_forward(spec, theta, X, r0, n, scratch)
        dZ = rows_view(scratch[1], 0, n, Z.shape[1])
        total += output_and_loss(spec, Z, Y, w, r0, inv_N, dZ, with_loss)
        out[r0:r0 + n] = Z
    return total


@nb.njit(parallel=True, **FAST)
def forward_groups(sizes, codes, output, loss, bias, fused, dropout, X, Y, w, theta, inv_N, out, totals):
    """Group g's rows (a contiguous share of the batch) into out, on its own scratch. (Its spec is
    rebuilt from the caller's fields, fused among them, not a literal False: that would compile
    every function below a second time, for a spec of another type.)"""
    n_groups, N = totals.size, X.shape[0]
    spec = (sizes, codes, output, loss, bias, fused, n_groups, dropout)
    for g in nb.prange(n_groups):
        start, stop = g * N // n_groups, (g + 1) * N // n_groups
        totals[g] = rows_forward(spec, theta, X, Y, w, start, stop, inv_N, out,
                                 layers_scratch(sizes, codes, dropout, stop - start, theta.dtype))


@nb.njit(**FAST)
def dense_forward_in_groups(spec, theta, X, Y, w, inv_N, n_groups, out):
    """forward_groups behind a plain call (see gradients_in_groups); returns the data loss times N,
    the groups' shares summed in group order."""
    totals = np.zeros(n_groups)
    sizes, codes, output, loss, bias, fused, _, dropout = spec
    forward_groups(sizes, codes, output, loss, bias, fused, dropout, X, Y, w, theta, inv_N, out, totals)
    total = 0.0
    for g in range(n_groups):
        total += totals[g]
    return total


# Sparse X is never split into groups (kernels.spec_of gives it max_groups 1; Numba's parallel regions
# take no CSR argument): its halves of the grouped functions run serially, to the same result.

@nb.njit(**FAST)
def sparse_forward_in_groups(spec, theta, X, Y, w, inv_N, n_groups, out):
    return rows_forward(spec, theta, X, Y, w, np.int64(0), X.shape[0], inv_N, out,
                        layers_scratch(spec[0], spec[1], spec[7], X.shape[0], theta.dtype))


@nb.njit(**FAST)
def sparse_gradients_in_groups(spec, theta, X, Y, w, inv_N, n_groups, grad):
    return rows_gradients(spec, theta, X, Y, w, np.int64(0), X.shape[0], inv_N, grad,
                          layers_scratch(spec[0], spec[1], spec[7], X.shape[0], theta.dtype))


forward_in_groups = by_kind(dense_forward_in_groups, sparse_forward_in_groups, at=2)


@nb.njit(parallel=True, **FAST)
def columns_product(prev, W, Z, scalars):
    """Z = prev @ W, W's columns cut into len(scalars) groups, one product each in parallel."""
    n_groups, cols = scalars.shape[0], W.shape[1]
    for g in nb.prange(n_groups):
        c0, c1 = g * cols // n_groups, (g + 1) * cols // n_groups
        if Z.shape[0] == 1:                  # (on W and Z whole, which it vectorises; see one_row_gemm)
            one_row_gemm(prev, W, Z, 1.0, 0.0, c0, c1)
        else:
            gemm(False, False, prev, W[:, c0:c1], Z[:, c0:c1], 1.0, 0.0, scalars[g])


first_product_in_columns = by_kind(columns_product, sparse_product)   # sparse X: one product (never cut)


@nb.njit(**FAST)
def forward_in_columns(spec, theta, X, Y, w, inv_N, out, scratch):
    """out = the network's output for a few rows X, as chunk_forward computes it with each layer's
    product cut into its column groups (plan.column_groups, columns_product); returns the data loss
    times N."""
    sizes, codes = spec[0], spec[1]
    acts, N, L = scratch[0], X.shape[0], sizes.size - 1
    scalars = np.empty((COLUMN_GROUPS, 2), theta.dtype)
    prev, at = rows_view(acts, 0, N, sizes[1]), 0
    for l in range(1, L + 1):
        Z, W = rows_view(acts, at, N, sizes[l]), weight_view(theta, sizes, l)
        n_columns = column_groups(N, sizes[l - 1], sizes[l], spec[6], theta.itemsize)
        if l == 1 and n_columns > 1:
            first_product_in_columns(X, W, Z, scalars[:n_columns])
        elif l == 1:
            first_product(X, W, Z, scalars[0])
        elif n_columns > 1:
            columns_product(prev, W, Z, scalars[:n_columns])
        else:
            gemm(False, False, prev, W, Z, 1.0, 0.0, scalars[0])
        activate_rows(Z, bias_view(theta, sizes, l), codes[l - 1] if l < L else IDENTITY)
        prev, at = Z, at + N * sizes[l]
    total = output_and_loss(spec, prev, Y, w, np.int64(0), inv_N, rows_view(scratch[1], 0, N, sizes[L]),
                            Y.shape[0] == N)
    out[:] = prev
    return total


@nb.njit(inline="always", **FAST)
def forward_into(spec, theta, X, Y, w, out, scratch):
    """out (N, O) = the network's output for X (N, D); returns the data loss against Y (N, O), or 0 when
    Y has no rows, rows weighted by w (N,) if it has entries. Batches that layers_groups splits run as
    groups in parallel (from fewer rows than gradients: forward has no buffers to sum)."""
    N = X.shape[0]
    W_sum = weight_total(w, N)
    inv_N = theta.dtype.type(1.0 / W_sum)
    n_groups = layers_groups(N, spec[0], spec[6], theta.itemsize, FORWARD_MIN_ROWS)
    if n_groups == 1:
        if cuts_columns(N, spec[0], spec[6], theta.itemsize):
            return forward_in_columns(spec, theta, X, Y, w, inv_N, out, scratch) / W_sum
        return rows_forward(spec, theta, X, Y, w, np.int64(0), N, inv_N, out, scratch) / W_sum
    return forward_in_groups(spec, theta, X, Y, w, inv_N, n_groups, out) / W_sum


@nb.njit(**FAST)
def rows_gradients(spec, theta, X, Y, w, start, stop, inv_N, grad, scratch):
    """Adds rows [start, stop)'s share of every gradient to grad, chunk after chunk; returns their data
    loss times N (rows weighted by w if it has entries). inv_N: 1 / the whole batch's N (sum of weights)."""
    block = layers_plan(stop - start, scratch_width_total(spec[0]))[0]
    total = 0.0
    for r0 in range(start, stop, block):
        n = min(block, stop - r0)
        Z = chunk_forward(spec, theta, X, r0, n, scratch)
        dZ = rows_view(scratch[1], 0, n, Z.shape[1])
        total += output_and_loss(spec, Z, Y, w, r0, inv_N, dZ, np.bool_(True))      # (not a literal True)
        chunk_backward(spec, theta, X, r0, n, dZ, scratch, grad, (0.0, 0.0, np.int64(0)))
    return total


@nb.njit(parallel=True, **FAST)
def gradient_groups(sizes, codes, output, loss, bias, fused, dropout, X, Y, w, theta, inv_N, grads, totals):
    """Group g's rows (a contiguous share of the batch) into grads[g], on its own scratch (its spec
    as forward_groups')."""
    n_groups, N = totals.size, X.shape[0]
    spec = (sizes, codes, output, loss, bias, fused, n_groups, dropout)
    for g in nb.prange(n_groups):
        start, stop = g * N // n_groups, (g + 1) * N // n_groups
        totals[g] = rows_gradients(spec, theta, X, Y, w, start, stop, inv_N, grads[g],
                                   layers_scratch(sizes, codes, dropout, stop - start, theta.dtype))


@nb.njit(**FAST)
def dense_gradients_in_groups(spec, theta, X, Y, w, inv_N, n_groups, grad):
    """grad = the groups' gradient buffers summed in group order; returns the data loss times N. (A
    parallel region called directly from gradients_into would slow its serial path, as in fused.)"""
    grads = np.zeros((n_groups, theta.size), theta.dtype)
    totals = np.zeros(n_groups)
    sizes, codes, output, loss, bias, fused, _, dropout = spec
    gradient_groups(sizes, codes, output, loss, bias, fused, dropout, X, Y, w, theta, inv_N, grads, totals)
    total = 0.0
    for g in range(n_groups):
        total += totals[g]
        for k in range(grad.size):
            grad[k] += grads[g, k]
    return total


gradients_in_groups = by_kind(dense_gradients_in_groups, sparse_gradients_in_groups, at=2)


@nb.njit(parallel=True, **STRICT)
def zero_in_parts(a, parts):
    """a = 0 in `parts` parts side by side."""
    for p in nb.prange(parts):
        a[part_start(p, parts, a.size):part_start(p + 1, parts, a.size)] = 0


@nb.njit(inline="always", **STRICT)
def zero_flat(a):
    """a = 0, a long flat a in plan.flat_parts parts side by side."""
    parts = flat_parts(a.size, ZERO_PART_MIN_ENTRIES)
    if parts == 1:
        a[:] = 0
    else:
        zero_in_parts(a, parts)


@nb.njit(inline="always", **FAST)
def gradients_into(spec, theta, X, Y, w, grad, scratch):
    """Sets grad (flat, like theta) to the data loss's gradient for X, Y (rows weighted by w if it has
    entries); returns the data loss. Batches that layers_groups splits run as groups in parallel; their
    buffers are summed in group order."""
    N = X.shape[0]
    W_sum = weight_total(w, N)
    inv_N = theta.dtype.type(1.0 / W_sum)
    zero_flat(grad)
    n_groups = layers_groups(N, spec[0], spec[6], theta.itemsize)
    if n_groups == 1:
        return rows_gradients(spec, theta, X, Y, w, np.int64(0), N, inv_N, grad, scratch) / W_sum
    return gradients_in_groups(spec, theta, X, Y, w, inv_N, n_groups, grad) / W_sum


@nb.njit(inline="always", **STRICT)
def scratch_width_total(sizes):
    """The sum of the layer widths sizes[1:] (a chunk's activations per row)."""
    total = 0
    for l in range(1, sizes.size):
        total += sizes[l]
    return total
