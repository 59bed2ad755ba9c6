"""The reference's math as compiled Numba kernels: the `backend="numba"` of fastmlp.MLP.

The same functions and signatures as fastmlp.reference (forward, loss, loss_and_gradients, step,
train_loop), for any network. The modules follow the bricks:

    cache      Numba's on-disk cache, stamped with all of fastmlp's sources
    fastmath   vectorisable exp, sigmoid, tanh; the activations by code
    memory     scratch aligned to cache lines; arrays borrowed without reference counting
    blas       matrix products through BLAS from compiled code, accumulating in place
    plan       how a batch is cut into chunks and groups (shapes only: bitwise deterministic)
    threads    Numba's threads: started once, held to the process's budget, short calls on idle cores
    sparse     sparse X (CSR): the first layer's product and weight gradient on the nonzeros
    layers     any network, layer by layer (BLAS products, activations, output and loss)
    fused      the article's arrangement with few inputs: one fused pass per hidden unit
    passes     whole batches on either path; penalty and update on the flat parameters
    certify    the article's accuracy, certified in float32 and lazily between steps
    loop       many steps in one compiled call

Flags: error_model="numpy" (no zero-division checks, which stop vectorisation); fastmath limited to
reassociation and contraction, so that reductions vectorise while NaN/inf keep their IEEE meaning (the
training loop checks for them). Results agree with the reference to the tolerances of README
"Tolerances", and are bitwise identical for any thread count.
"""

import contextlib
import functools
import time

import numba as nb
import numpy as np

from ..loop import MONITORS
from ..bricks import PENALTIES
from ..validation import check_finite, is_sparse
from .cache import install_locators

install_locators()      # before the modules below compile anything (see kernels.cache)

from .blas import one_blas_thread, openblas_thread_functions
from .fastmath import FAST, FUNCTION_CODES, all_finite
from .fused import FUSED_MAX_INPUTS, FUSED_MAX_OUTPUTS
from .layers import LOSS_CODES, weight_total
from .loop import train_loop_compiled
from .plan import LAYER_MAX_GROUPS
from .passes import forward_into, loss_and_gradients_into, new_scratch, penalty_value, step_into
from .sparse import as_csr, rows_finite
from .threads import CallThreads, start_threads

PENALTY_CODES = {name: code for code, name in enumerate(sorted(PENALTIES))}   # l1: 0, l2: 1


def is_fused(arch):
    """Whether `arch` takes the fused path: the article's arrangement with few inputs and outputs."""
    return (arch.activations == ("sigmoid",) and arch.output == "sigmoid" and arch.loss == "mse"
            and arch.sizes[0] <= FUSED_MAX_INPUTS and arch.sizes[-1] <= FUSED_MAX_OUTPUTS)


NO_DROPOUT = np.zeros(0)


@functools.lru_cache(maxsize=256)
def spec_of(arch, weighted=False, sparse=False, dropping=False):
    """The kernels' view of an Architecture: (sizes, codes, output, loss, bias, fused, max_groups,
    dropout), see layers; dropout empty (train_loop and loss_and_gradients put theirs in). fused: the
    fused path's arrangement (is_fused), for dense rows without sample weights (weighted: some have;
    sparse: X is sparse) whose training drops nothing (dropping: it does). max_groups:
    plan.LAYER_MAX_GROUPS where BLAS's threads can be held to one during a call
    (blas.one_blas_thread), else 1 (BLAS then threads each product itself); 1 for sparse X, whose
    batches run in one group: the groups' gradient buffers would each be as large as theta, whose
    first layer (every column of X) dominates it, while a group's work is that of its nonzeros.
    Every entry point below starts here, so this also starts Numba's threads (start_threads)."""
    start_threads()
    sizes = np.array(arch.sizes, np.int64)
    codes = np.array([FUNCTION_CODES[a] for a in arch.activations], np.int64)
    max_groups = LAYER_MAX_GROUPS if openblas_thread_functions() is not None and not sparse else 1
    return (sizes, codes, FUNCTION_CODES[arch.output], LOSS_CODES[arch.loss], arch.bias,
            is_fused(arch) and not (weighted or sparse or dropping), max_groups, NO_DROPOUT)


def dropout_state(dropout):
    """A fastmlp.dropout.Dropout as the kernels take it: float64 [seed, step, p_1, ..., p_{L-1}]
    (empty for None)."""
    if dropout is None:
        return NO_DROPOUT
    return np.array([dropout.seed, dropout.step, *dropout.rates], np.float64)


NO_BLAS_THREADS = contextlib.nullcontext()


def threads_for(arch, spec, rows, outputs_only=False):
    """The context of a kernel call on `spec` over `rows` rows (threads.CallThreads): Numba's threads
    within the process's budget and, for a short call (rows x arch.n_weights multiply-adds), the cores
    idle now; BLAS on one thread for the layered path (its products go through BLAS; the fused path
    calls none, nor do the outputs of one row: blas.one_row_gemm)."""
    calls_blas = not (spec[5] or (outputs_only and rows == 1))
    return CallThreads(rows * arch.n_weights, one_blas_thread() if calls_blas else NO_BLAS_THREADS)


def as_kernel_weights(weights, theta):
    """Sample weights as the kernels take them: an empty array of theta's dtype for none."""
    return np.empty(0, theta.dtype) if weights is None else weights


def as_kernel_rows(X, sparse):
    """X as the kernels take it: a dense array, or for sparse rows a sparse.CSR (a dense X among
    sparse ones, such as an empty evaluation set, converted)."""
    if not sparse:
        return X.toarray() if is_sparse(X) else X
    if not is_sparse(X):
        import scipy.sparse
        X = scipy.sparse.csr_matrix(X)
    return as_csr(X)


def raise_if_not_finite(finite, *named_arrays):
    """The compiled entry points check their inputs for NaN/inf in the same call (fastmlp.backends)
    and return whether they were finite; if not, raise validation's error naming the first bad entry."""
    if not finite:
        for name, a in named_arrays:
            check_finite(name, a)


# -- the backend interface ------------------------------------------------------------------------------

def forward(arch, theta, X):
    """The network's output h_L (N, O)."""
    sparse = is_sparse(X)
    spec = spec_of(arch, False, sparse)
    no_rows = np.empty((0, arch.sizes[-1]), theta.dtype)
    with threads_for(arch, spec, X.shape[0], outputs_only=True):
        finite, _, out = outputs_compiled(spec, theta, as_kernel_rows(X, sparse), no_rows,
                                          as_kernel_weights(None, theta), 0.0, 0)
    raise_if_not_finite(finite, ("X", X))
    return out


def loss(arch, theta, X, Y, reg=0.0, penalty="l2", weights=None):
    """The data loss plus (reg / N) * penalty(weights), as a Python float."""
    sparse = is_sparse(X)
    spec = spec_of(arch, weights is not None, sparse)
    with threads_for(arch, spec, X.shape[0], outputs_only=True):
        finite, value, _ = outputs_compiled(spec, theta, as_kernel_rows(X, sparse), Y,
                                            as_kernel_weights(weights, theta), reg, PENALTY_CODES[penalty])
    raise_if_not_finite(finite, ("X", X), ("Y", Y))
    return float(value)


def loss_and_gradients(arch, theta, X, Y, reg=0.0, penalty="l2", weights=None, dropout=None):
    """(loss, gradient): the loss at theta and its gradient, a flat vector like theta (the units that
    `dropout`, a fastmlp.dropout.Dropout, drops dropped)."""
    sparse = is_sparse(X)
    spec = spec_of(arch, weights is not None, sparse, dropout is not None)
    spec = spec[:7] + (dropout_state(dropout),)
    with threads_for(arch, spec, X.shape[0]):
        finite, value, gradient, _ = gradients_compiled(spec, theta, as_kernel_rows(X, sparse), Y,
                                                        as_kernel_weights(weights, theta), 0.0, reg,
                                                        PENALTY_CODES[penalty], False)
    raise_if_not_finite(finite, ("X", X), ("Y", Y))
    return float(value), gradient


def step(arch, theta, X, Y, lr, reg=0.0, penalty="l2", weights=None):
    """One gradient-descent step on theta in place; returns the loss before it. An update that is not
    finite is not taken: FloatingPointError, theta as it was."""
    sparse = is_sparse(X)
    spec = spec_of(arch, weights is not None, sparse)
    with threads_for(arch, spec, X.shape[0]):
        finite, value, _, updated = gradients_compiled(spec, theta, as_kernel_rows(X, sparse), Y,
                                                       as_kernel_weights(weights, theta), lr, reg,
                                                       PENALTY_CODES[penalty], True)
    raise_if_not_finite(finite, ("X", X), ("Y", Y))
    if not updated:
        raise FloatingPointError(f"the update is not finite (loss before it {value:.6g})")
    return float(value)


def train_loop(arch, theta, data, settings, curves):
    """fastmlp.reference.train_loop in one compiled call (Python sees none of the steps)."""
    (Xb, Yb, wb), (Xe, Ye, ye), (Xv, Yv, yv, wv) = data
    sparse = is_sparse(Xb)
    spec = spec_of(arch, len(wb) > 0 or len(wv) > 0, sparse, settings.dropout is not None)
    data = ((as_kernel_rows(Xb, sparse), Yb, wb), (as_kernel_rows(Xe, sparse), Ye, ye),
            (as_kernel_rows(Xv, sparse), Yv, yv, wv))
    settings = settings.completed(theta, arch.n_trained)
    _check_order(settings, Xb.shape[0])
    stopping = settings.stopping._replace(monitor=MONITORS[settings.stopping.monitor])
    settings = tuple(settings._replace(penalty=PENALTY_CODES[settings.penalty], stopping=tuple(stopping),
                                       optimizer=settings.optimizer.kernel_state(),
                                       dropout=dropout_state(settings.dropout)))
    with threads_for(arch, spec, Xb.shape[0]):
        return train_loop_compiled(spec, theta, data, settings, curves)


def _check_order(settings, rows):
    """The compiled loop reads settings.order unchecked: it must hold a row order of every epoch it runs."""
    order, steps_per_epoch = settings.order, -(-rows // settings.batch_size)
    if len(order):
        epochs = (settings.step0 + len(settings.lrs) - 1) // steps_per_epoch - settings.step0 // steps_per_epoch + 1
        if order.shape[0] < epochs or order.shape[1] != rows or order.min() < 0 or order.max() >= rows:
            raise ValueError(f"settings.order must hold {epochs} row orders of {rows} rows, got shape {order.shape}")


# The wrappers' compiled halves: each checks its inputs for NaN/inf first (returning False, and
# changing nothing, if one has any), then makes its outputs and scratch inside, in one call from Python.
# Two of them serve the four wrappers: Numba compiles each compiled function with everything it calls
# and optimises it all again, so every entry point costs its whole call tree (tens of seconds a dtype).

@nb.njit(**FAST)
def outputs_compiled(spec, theta, X, Y, w, reg, penalty):
    """(inputs finite, loss, out): out the network's output for X; the loss (the data loss plus the
    penalty) against Y, or 0 when Y has no rows (forward)."""
    out = np.empty((X.shape[0], spec[0][-1]), theta.dtype)
    if not (rows_finite(X) and all_finite(Y)):
        return False, np.nan, out
    data_loss = forward_into(spec, theta, X, Y, w, out, new_scratch(spec, theta, X, X.shape[0]))
    if Y.shape[0] == 0:
        return True, 0.0, out
    N = weight_total(w, X.shape[0])
    return True, data_loss + (0.0 if reg == 0 else reg / N * penalty_value(spec, theta, penalty)), out


@nb.njit(**FAST)
def gradients_compiled(spec, theta, X, Y, w, lr, reg, penalty, take_step):
    """(inputs finite, loss, gradient, update taken): without take_step, the loss and its gradient;
    with it, one gradient-descent step of lr on theta instead (the gradient then empty), an update that
    is not finite undone (from a copy of theta taken before it: the in-place path updates during its
    backward pass)."""
    gradient = np.empty(0 if take_step else theta.size, theta.dtype)
    if not (rows_finite(X) and all_finite(Y)):
        return False, np.nan, gradient, False
    scratch = new_scratch(spec, theta, X, X.shape[0])
    if not take_step:
        return True, loss_and_gradients_into(spec, theta, X, Y, w, reg, penalty, gradient, scratch), gradient, False
    before = theta.copy()
    value = step_into(spec, theta, X, Y, w, lr, reg, penalty, scratch)
    if all_finite(theta):
        return True, value, gradient, True
    theta[:] = before
    return True, value, gradient, False


def warmup(dtypes=("float64", "float32"), sparse=True):
    """Compile (or load from the cache) every kernel for each dtype: forward, loss, loss_and_gradients,
    step and train_loop on the fused and the layered path, and with `sparse` the layered path for
    scipy.sparse X as well; returns seconds taken per dtype. One compilation serves every network:
    the architecture reaches the kernels as arrays and codes."""
    import scipy.sparse
    from ..architecture import Architecture
    from ..loop import LoopSettings
    fused = Architecture((2, 2, 2), ("sigmoid",), "sigmoid", "mse", True)
    layered = Architecture((3, 2, 2), ("relu",), "softmax", "cross_entropy", True)
    cases = [(fused, np.asarray), (layered, np.asarray)] + ([(layered, scipy.sparse.csr_matrix)] if sparse else [])
    timings = {}
    for name in dtypes:
        dt = np.dtype(name)
        t0 = time.perf_counter()
        for arch, as_rows in cases:
            D, O = arch.sizes[0], arch.sizes[-1]
            X, Y, y, w = as_rows(np.zeros((3, D), dt)), np.zeros((3, O), dt), np.zeros(3, np.int64), np.zeros(0, dt)
            theta = np.zeros(arch.n_parameters, dt)
            forward(arch, theta, X)
            loss(arch, theta, X, Y)
            loss_and_gradients(arch, theta, X, Y)
            step(arch, theta, X, Y, 0.1)
            curves = tuple(np.zeros(1) for _ in range(5))
            settings = LoopSettings(3, np.full(1, 0.1), 0.0, "l2", 0.0, 1, 0, True)
            train_loop(arch, theta, ((X, Y, w), (X, Y, y), (X, Y, y, w)), settings, curves)
        timings[name] = time.perf_counter() - t0
    return timings
