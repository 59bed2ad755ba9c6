"""The article's network in plain NumPy: the readable oracle every other backend is checked against.

One hidden layer, sigmoid everywhere, squared-error loss (shapes: X (N, D), Y (N, O) one-hot,
W1 (D, H), b1 (H,), W2 (H, O), b2 (O,)):

    z1 = X @ W1 + b1        h1 = sigmoid(z1)
    z2 = h1 @ W2 + b2       h2 = sigmoid(z2)
    Loss = sum((Y - h2)**2) / (2N) + (reg / N) * penalty(W1, W2)

with penalty = (sum W1**2 + sum W2**2) / 2 for "l2" (the article's) or sum |W1| + sum |W2| for "l1".
Biases are never penalised; a network without biases passes zeros and ignores their gradients.

The gradients are the true gradients of this loss (checked against finite differences). The article's
code differs in two ways: it omits the 1/N of the data term, and adds reg * sum(W**2) (a scalar) where
the penalty's derivative reg * W / N belongs. See README "How fastmlp differs from the article's code".

Every function computes in the dtype of its inputs: float32 in, float32 out.
"""

import numpy as np


def sigmoid(z):
    """1 / (1 + exp(-z)), computed from exp(-|z|) so that no exp overflows (z = +-1000 gives 1 / 0)."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1, e) / (1 + e)


def sigmoid_derivative(h):
    """d sigmoid(z) / dz written through its output h = sigmoid(z): h * (1 - h)."""
    return h * (1 - h)


def l2_penalty(W):
    """sum(W**2) / 2, the article's ridge penalty (before the reg / N factor)."""
    return 0.5 * np.sum(W * W)


def l2_penalty_gradient(W):
    return W


def l1_penalty(W):
    """sum |W|, the lasso penalty the article suggests against exploding weights."""
    return np.sum(np.abs(W))


def l1_penalty_gradient(W):
    return np.sign(W)


PENALTIES = {
    "l2": (l2_penalty, l2_penalty_gradient),
    "l1": (l1_penalty, l1_penalty_gradient),
}


def forward_trace(X, W1, b1, W2, b2):
    """The forward step, keeping every intermediate: returns z1, h1 (N, H) and z2, h2 (N, O)."""
    z1 = X @ W1 + b1
    h1 = sigmoid(z1)
    z2 = h1 @ W2 + b2
    h2 = sigmoid(z2)
    return z1, h1, z2, h2


def forward(X, W1, b1, W2, b2):
    """The network's output h2 (N, O)."""
    return forward_trace(X, W1, b1, W2, b2)[-1]


def loss(X, Y, W1, b1, W2, b2, reg=0.0, penalty="l2"):
    """Loss = sum((Y - h2)**2) / (2N) + (reg / N) * penalty(W1, W2), as a Python float."""
    h2 = forward(X, W1, b1, W2, b2)
    return loss_from_output(Y, h2, W1, W2, reg, penalty)


def loss_from_output(Y, h2, W1, W2, reg, penalty):
    """The loss from the network's output h2 (N, O) (shared by both backends' `loss`)."""
    N = len(Y)
    penalty_value, _ = PENALTIES[penalty]
    data_term = np.sum((Y - h2) ** 2) / (2 * N)
    reg_term = reg / N * (penalty_value(W1) + penalty_value(W2))
    return float(data_term + reg_term)


def backward(X, Y, W1, W2, h1, h2, reg=0.0, penalty="l2"):
    """The backward step, by the chain rule, one article-named factor at a time.

    Returns a dict of every factor: dLoss_dh2, dh2_dz2 (N, O); dLoss_dh1, dh1_dz1 (N, H);
    and the gradients dLoss_dW1 (D, H), dLoss_db1 (H,), dLoss_dW2 (H, O), dLoss_db2 (O,).
    """
    N = len(X)
    _, penalty_gradient = PENALTIES[penalty]

    dLoss_dh2 = -(Y - h2) / N
    dh2_dz2 = sigmoid_derivative(h2)
    dLoss_dz2 = dLoss_dh2 * dh2_dz2
    dLoss_dW2 = h1.T @ dLoss_dz2 + reg / N * penalty_gradient(W2)
    dLoss_db2 = dLoss_dz2.sum(axis=0)

    dLoss_dh1 = dLoss_dz2 @ W2.T
    dh1_dz1 = sigmoid_derivative(h1)
    dLoss_dz1 = dLoss_dh1 * dh1_dz1
    dLoss_dW1 = X.T @ dLoss_dz1 + reg / N * penalty_gradient(W1)
    dLoss_db1 = dLoss_dz1.sum(axis=0)

    return dict(
        dLoss_dh2=dLoss_dh2, dh2_dz2=dh2_dz2, dLoss_dh1=dLoss_dh1, dh1_dz1=dh1_dz1,
        dLoss_dW1=dLoss_dW1, dLoss_db1=dLoss_db1, dLoss_dW2=dLoss_dW2, dLoss_db2=dLoss_db2,
    )


def loss_and_gradients(X, Y, W1, b1, W2, b2, reg=0.0, penalty="l2"):
    """Returns (loss, (dLoss_dW1, dLoss_db1, dLoss_dW2, dLoss_db2)) at the current parameters."""
    _, h1, _, h2 = forward_trace(X, W1, b1, W2, b2)
    loss_value = loss_from_output(Y, h2, W1, W2, reg, penalty)
    g = backward(X, Y, W1, W2, h1, h2, reg, penalty)
    return loss_value, (g["dLoss_dW1"], g["dLoss_db1"], g["dLoss_dW2"], g["dLoss_db2"])


def step(X, Y, W1, b1, W2, b2, lr, reg=0.0, penalty="l2", bias=True):
    """One gradient-descent step in place: W -= lr * dLoss_dW (and b, if `bias`). Returns the loss before it."""
    loss_value, (dLoss_dW1, dLoss_db1, dLoss_dW2, dLoss_db2) = loss_and_gradients(
        X, Y, W1, b1, W2, b2, reg, penalty
    )
    W1 -= lr * dLoss_dW1
    W2 -= lr * dLoss_dW2
    if bias:
        b1 -= lr * dLoss_db1
        b2 -= lr * dLoss_db2
    return loss_value


def train_loop(Xb, Yb, batch_size, lrs, reg, penalty, clip_norm, bias, W1, b1, W2, b2,
               Xe, ye, Xv, Yv, yv, eval_every, step0, eval_last,
               losses, grad_norms, accuracies, val_losses, val_accuracies):
    """Run len(lrs) gradient-descent steps in place; returns how many finished (fewer on divergence).

    Step t trains on rows [start, start + batch_size) of Xb, Yb with start = (t * batch_size) % len(Xb)
    (clipped at the end of Xb), at learning rate lrs[t]. Its gradient's global norm is clipped to
    clip_norm when clip_norm > 0. It writes the pre-update loss and the gradient norm to losses[t],
    grad_norms[t]; a non-finite one stops the loop before the update. After the update, on steps where
    (step0 + t + 1) % eval_every == 0 (and on the last if eval_last), it writes the accuracy on
    (Xe, ye) to accuracies[t] and, if Xv has rows, the loss and accuracy on (Xv, Yv, yv).
    """
    with np.errstate(over="ignore", invalid="ignore"):     # divergence is detected and reported below
        return _train_steps(Xb, Yb, batch_size, lrs, reg, penalty, clip_norm, bias, W1, b1, W2, b2,
                            Xe, ye, Xv, Yv, yv, eval_every, step0, eval_last,
                            losses, grad_norms, accuracies, val_losses, val_accuracies)


def _train_steps(Xb, Yb, batch_size, lrs, reg, penalty, clip_norm, bias, W1, b1, W2, b2,
                 Xe, ye, Xv, Yv, yv, eval_every, step0, eval_last,
                 losses, grad_norms, accuracies, val_losses, val_accuracies):
    params = [W1, b1, W2, b2] if bias else [W1, W2]
    for t in range(len(lrs)):
        start = (t * batch_size) % len(Xb)
        batch = slice(start, min(start + batch_size, len(Xb)))
        loss_value, (dW1, db1, dW2, db2) = loss_and_gradients(
            Xb[batch], Yb[batch], W1, b1, W2, b2, reg, penalty)
        grads = [dW1, db1, dW2, db2] if bias else [dW1, dW2]
        grad_norm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads))
        losses[t], grad_norms[t] = loss_value, grad_norm
        if not (np.isfinite(loss_value) and np.isfinite(grad_norm)):
            return t
        scale = clip_norm / grad_norm if 0 < clip_norm < grad_norm else 1.0
        lr = Xb.dtype.type(lrs[t] * scale)
        for p, g in zip(params, grads):
            p -= lr * g
        if (step0 + t + 1) % eval_every == 0 or (eval_last and t == len(lrs) - 1):
            accuracies[t] = np.mean(np.argmax(forward(Xe, W1, b1, W2, b2), axis=1) == ye)
            if len(Xv):
                val_losses[t] = loss(Xv, Yv, W1, b1, W2, b2, reg, penalty)
                val_accuracies[t] = np.mean(np.argmax(forward(Xv, W1, b1, W2, b2), axis=1) == yv)
    return len(lrs)
