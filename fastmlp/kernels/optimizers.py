"""The optimizers' update rules, compiled: fastmlp.optimizers' rules on the same state arrays.

An optimizer reaches the kernels as (code, hyper, slots, count) (Optimizer.kernel_state): hyper holds
momentum, or beta_1, beta_2 and epsilon, as float64; slots (2, n) the velocity, or Adam's two moments,
in theta's dtype; count (1,) the steps Adam has taken. A step's scalars come first (rates), then one
loop over theta[:n] (apply_rule). Each entry's update reads only that entry, so a long theta is cut
into parts that fastmlp's threads update side by side, to the same bits as one loop. Adam's exact
square root and division are bound by the divider: for the 641,000 parameters of a 5,000-word first
layer, 0.6 ms a step on one core of a 2-core AMD EPYC (AVX-512) and 0.3 on two, where SGD's loop
takes 0.13 and 0.07.
"""

import math

import numba as nb

from ..optimizers import ADAM_CODE, MOMENTUM_CODE, NESTEROV_CODE
from .fastmath import STRICT
from .plan import flat_parts, part_start

# The fewest entries a part holds, so that a part's work outweighs waking a thread for it (20-40 us in a
# virtual machine): Adam's update takes about 1 ns an entry, the others' 0.2-0.4 (the 2-core EPYC above).
ADAM_PART_MIN_ENTRIES = 1 << 15
PART_MIN_ENTRIES = 1 << 18
INLINE_MAX_ENTRIES = 1 << 12   # fewer are updated by the rule inlined into the caller (see update)


@nb.njit(inline="always", **STRICT)
def rates(optimizer, lr, dt):
    """The step's scalars in dtype dt, six for every rule: SGD's (lr, ...), momentum's (momentum, lr, ...),
    Adam's (beta_1, 1 - beta_1, beta_2, 1 - beta_2, step, epsilon) with its count advanced and
    step = lr sqrt(1 - beta_2**t) / (1 - beta_1**t)."""
    code, hyper, _, count = optimizer
    if code == ADAM_CODE:
        count[0] += 1
        beta_1, beta_2 = hyper[0], hyper[1]
        step = lr * math.sqrt(1 - beta_2 ** count[0]) / (1 - beta_1 ** count[0])
        return dt(beta_1), dt(1 - beta_1), dt(beta_2), dt(1 - beta_2), dt(step), dt(hyper[2])
    if code == MOMENTUM_CODE or code == NESTEROV_CODE:
        return dt(hyper[0]), dt(lr), dt(0), dt(0), dt(0), dt(0)
    return dt(lr), dt(0), dt(0), dt(0), dt(0), dt(0)


@nb.njit(inline="always", **STRICT)
def descend(theta, grad, rate):
    """theta -= rate * grad, in place: plain gradient descent (SGD's rule; also passes.step_into's)."""
    for k in range(theta.size):
        theta[k] -= rate * grad[k]


@nb.njit(inline="always", **STRICT)
def apply_rule(code, r, theta, grad, m, s):
    """theta += the rule's update for gradient grad, all of the same size, with the step's scalars r
    (rates); m and s are the rule's slots for these entries (empty for SGD, s unused by momentum)."""
    if code == ADAM_CODE:
        b1, c1, b2, c2, step, epsilon = r
        for k in range(theta.size):
            g = grad[k]
            m_k = b1 * m[k] + c1 * g
            s_k = b2 * s[k] + c2 * (g * g)
            m[k], s[k] = m_k, s_k
            theta[k] -= step * m_k / (math.sqrt(s_k) + epsilon)
    elif code == MOMENTUM_CODE or code == NESTEROV_CODE:
        momentum, rate = r[0], r[1]
        for k in range(theta.size):
            v = momentum * m[k] - rate * grad[k]
            m[k] = v
            theta[k] += momentum * v - rate * grad[k] if code == NESTEROV_CODE else v
    else:
        descend(theta, grad, r[0])


@nb.njit(**STRICT)
def apply_whole(code, r, theta, grad, m, s):
    """apply_rule, compiled on its own (see update)."""
    apply_rule(code, r, theta, grad, m, s)


@nb.njit(parallel=True, **STRICT)
def apply_in_parts(code, r, theta, grad, m, s, parts):
    """apply_rule on `parts` contiguous parts of theta side by side (m, s: the slots, as long as theta or
    empty)."""
    n = theta.size
    for p in nb.prange(parts):
        lo, hi = part_start(p, parts, n), part_start(p + 1, parts, n)
        apply_rule(code, r, theta[lo:hi], grad[lo:hi], m[lo:hi], s[lo:hi])


@nb.njit(inline="always", **STRICT)
def update(optimizer, theta, grad, lr, n):
    """theta[:n] += the optimizer's update for gradient grad[:n] at rate lr (a float64), in place: by the
    rule inlined into the caller for fewer than INLINE_MAX_ENTRIES (a call costs the article's network
    10-20 ns a step), in one loop compiled on its own (apply_whole) below two parts' entries
    (PART_MIN_ENTRIES, ADAM_PART_MIN_ENTRIES), else in plan.flat_parts parts (apply_in_parts), however
    many threads run them. Inlined into the training loop, whose flags allow reassociation, Adam's
    loop over 641,000 entries had taken its step's division by 1 - beta_1**t into every entry: 1.2 ms,
    0.6 on its own."""
    code, _, slots, _ = optimizer
    r = rates(optimizer, lr, theta.dtype.type)
    parts = flat_parts(n, ADAM_PART_MIN_ENTRIES if code == ADAM_CODE else PART_MIN_ENTRIES)
    if n < INLINE_MAX_ENTRIES:
        apply_rule(code, r, theta[:n], grad[:n], slots[0], slots[1])
    elif parts == 1:
        apply_whole(code, r, theta[:n], grad[:n], slots[0], slots[1])
    else:
        apply_in_parts(code, r, theta[:n], grad[:n], slots[0], slots[1], parts)
