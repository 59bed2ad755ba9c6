"""Optimizers: how a step turns the gradient into an update of the parameters.

Each optimizer is a small object with one update rule, written as scikit-learn's MLP optimizers
(sklearn/neural_network/_stochastic_optimizers.py) compute it, on the trained parameters
theta[:n] in place. Its state lives in arrays, `slots` (2, n) and `count` (1,), which the compiled
kernels update by the same rule (fastmlp.kernels.optimizers), so that one optimizer can carry its
state across fits (scikit-learn's partial_fit) and across backends.

    sgd        theta -= lr g
    momentum   v = momentum v - lr g;  theta += v
    nesterov   v = momentum v - lr g;  theta += momentum v - lr g
    adam       t += 1;  m = beta_1 m + (1 - beta_1) g;  s = beta_2 s + (1 - beta_2) g**2
               theta -= lr sqrt(1 - beta_2**t) / (1 - beta_1**t) m / (sqrt(s) + epsilon)
"""

import numpy as np

from .architecture import aligned_flat
from .validation import check_scalar

SGD_CODE, MOMENTUM_CODE, NESTEROV_CODE, ADAM_CODE = 0, 1, 2, 3


class Optimizer:
    """The state every optimizer keeps: slots (2, n) in theta's dtype, count (1,) int64 (steps taken)."""

    code = SGD_CODE
    hyper = ()

    def __init__(self):
        self.slots = np.zeros((2, 0))
        self.count = np.zeros(1, np.int64)

    def prepare(self, theta, n):
        """Make the state fit n trained parameters of theta's dtype, zeroing it if it did not."""
        if self.slots.shape != (2, n) or self.slots.dtype != theta.dtype:
            self.slots = aligned_flat(2 * n, theta.dtype).reshape(2, n)
            self.count[0] = 0
        return self

    def kernel_state(self):
        """(code, hyper (float64), slots, count): the optimizer as the compiled kernels take it."""
        return self.code, np.array(self.hyper, np.float64).reshape(-1), self.slots, self.count

    def __repr__(self):
        names = self.__init__.__code__.co_varnames[1:self.__init__.__code__.co_argcount]
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in names)})"


class SGD(Optimizer):
    """Plain gradient descent: theta -= lr g (the article's rule)."""

    def update(self, theta, grad, lr):
        theta -= theta.dtype.type(lr) * grad


class Momentum(Optimizer):
    """Gradient descent with momentum in velocity form (scikit-learn's SGDOptimizer):
    v = momentum v - lr g, then theta += v, or with nesterov theta += momentum v - lr g."""

    def __init__(self, momentum=0.9, nesterov=False):
        super().__init__()
        self.momentum = check_scalar("momentum", momentum, high=1.0)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        self.nesterov = bool(nesterov)
        self.code = NESTEROV_CODE if self.nesterov else MOMENTUM_CODE
        self.hyper = (self.momentum,)

    def update(self, theta, grad, lr):
        lr, momentum, velocity = theta.dtype.type(lr), theta.dtype.type(self.momentum), self.slots[0]
        velocity[...] = momentum * velocity - lr * grad
        theta += momentum * velocity - lr * grad if self.nesterov else velocity


class Adam(Optimizer):
    """Adam (Kingma and Ba), with the bias correction folded into the step size as scikit-learn's
    AdamOptimizer does: lr_t = lr sqrt(1 - beta_2**t) / (1 - beta_1**t)."""

    code = ADAM_CODE

    def __init__(self, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        super().__init__()
        self.beta_1 = check_scalar("beta_1", beta_1, high=1.0, high_inclusive=False)
        self.beta_2 = check_scalar("beta_2", beta_2, high=1.0, high_inclusive=False)
        self.epsilon = check_scalar("epsilon", epsilon, low_inclusive=False)
        self.hyper = (self.beta_1, self.beta_2, self.epsilon)

    def update(self, theta, grad, lr):
        self.count[0] += 1
        t, dt = int(self.count[0]), theta.dtype.type
        m, s = self.slots
        m[...] = dt(self.beta_1) * m + dt(1 - self.beta_1) * grad
        s[...] = dt(self.beta_2) * s + dt(1 - self.beta_2) * grad**2
        step = dt(lr * np.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t))
        theta -= step * m / (np.sqrt(s) + dt(self.epsilon))


OPTIMIZERS = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": lambda: Momentum(nesterov=True),
    "adam": Adam,
}


def get_optimizer(optimizer):
    """An Optimizer from a name of OPTIMIZERS (with its defaults) or an Optimizer itself."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer in OPTIMIZERS:
        return OPTIMIZERS[optimizer]()
    raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} or a fastmlp.optimizers.Optimizer, "
                     f"got {optimizer!r}")
