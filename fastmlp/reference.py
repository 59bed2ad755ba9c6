"""The article's math in plain NumPy, brick by brick: the readable oracle every backend is checked against.

A network stacks L dense layers (fastmlp.architecture). With h0 = X (N, D), for l = 1 .. L:

    z_l = h_{l-1} @ W_l + b_l        h_l = activation_l(z_l)   (the output function for l = L)
    Loss = sum_i share_i loss(Y_i, z_L_i, h_L_i) + (reg / N) * penalty(W_1, ..., W_L)

where each row's share of the batch is 1 / N, or with sample weights w_i / sum(w) (and N is sum(w) in
the penalty's factor too), as scikit-learn weights its MLP's loss. The bricks (activations, outputs,
losses, penalties) are small named functions in the tables of fastmlp.bricks.

The backward step walks the layers in reverse, one article-named factor at a time: for the article's
network (2, 3, 2) it yields the article's dLoss_dh2, dh2_dz2, dLoss_dW2, dLoss_dh1, dh1_dz1, dLoss_dW1.
The gradients are the true gradients of the loss (checked against finite differences). The article's
code differs in two ways: it omits the 1/N of the data term, and adds reg * sum(W**2) (a scalar) where
the penalty's derivative reg * W / N belongs. See README "How fastmlp differs from the article's code".

Parameters come as one flat vector theta (see fastmlp.architecture); gradients are returned the same
way. Every function computes in the dtype of its inputs: float32 in, float32 out. `weights` (N,), where
a function takes them, are the rows' sample weights: None or an empty array for none. `dropout`, where
a function takes it, is a fastmlp.dropout.Dropout for a training step (None: no unit dropped): hidden
layer l's output is f(z_l) times its mask (trace "mask{l}"), and its dh_dz the derivative times it.
X may be a scipy.sparse matrix: h0 @ W1 and h0.T @ dLoss_dz1 are then scipy's sparse products.
"""

import numpy as np

from . import dropout as dropping
from .bricks import ACTIVATIONS, LOSSES, OUTPUTS, PENALTIES
from .loop import BAD_COUNT, BEST, BEST_STEP, LR_SCALE, STOPPED_AT

# -- the network ----------------------------------------------------------------------------------------


def layer_function(arch, l):
    """The function of layer l (1-based): its hidden activation, or the output function for l = L."""
    if l == arch.n_layers:
        return OUTPUTS[arch.output][0]
    return ACTIVATIONS[arch.activations[l - 1]][0]


def forward_trace(arch, theta, X, dropout=None):
    """The forward step, keeping every layer: {"h0": X, "z1": .., "h1": .., ..., "zL": .., "hL": ..}
    (and "mask{l}" of the hidden layers that dropout drops units of)."""
    weights, biases = arch.split(theta)
    trace = {"h0": X}
    for l, (W, b) in enumerate(zip(weights, biases), start=1):
        trace[f"z{l}"] = trace[f"h{l - 1}"] @ W + b
        trace[f"h{l}"] = layer_function(arch, l)(trace[f"z{l}"])
        if dropout is not None and l < arch.n_layers and dropout.rates[l - 1] > 0:
            trace[f"mask{l}"] = dropping.mask(dropout, l, X.shape[0], arch.sizes[l], theta.dtype.type)
            trace[f"h{l}"] = trace[f"h{l}"] * trace[f"mask{l}"]
    return trace


def forward(arch, theta, X):
    """The network's output h_L (N, O)."""
    return forward_trace(arch, theta, X)[f"h{arch.n_layers}"]


def shares(weights, N, dtype):
    """Each row's share of the batch's loss (N, 1): 1 / N, or w_i / sum(w) with sample weights; and the
    N of the penalty's reg / N: N, or sum(w). A batch whose weights sum to 0 contributes nothing: its
    shares are 0 and its N infinite (no penalty either), where scikit-learn raises ZeroDivisionError."""
    if weights is None or len(weights) == 0:
        return np.full((N, 1), 1 / N, dtype), N
    total = float(np.sum(weights))
    if total == 0:
        return np.zeros((N, 1), dtype), np.inf
    return (weights / dtype.type(total)).astype(dtype)[:, None], total


def penalty_term(arch, theta, N, reg, penalty):
    """(reg / N) * penalty(all weights); biases are never penalised. A zero reg adds nothing (not
    0 * inf where a weight has overflowed)."""
    return 0.0 if reg == 0 else reg / N * PENALTIES[penalty][0](theta[:arch.n_weights])


def loss_from_trace(arch, theta, trace, Y, reg, penalty, weights=None):
    """The loss, as a Python float, from a forward trace."""
    L = arch.n_layers
    share, N = shares(weights, len(Y), Y.dtype)
    rows = LOSSES[arch.loss][0](Y, trace[f"z{L}"], trace[f"h{L}"], arch.output)
    return float(np.sum(share[:, 0] * rows) + penalty_term(arch, theta, N, reg, penalty))


def loss(arch, theta, X, Y, reg=0.0, penalty="l2", weights=None):
    """The data loss plus (reg / N) * penalty(weights), as a Python float."""
    return loss_from_trace(arch, theta, forward_trace(arch, theta, X), Y, reg, penalty, weights)


def backward(arch, theta, trace, Y, reg=0.0, penalty="l2", weights=None):
    """The backward step, by the chain rule, layer by layer in reverse. Returns a dict of every
    factor: for each layer l, dLoss_dz{l}, dLoss_dW{l} (sizes[l-1], sizes[l]), dLoss_db{l}; for the
    hidden layers dLoss_dh{l} and dh{l}_dz{l}; for the output layer those the loss has (mse: dLoss_dh{L},
    and dh{L}_dz{L} for an elementwise output)."""
    Ws, _ = arch.split(theta)
    L = arch.n_layers
    share, N = shares(weights, len(Y), Y.dtype)
    penalty_gradient = PENALTIES[penalty][1]
    output_factors = LOSSES[arch.loss][1](Y, trace[f"z{L}"], trace[f"h{L}"], arch.output, share)
    g = {_layer_name(name, L): value for name, value in output_factors.items()}
    for l in range(L, 0, -1):
        W, dLoss_dz = Ws[l - 1], g[f"dLoss_dz{l}"]
        g[f"dLoss_dW{l}"] = trace[f"h{l - 1}"].T @ dLoss_dz
        if reg != 0:
            g[f"dLoss_dW{l}"] = g[f"dLoss_dW{l}"] + reg / N * penalty_gradient(W)
        g[f"dLoss_db{l}"] = dLoss_dz.sum(axis=0)
        if l > 1:
            z, h = trace[f"z{l - 1}"], trace[f"h{l - 1}"]
            activation, derivative = ACTIVATIONS[arch.activations[l - 2]]
            g[f"dLoss_dh{l - 1}"] = dLoss_dz @ W.T
            if f"mask{l - 1}" in trace:             # h = f(z) mask: the derivative of f(z), times the mask
                g[f"dh{l - 1}_dz{l - 1}"] = derivative(z, activation(z)) * trace[f"mask{l - 1}"]
            else:
                g[f"dh{l - 1}_dz{l - 1}"] = derivative(z, h)
            g[f"dLoss_dz{l - 1}"] = g[f"dLoss_dh{l - 1}"] * g[f"dh{l - 1}_dz{l - 1}"]
    return g


def _layer_name(name, l):
    """The output layer's factor names with its layer number: dLoss_dh -> dLoss_dh2, dh_dz -> dh2_dz2."""
    return {"dLoss_dh": f"dLoss_dh{l}", "dh_dz": f"dh{l}_dz{l}", "dLoss_dz": f"dLoss_dz{l}"}[name]


def gradient_vector(arch, g):
    """The gradients of backward's dict as one flat vector, in theta's order."""
    L = arch.n_layers
    parts = [g[f"dLoss_dW{l}"].ravel() for l in range(1, L + 1)] + [g[f"dLoss_db{l}"] for l in range(1, L + 1)]
    return np.concatenate(parts)


def loss_and_gradients(arch, theta, X, Y, reg=0.0, penalty="l2", weights=None, dropout=None):
    """(loss, gradient): the loss at theta, and its gradient as a flat vector like theta (with the
    units that `dropout` drops dropped)."""
    trace = forward_trace(arch, theta, X, dropout)
    loss_value = loss_from_trace(arch, theta, trace, Y, reg, penalty, weights)
    return loss_value, gradient_vector(arch, backward(arch, theta, trace, Y, reg, penalty, weights))


def step(arch, theta, X, Y, lr, reg=0.0, penalty="l2", weights=None):
    """One gradient-descent step in place: theta -= lr * gradient (biases only if arch.bias).
    Returns the loss before it. An update that is not finite is not taken: FloatingPointError, theta
    as it was."""
    loss_value, gradient = loss_and_gradients(arch, theta, X, Y, reg, penalty, weights)
    n = arch.n_trained
    with np.errstate(over="ignore", invalid="ignore"):
        updated = theta[:n] - theta.dtype.type(lr) * gradient[:n]
    if not np.isfinite(updated).all():
        raise FloatingPointError(f"the update is not finite (loss before it {loss_value:.6g})")
    theta[:n] = updated
    return loss_value


# -- what the outputs mean: predictions and scores ---------------------------------------------------------


def predict_from_output(arch, h):
    """Class labels (N,) for sigmoid/softmax outputs (argmax; one sigmoid output: 1 where h > 0.5),
    the outputs themselves for value outputs (identity, exp)."""
    if not arch.is_classifier():
        return h
    if h.shape[1] == 1:
        return (h[:, 0] > 0.5).astype(np.int64)
    return np.argmax(h, axis=1)


def r2(Y, h, weights=None):
    """R^2 as scikit-learn's r2_score computes it: 1 - SS_res / SS_tot per output, averaged; an output
    with SS_tot = 0 scores 1 if it is predicted exactly, else 0. With sample weights, each row's
    squares count w_i times and the mean is the weighted mean."""
    Y, h = np.asarray(Y, np.float64), np.asarray(h, np.float64)
    w = np.ones((len(Y), 1)) if weights is None or len(weights) == 0 else np.asarray(weights, np.float64)[:, None]
    ss_res = np.sum(w * (Y - h) ** 2, axis=0)
    ss_tot = np.sum(w * (Y - np.average(Y, axis=0, weights=w[:, 0])) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_output = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
    return float(per_output.mean())


def score_from_output(arch, h, Y, y, weights=None):
    """Accuracy against labels y for classification outputs (with no labels, multilabel targets Y:
    the fraction of rows whose every output is on the right side of 0.5), R^2 against targets Y for
    value outputs; with sample weights, each row counts w_i times."""
    if not arch.is_classifier():
        return r2(Y, h, weights)
    if len(y) == 0:
        right = np.all((h > 0.5) == (Y > 0.5), axis=1)
    else:
        right = predict_from_output(arch, h) == y
    weights = None if weights is None or len(weights) == 0 else weights
    return float(np.average(right, weights=weights))


# -- many steps: the training loop ----------------------------------------------------------------------------


def norm(g):
    """The Euclidean norm of g in float64: sqrt(sum g**2), or where that sum overflows, the same
    scaled by the largest magnitude first (as BLAS's nrm2), so that a gradient of finite entries near
    1e300 has a finite norm. NaN if g has a NaN, inf if an inf."""
    g = g.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):          # an overflow here takes the scaled way
        total = float(np.sum(g * g))
    if np.isfinite(total):
        return float(np.sqrt(total))
    scale = float(np.max(np.abs(g)))
    if not np.isfinite(scale):
        return scale
    return scale * float(np.sqrt(np.sum((g / scale) ** 2)))


def train_loop(arch, theta, data, settings, curves):
    """Run len(settings.lrs) training steps on theta in place; returns how many finished (fewer on
    divergence or when the stopping rule stops the run).

    data: (Xb, Yb, wb) the training rows, (Xe, Ye, ye) the evaluation set, (Xv, Yv, yv, wv) the
    validation set (either may have 0 rows: not scored); y are labels (classification; none for
    multilabel targets, scored by subset accuracy), Y the targets the loss compares with, w the rows'
    sample weights (none: 0 entries), which weight the batches' losses and the validation set's loss
    and score. settings: fastmlp.loop.LoopSettings. Step t
    (counted from the fit's start, step0 + t) trains on the next batch of its epoch, at rate lrs[t]
    (times the stopping rule's rate scale), through the optimizer; the gradient's global norm is clipped
    to clip_norm when clip_norm > 0, and drops the units that settings.dropout (a Dropout, or None)
    drops at that step. curves: (losses, grad_norms, scores, val_losses, val_scores),
    float64 (steps,): the pre-update loss of step t (a non-finite loss or gradient norm stops the loop
    before the update) and, on evaluation steps, those where (step0 + t + 1) % eval_every == 0 (and the
    last if eval_last), its gradient norm and, after the update, the score on the evaluation set and the
    loss and score on the validation set; then the stopping rule looks at its monitor. (Only evaluation
    steps record the norm: the kernels take the other plain SGD steps with no gradient buffer.)
    """
    settings = settings.completed(theta, arch.n_trained)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):    # divergence is reported
        return _train_steps(arch, theta, data, settings, curves)


def _train_steps(arch, theta, data, settings, curves):
    (Xb, Yb, wb), (Xe, Ye, ye), (Xv, Yv, yv, wv) = data
    batch_size, lrs, reg, penalty, clip_norm, eval_every, step0, eval_last, optimizer, stopping, order, dropout = \
        settings
    losses, grad_norms, scores, val_losses, val_scores = curves
    n = arch.n_trained
    steps_per_epoch = -(-Xb.shape[0] // batch_size)
    first_epoch = step0 // steps_per_epoch
    loss_sum = rows_seen = 0.0                 # since the last evaluation, for the "loss" monitor
    for t in range(len(lrs)):
        epoch, k = divmod(step0 + t, steps_per_epoch)
        batch = np.arange(k * batch_size, min((k + 1) * batch_size, Xb.shape[0]))
        if len(order):
            batch = order[epoch - first_epoch, batch]
        dropped = None if dropout is None else dropout._replace(step=step0 + t)
        loss_value, gradient = loss_and_gradients(arch, theta, Xb[batch], Yb[batch], reg, penalty,
                                                  wb[batch] if len(wb) else None, dropped)
        grad_norm = norm(gradient[:n])
        evaluating = (step0 + t + 1) % eval_every == 0 or (eval_last and t == len(lrs) - 1)
        losses[t] = loss_value
        if evaluating:
            grad_norms[t] = grad_norm
        if not (np.isfinite(loss_value) and np.isfinite(grad_norm)):
            return t
        if 0 < clip_norm < grad_norm:
            gradient *= theta.dtype.type(clip_norm / grad_norm)
        optimizer.update(theta[:n], gradient[:n], lrs[t] * stopping.state[LR_SCALE])
        loss_sum, rows_seen = loss_sum + loss_value * len(batch), rows_seen + len(batch)
        if evaluating:
            if Xe.shape[0]:
                scores[t] = score_from_output(arch, forward(arch, theta, Xe), Ye, ye)
            if Xv.shape[0]:
                trace = forward_trace(arch, theta, Xv)
                val_losses[t] = loss_from_trace(arch, theta, trace, Yv, reg, penalty, wv)
                val_scores[t] = score_from_output(arch, trace[f"h{arch.n_layers}"], Yv, yv, wv)
            monitored = {"none": 0.0, "loss": loss_sum / rows_seen, "val_loss": val_losses[t],
                         "val_score": -val_scores[t]}[stopping.monitor]
            if stopping.monitor != "none" and should_stop(stopping, monitored, theta, step0 + t + 1, lrs[t]):
                return t + 1
            loss_sum = rows_seen = 0.0
    return len(lrs)


def should_stop(stopping, value, theta, step, lr):
    """The stopping rule (fastmlp.loop.Stopping) at one evaluation of `value` (lower is better) after
    1-based `step`: count it, keep the best, and say whether the run stops here."""
    state = stopping.state
    state[BAD_COUNT] = state[BAD_COUNT] + 1 if value > state[BEST] - stopping.tol else 0
    if value < state[BEST]:
        state[BEST], state[BEST_STEP] = value, step
        if stopping.restore_best:
            stopping.best_theta[...] = theta
    if state[BAD_COUNT] < stopping.patience:
        return False
    if stopping.adaptive and lr * state[LR_SCALE] > 1e-6:
        state[LR_SCALE] /= 5.0
        state[BAD_COUNT] = 0
        return False
    state[STOPPED_AT] = step
    return True
