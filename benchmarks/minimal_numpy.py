"""The yardstick of the bricks' speed: a minimal NumPy step, written as plainly as the article's code.

No checks, no traces kept beyond what backpropagation needs, no penalty bookkeeping beyond the l2
term: forward through the layers, backward in reverse, update in place. fastmlp.reference computes the
same numbers with every factor named (and is the oracle); this is what a user would write by hand for
speed, so the kernels are measured against it. Same signatures as the backends' forward and step.
"""

import numpy as np

FUNCTIONS = {
    "identity": lambda z: z,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
}
DERIVATIVES = {
    "identity": lambda h: 1,
    "sigmoid": lambda h: h * (1 - h),
    "tanh": lambda h: 1 - h * h,
    "relu": lambda h: h > 0,
}


def _forward(arch, theta, X):
    weights, biases = arch.split(theta)
    hs = [X]
    for l, (W, b) in enumerate(zip(weights, biases)):
        z = hs[-1] @ W + b
        if l < len(weights) - 1:
            hs.append(FUNCTIONS[arch.activations[l]](z))
        elif arch.output == "softmax":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            hs.append(e / e.sum(axis=1, keepdims=True))
        else:
            hs.append(FUNCTIONS[arch.output](z))
    return weights, biases, hs


def forward(arch, theta, X):
    return _forward(arch, theta, X)[2][-1]


def step(arch, theta, X, Y, lr, reg=0.0, penalty="l2"):
    """One step of l2-regularised gradient descent in place (penalty must be "l2")."""
    weights, biases, hs = _forward(arch, theta, X)
    N = len(X)
    out = hs[-1]
    delta = (out - Y) / N                   # cross-entropy: dLoss/dz; mse: dLoss/dout
    if arch.loss == "mse":
        if arch.output == "sigmoid":
            delta *= out * (1 - out)
        elif arch.output == "softmax":
            delta = out * (delta - np.sum(delta * out, axis=1, keepdims=True))
    for l in range(len(weights) - 1, -1, -1):
        dW = hs[l].T @ delta + (reg / N) * weights[l]
        db = delta.sum(axis=0)
        if l > 0:
            delta = (delta @ weights[l].T) * DERIVATIVES[arch.activations[l - 1]](hs[l])
        weights[l] -= lr * dW
        if arch.bias:
            biases[l] -= lr * db
