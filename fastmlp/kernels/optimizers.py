"""The optimizers' update rules, compiled: fastmlp.optimizers' rules on the same state arrays.

An optimizer reaches the kernels as (code, hyper, slots, count) (Optimizer.kernel_state): hyper holds
momentum, or beta_1, beta_2 and epsilon, as float64; slots (2, n) the velocity, or Adam's two moments,
in theta's dtype; count (1,) the steps Adam has taken. Each rule is one loop over theta[:n].
"""

import math

import numba as nb

from ..optimizers import ADAM_CODE, MOMENTUM_CODE, NESTEROV_CODE
from .fastmath import STRICT
from .passes import update as sgd_update


@nb.njit(inline="always", **STRICT)
def update(optimizer, theta, grad, lr, n):
    """theta[:n] += the optimizer's update for gradient grad[:n] at rate lr (a float64), in place."""
    code, hyper, slots, count = optimizer
    dt = theta.dtype.type
    if code == MOMENTUM_CODE or code == NESTEROV_CODE:
        momentum, rate, velocity = dt(hyper[0]), dt(lr), slots[0]
        for k in range(n):
            velocity[k] = momentum * velocity[k] - rate * grad[k]
            theta[k] += momentum * velocity[k] - rate * grad[k] if code == NESTEROV_CODE else velocity[k]
    elif code == ADAM_CODE:
        count[0] += 1
        beta_1, beta_2, epsilon = hyper[0], hyper[1], dt(hyper[2])
        step = dt(lr * math.sqrt(1 - beta_2 ** count[0]) / (1 - beta_1 ** count[0]))
        b1, c1, b2, c2 = dt(beta_1), dt(1 - beta_1), dt(beta_2), dt(1 - beta_2)
        m, s = slots[0], slots[1]
        for k in range(n):
            m[k] = b1 * m[k] + c1 * grad[k]
            s[k] = b2 * s[k] + c2 * (grad[k] * grad[k])
            theta[k] -= step * m[k] / (math.sqrt(s[k]) + epsilon)
    else:
        sgd_update(theta, grad, dt(lr), n)
