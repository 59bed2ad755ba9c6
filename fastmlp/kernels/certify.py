"""The article's accuracy, certified: the exact float64 count, at a fraction of its cost.

The training loop records the accuracy on the evaluation set, often after every step, and that costs
more than the step itself (the article: 300 samples x 10 hidden units against a batch of 50). It
needs only which output of each sample is largest, and between two small steps few samples change.

Refresh: a float32 forward step (about twice the sigmoid throughput of float64) gives z2 to within
E2[o] of the float64 one. Sample i's *margin* is the least of, over the outputs o other than its
top t:  z2[t] - z2[o] - E2[t] - E2[o] - GAP,  Z_MAX - z2[o] - E2[o],  z2[o] - E2[o] - Z_MIN.
With margin > 0 the float64 forward step surely predicts t too: its output sigmoids then order t above
every o (z2[t] - z2[o] >= GAP with z2[o] <= Z_MAX gives sigmoid(z2[t]) / sigmoid(z2[o]) >= 1 + GAP
(1 - sigmoid(Z_MAX + GAP)) = 1 + 2e-14, far above sigmoid64's 3 ulp; z2[o] >= Z_MIN keeps sigmoid64
away from its clamp at -708). The other samples are recomputed exactly in float64.
Later evaluations: from the reference parameters R (those of the refresh) to the current W, every
sample's z2[o] moves by at most delta[o] (drift_bound). A sample whose margin exceeds 2 max(delta)
keeps its prediction; the others ("near") are recomputed exactly in float64. When too many are near,
refresh. Either way the count is the one the exact float64 forward step gives, sample for sample.

The bounds, with u = 2**-24 (float32 rounding), |X[:, d]| <= xmax[d] and h in [0, 1]:
  |z1_32[j] - z1[j]| <= E1[j] = 2 (D + 3) u (|b1[j]| + sum_d |W1[d, j]| xmax[d])
  |h1_32[j] - h1[j]| <= Eh[j] = E1[j] / 4 + 8 u           (sigmoid' <= 1/4; sigmoid32 <= 3 ulp)
  |z2_32[o] - z2[o]| <= E2[o] = 2 (sum_j |W2[j, o]| Eh[j] + (H + 3) u (|b2[o]| + sum_j |W2[j, o]|))
                                + TINY                      (TINY covers float32 underflow)
  |z2(W)[o] - z2(R)[o]| <= delta[o] = |dB2[o]| + sum_j |dW2[j, o]|
                                + sum_j |R2[j, o]| (|dB1[j]| + sum_d |dW1[d, j]| xmax[d]) / 4
Each line counts the rounding of the inputs, parameters, products and sums; the factors 2 (and
delta's ROUND_64 term) cover the float64 computation's own rounding with a wide margin.

It serves the fused path (one sigmoid hidden layer, sigmoid outputs, mse) of a float64 network with
two or more outputs, where the training loop records the accuracy on a fixed set often.
"""

import numba as nb
import numpy as np

from .fastmath import FAST, STRICT, sigmoid
from .fused import chunk_scratch, forward_into, hidden_unit_forward
from .memory import aligned_empty, padded

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


