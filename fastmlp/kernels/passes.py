"""Whole batches for any network: the fused path for the article's arrangement, the layered path for
the rest; the penalty, the update and the scratch both paths share.

`spec` (see fastmlp.kernels.layers) carries a `fused` flag, set when the network is the article's
arrangement with few inputs and outputs and the rows have no sample weights (fastmlp.kernels.fused);
then W1, b1, W2, b2 are views into theta and the fused kernels run, else the layered ones. w (N,) are
the rows' sample weights, empty for none. Either way the gradient is one flat vector
like theta, so the penalty, the norm and the update are single loops over it.

The passes that only choose a path and call on (forward_into, data_gradients_into,
loss_and_gradients_into, step_into, new_scratch, and layers' forward_into and gradients_into) are
inlined into the entry points (inline="always"): Numba optimises every compiled function again with
all it calls linked in, so each such level cost its whole call tree once more (together a sixth of
the kernels' compile time: 273 s a dtype before, 228 s after, alone on the 2-core AVX2 EPYC), for no
speed (steps side by side before and after within the run-to-run spread).
"""

import numba as nb
import numpy as np

from . import fused, layers
from .fastmath import FAST, STRICT
from .layers import bias_view, weight_total, weight_view
from .optimizers import descend
from .sparse import by_kind


@nb.njit(**STRICT)
def n_weights(sizes):
    """How many leading entries of theta are weights."""
    total = 0
    for l in range(1, sizes.size):
        total += sizes[l - 1] * sizes[l]
    return total


@nb.njit(**STRICT)
def n_trained(spec, theta):
    """How many leading entries of theta training updates: all, or the weights only (no biases)."""
    return theta.size if spec[4] else n_weights(spec[0])


@nb.njit(**STRICT)
def article_views(spec, theta):
    """(W1, b1, W2, b2) of a one-hidden-layer network, views into theta."""
    sizes = spec[0]
    return (weight_view(theta, sizes, 1), bias_view(theta, sizes, 1), weight_view(theta, sizes, 2),
            bias_view(theta, sizes, 2))


# The fused path takes dense X only (sparse X never has spec's fused flag): its sparse halves below are
# never called, and exist so that the same passes compile for both kinds of X.

@nb.njit(**STRICT)
def dense_fused_scratch(X, spec, theta, rows):
    if spec[5]:
        W1, _, W2, _ = article_views(spec, theta)
        return fused.new_scratch(X, W1, W2, rows)
    return fused.chunk_scratch(X, 0, 0, 0)


@nb.njit(**STRICT)
def sparse_fused_scratch(X, spec, theta, rows):
    return fused.chunk_scratch(np.empty((0, X.shape[1]), theta.dtype), 0, 0, 0)


@nb.njit(**STRICT)
def sparse_fused_forward(X, W1, b1, W2, b2, h2_out, scratch):
    return None


@nb.njit(**STRICT)
def sparse_fused_gradients(X, Y, W1, b1, W2, b2, dW1, db1, dW2, db2, scratch):
    return 0.0


fused_scratch = by_kind(dense_fused_scratch, sparse_fused_scratch)
fused_forward_into = by_kind(fused.forward_into, sparse_fused_forward)
fused_gradients_into = by_kind(fused.gradients_into, sparse_fused_gradients)


@nb.njit(inline="always", **STRICT)
def new_scratch(spec, theta, X, rows):
    """Scratch for batches of up to `rows` rows like X: (fused scratch, layered scratch), the path not
    taken empty."""
    return (fused_scratch(X, spec, theta, rows),
            layers.layers_scratch(spec[0], spec[1], spec[7], 0 if spec[5] else rows, theta.dtype))


@nb.njit(inline="always", **FAST)
def forward_into(spec, theta, X, Y, w, out, scratch):
    """out (N, O) = the network's output for X; returns the data loss against Y (0 if Y has no rows)."""
    if spec[5]:
        W1, b1, W2, b2 = article_views(spec, theta)
        fused_forward_into(X, W1, b1, W2, b2, out, scratch[0])
        if Y.shape[0] != X.shape[0]:
            return 0.0
        sq = 0.0
        for i in range(X.shape[0]):
            for o in range(out.shape[1]):
                sq += (Y[i, o] - out[i, o]) ** 2
        return sq / (2 * X.shape[0])
    return layers.forward_into(spec, theta, X, Y, w, out, scratch[1])


@nb.njit(inline="always", **FAST)
def data_gradients_into(spec, theta, X, Y, w, grad, scratch):
    """Sets grad (flat) to the data loss's gradient; returns the data loss."""
    if spec[5]:
        W1, b1, W2, b2 = article_views(spec, theta)
        dW1, db1, dW2, db2 = article_views(spec, grad)
        sq = fused_gradients_into(X, Y, W1, b1, W2, b2, dW1, db1, dW2, db2, scratch[0])
        return sq / (2 * X.shape[0])
    return layers.gradients_into(spec, theta, X, Y, w, grad, scratch[1])


@nb.njit(**STRICT)
def penalty_value(spec, theta, penalty):
    """sum |W| (penalty 0, "l1") or sum W**2 / 2 (penalty 1, "l2") over all weights, in float64."""
    total = 0.0
    for k in range(n_weights(spec[0])):
        total += abs(theta[k]) if penalty == 0 else 0.5 * theta[k] * theta[k]
    return total


@nb.njit(inline="always", **FAST)
def loss_and_gradients_into(spec, theta, X, Y, w, reg, penalty, grad, scratch):
    """The loss (float64) at theta; its gradient written into grad (flat, like theta)."""
    N = weight_total(w, X.shape[0])
    data_loss = data_gradients_into(spec, theta, X, Y, w, grad, scratch)
    if reg == 0:                    # adds nothing (not 0 * inf where a weight has overflowed)
        return data_loss
    n = n_weights(spec[0])
    return data_loss + reg / N * layers.add_penalty_flat(theta[:n], grad[:n], reg / N, penalty)


@nb.njit(inline="always", **FAST)
def step_into(spec, theta, X, Y, w, lr, reg, penalty, scratch):
    """One gradient-descent step in place (biases too if the network has them); returns the loss before it.
    A layered batch of one chunk takes it during the backward pass, with no gradient buffer."""
    if not spec[5] and layers.is_one_chunk(spec, X.shape[0], theta.itemsize):
        return layers.step_in_place(spec, theta, X, Y, w, lr, reg, penalty, scratch[1], np.bool_(False))
    grad = np.empty_like(theta)
    loss = loss_and_gradients_into(spec, theta, X, Y, w, reg, penalty, grad, scratch)
    n = n_trained(spec, theta)
    descend(theta[:n], grad[:n], theta.dtype.type(lr))
    return loss
