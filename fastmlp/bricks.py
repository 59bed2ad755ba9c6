"""The LEGO bricks in NumPy, each a small named function in a table looked up by name.

Every other module finds the bricks here: the reference stacks them into a network, validation checks
names against these tables, the kernels give each name a code, the estimators, the command line and
the exporters translate them. This module imports nothing of fastmlp.

- ACTIVATIONS: f(z) and its derivative f'(z), given z and h = f(z) (written through h where it can be:
  the kernels keep z only for the activations whose derivative needs it, gelu and silu);
- OUTPUTS: the last layer's function (softmax is not elementwise: its backward is softmax_backward);
- LOSSES: each row's loss, and the output layer's gradient factors given each row's share of the
  batch (1 / N, or w_i / sum(w) with sample weights): the loss is the shares' weighted sum;
- PENALTIES: on the weights only, scaled by reg / N (reg / sum(w)) in the loss.
"""

import math

import numpy as np


def erf(x):
    """scipy.special.erf, imported on first use: scipy.special takes a quarter of a second to import,
    which every process that imports fastmlp (a Dask worker, a CLI call) would otherwise pay."""
    from scipy.special import erf
    return erf(x)

# -- activations: f(z), and f'(z) given z and h = f(z) ----------------------------------------------


def identity(z):
    return z


def identity_derivative(z, h):
    return np.ones_like(h)


def sigmoid(z):
    """1 / (1 + exp(-z)), computed from exp(-|z|) so that no exp overflows (z = +-1000 gives 1 / 0)."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1, e) / (1 + e)


def sigmoid_derivative(z, h):
    """d sigmoid(z) / dz written through its output h = sigmoid(z): h * (1 - h)."""
    return h * (1 - h)


def tanh(z):
    return np.tanh(z)


def tanh_derivative(z, h):
    """d tanh(z) / dz = 1 - tanh(z)**2."""
    return 1 - h * h


def relu(z):
    return np.maximum(z, 0)


def relu_derivative(z, h):
    """1 where relu(z) > 0, else 0 (0 at the kink z = 0, as scikit-learn and PyTorch take it)."""
    return (h > 0).astype(h.dtype)


LEAKY_SLOPE = 0.01


def leaky_relu(z):
    """z where z > 0, else LEAKY_SLOPE z."""
    return np.where(z > 0, z, z.dtype.type(LEAKY_SLOPE) * z)


def leaky_relu_derivative(z, h):
    """1 where h > 0 (h and z have the same sign), else LEAKY_SLOPE."""
    return np.where(h > 0, 1, LEAKY_SLOPE).astype(h.dtype)


def elu(z):
    """z where z > 0, else exp(z) - 1 (alpha 1)."""
    return np.where(z > 0, z, np.expm1(np.minimum(z, 0)))


def elu_derivative(z, h):
    """1 where h > 0, else exp(z) = h + 1."""
    return np.where(h > 0, 1, h + 1).astype(h.dtype)


def softplus(z):
    """log(1 + exp(z)) without overflow: max(z, 0) + log1p(exp(-|z|))."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def softplus_derivative(z, h):
    """sigmoid(z) = 1 - exp(-h), as h = log(1 + exp(z))."""
    return -np.expm1(-h)


def silu(z):
    """z sigmoid(z) (the swish of Ramachandran et al.)."""
    return z * sigmoid(z)


def silu_derivative(z, h):
    """sigmoid(z) (1 + z (1 - sigmoid(z)))."""
    s = sigmoid(z)
    return s * (1 + z * (1 - s))


def gelu(z):
    """z Phi(z), Phi the standard normal CDF 0.5 (1 + erf(z / sqrt 2)): the exact GELU, not tanh's
    approximation."""
    return 0.5 * z * (1 + erf(z * (1 / math.sqrt(2))))


def gelu_derivative(z, h):
    """Phi(z) + z phi(z), phi the standard normal density exp(-z**2 / 2) / sqrt(2 pi)."""
    return 0.5 * (1 + erf(z * (1 / math.sqrt(2)))) + z * np.exp(-0.5 * z * z) * (1 / math.sqrt(2 * math.pi))


ACTIVATIONS = {
    "identity": (identity, identity_derivative),
    "sigmoid": (sigmoid, sigmoid_derivative),
    "tanh": (tanh, tanh_derivative),
    "relu": (relu, relu_derivative),
    "leaky_relu": (leaky_relu, leaky_relu_derivative),
    "elu": (elu, elu_derivative),
    "softplus": (softplus, softplus_derivative),
    "gelu": (gelu, gelu_derivative),
    "silu": (silu, silu_derivative),
}


# -- outputs: the last layer's function ----------------------------------------------------------------


def softmax(z):
    """exp(z) / sum(exp(z)) along each row, shifted by the row's maximum so that no exp overflows."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_backward(p, dLoss_dp):
    """dLoss_dz from dLoss_dp through p = softmax(z): p * (dLoss_dp - sum_k dLoss_dp[k] p[k])."""
    return p * (dLoss_dp - np.sum(dLoss_dp * p, axis=1, keepdims=True))


def exp(z):
    """exp(z): a positive output, the mean of a Poisson count (scikit-learn's "exp" output)."""
    return np.exp(z)


def exp_derivative(z, h):
    """d exp(z) / dz = exp(z) = h."""
    return h


OUTPUTS = {
    "identity": (identity, identity_derivative),
    "sigmoid": (sigmoid, sigmoid_derivative),
    "softmax": (softmax, None),           # not elementwise: see softmax_backward
    "exp": (exp, exp_derivative),
}
CLASSIFIER_OUTPUTS = ("sigmoid", "softmax")      # outputs that are class probabilities


# -- losses: each row's value, and the gradient with respect to the output layer's z -------------------
# share (N, 1): each row's share of the batch's loss, 1 / N or w_i / sum(w); the loss is sum(share * rows).


def squared_error(Y, z, h, output):
    """Each row's sum((Y - h)**2) / 2, the article's loss (its mean over the rows: sum / (2N))."""
    return 0.5 * np.sum((Y - h) ** 2, axis=1)


def squared_error_gradient(Y, z, h, output, share):
    """The output layer's factors: dLoss_dh = -(Y - h) * share, then through the output function
    (dh_dz elementwise, or softmax's Jacobian) to dLoss_dz."""
    dLoss_dh = -(Y - h) * share
    if output == "softmax":
        return {"dLoss_dh": dLoss_dh, "dLoss_dz": softmax_backward(h, dLoss_dh)}
    dh_dz = OUTPUTS[output][1](z, h)
    return {"dLoss_dh": dLoss_dh, "dh_dz": dh_dz, "dLoss_dz": dLoss_dh * dh_dz}


def cross_entropy(Y, z, h, output):
    """Each row's -sum(Y log p) (softmax) or -sum(Y log p + (1 - Y) log(1 - p)) (sigmoid), from z:
    log softmax(z) = z - max - log(sum exp(z - max)); -(Y log p + (1-Y) log(1-p)) = softplus(z) - Y z."""
    if output == "softmax":
        shifted = z - z.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
        return -np.sum(Y * log_p, axis=1)
    return np.sum(softplus(z) - Y * z, axis=1)


def cross_entropy_gradient(Y, z, h, output, share):
    """With its matching output (softmax or sigmoid) the chain collapses: dLoss_dz = (p - Y) * share."""
    return {"dLoss_dz": (h - Y) * share}


def poisson(Y, z, h, output):
    """Each row's half Poisson deviance, as scikit-learn's poisson_loss: sum(Y log(Y / h) - Y + h) with
    h = exp(z), written from z: Y log Y - Y z - Y + h (0 log 0 = 0)."""
    Y_log_Y = np.where(Y > 0, Y * np.log(np.where(Y > 0, Y, 1)), 0)
    return np.sum(Y_log_Y - Y * z - Y + h, axis=1)


def poisson_gradient(Y, z, h, output, share):
    """With the exp output the chain collapses too: dLoss_dz = (exp(z) - Y) * share."""
    return {"dLoss_dz": (h - Y) * share}


LOSSES = {
    "mse": (squared_error, squared_error_gradient),
    "cross_entropy": (cross_entropy, cross_entropy_gradient),
    "poisson": (poisson, poisson_gradient),
}
LOSS_OUTPUTS = {                         # the outputs each loss goes with
    "mse": tuple(OUTPUTS),
    "cross_entropy": CLASSIFIER_OUTPUTS,
    "poisson": ("exp",),
}


# -- penalties on the weights ----------------------------------------------------------------------------


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
