"""Many training steps in one compiled call: fastmlp.reference.train_loop for any network, optimizer
and stopping rule.

Plain SGD steps that neither clip nor evaluate, on a layered batch of one chunk, take their update
during the backward pass (layers.step_in_place: no gradient buffer, no separate penalty, norm and
update passes); the others compute the gradient, its norm, and then update. The loop makes its
scratch once, then runs on borrowed arrays (fastmlp.kernels.memory.borrowed):
numba counts references to every array a function is handed, slices or unpacks, with atomic
instructions, and at the article's size that cost more than the step itself. The accuracy of the
article's arrangement is certified rather than recomputed (fastmlp.kernels.certify).
"""

import numba as nb
import numpy as np

from ..optimizers import SGD_CODE
from .certify import certified_correct, certified_setup
from .fastmath import EXP, FAST, IDENTITY, STRICT
from .layers import is_one_chunk, step_in_place, weight_total
from .memory import aligned_empty, borrowed
from .optimizers import update
from .passes import (
    article_views, forward_into, loss_and_gradients_into, n_trained, new_scratch, penalty_value,
)
from .plan import flat_parts, fused_plan, part_start
from .sparse import batch_buffer, by_kind, dense_gather, gather_rows, rows_of
from ..loop import BAD_COUNT, BEST, BEST_STEP, LR_SCALE, MONITORS, STOPPED_AT

NO_MONITOR, LOSS_MONITOR, VAL_LOSS_MONITOR = MONITORS["none"], MONITORS["loss"], MONITORS["val_loss"]
NORM_PART_MIN_ENTRIES = 1 << 18      # norm's least part: 0.06 ms for 641,000 float64 entries on one core


@nb.njit(inline="always", **FAST)
def sum_of_squares(a):
    """sum a**2 in float64."""
    total = 0.0
    for k in range(a.size):
        x = np.float64(a[k])
        total += x * x
    return total


@nb.njit(parallel=True, **FAST)
def squares_in_parts(a, totals):
    """sum_of_squares of totals.size parts of a side by side, each part's in totals."""
    parts = totals.size
    for p in nb.prange(parts):
        totals[p] = sum_of_squares(a[part_start(p, parts, a.size):part_start(p + 1, parts, a.size)])


@nb.njit(**FAST)
def norm(a, n):
    """fastmlp.reference.norm of a[:n] in float64: sqrt(sum a**2) (in plan.flat_parts parts side by side,
    added in order), or where that sum overflows, scaled by the largest magnitude first, so that finite
    entries near 1e300 have a finite norm; NaN if one is NaN, inf if one is inf."""
    parts = flat_parts(n, NORM_PART_MIN_ENTRIES)
    if parts == 1:
        total = sum_of_squares(a[:n])
    else:
        totals = np.empty(parts)
        squares_in_parts(a[:n], totals)
        total = 0.0
        for p in range(parts):
            total += totals[p]
    if np.isfinite(total):
        return np.sqrt(total)
    scale = 0.0
    for k in range(n):
        x = abs(np.float64(a[k]))
        if not x <= scale:          # larger, or NaN
            if x != x:
                return np.nan
            scale = x
    if scale == 0 or scale == np.inf:
        return scale
    total = 0.0
    for k in range(n):
        x = a[k] / scale
        total += x * x
    return scale * np.sqrt(total)


@nb.njit(inline="always", **STRICT)
def row_weight(w, i):
    """Row i's sample weight: w[i], or 1 when the rows have none (w empty)."""
    return 1.0 if w.shape[0] == 0 else np.float64(w[i])


@nb.njit(**STRICT)
def accuracy(out, y, w):
    """The fraction of rows whose predicted class is y: argmax (the first of equals, as np.argmax), or
    out > 0.5 for one output; each row counts its weight w[i] (1 each if w is empty)."""
    N, O = out.shape
    correct = 0.0
    total = 0.0
    for i in range(N):
        if O == 1:
            predicted = 1 if out[i, 0] > 0.5 else 0
        else:
            predicted = 0
            for o in range(1, O):
                if out[i, o] > out[i, predicted]:
                    predicted = o
        if predicted == y[i]:
            correct += row_weight(w, i)
        total += row_weight(w, i)
    return correct / total


@nb.njit(**STRICT)
def r2(Y, out, w):
    """R^2 as fastmlp.reference.r2 (scikit-learn's r2_score, outputs averaged; rows weighted by w)."""
    N, O = Y.shape
    total = 0.0
    for o in range(O):
        mean = 0.0
        w_sum = 0.0
        for i in range(N):
            mean += row_weight(w, i) * Y[i, o]
            w_sum += row_weight(w, i)
        mean /= w_sum
        ss_res = 0.0
        ss_tot = 0.0
        for i in range(N):
            ss_res += row_weight(w, i) * (Y[i, o] - out[i, o]) ** 2
            ss_tot += row_weight(w, i) * (Y[i, o] - mean) ** 2
        if ss_tot > 0:
            total += 1 - ss_res / ss_tot
        elif ss_res == 0:
            total += 1.0
    return total / O


@nb.njit(**STRICT)
def subset_accuracy(out, Y, w):
    """The fraction of rows whose every output is on the same side of 0.5 as its target (multilabel),
    each row counting its weight."""
    N, O = out.shape
    correct = 0.0
    total = 0.0
    for i in range(N):
        right = True
        for o in range(O):
            right = right and (out[i, o] > 0.5) == (Y[i, o] > 0.5)
        if right:
            correct += row_weight(w, i)
        total += row_weight(w, i)
    return correct / total


@nb.njit(inline="always", **FAST)
def evaluate(spec, theta, X, Y_loss, Y, y, w, out, scratch):
    """(data loss against Y_loss (0 if it has no rows), score): accuracy against labels y for
    classification outputs (subset accuracy against Y when y has no rows), R^2 against targets Y for
    value outputs (identity, exp); rows weighted by w if it has entries. out (N, O) is scratch."""
    data_loss = forward_into(spec, theta, X, Y_loss, w, out, scratch)
    if spec[2] == IDENTITY or spec[2] == EXP:
        return data_loss, r2(Y, out, w)
    if y.shape[0] == 0:
        return data_loss, subset_accuracy(out, Y, w)
    return data_loss, accuracy(out, y, w)


@nb.njit(**STRICT)
def should_stop(stopping, value, theta, step, lr):
    """fastmlp.reference.should_stop: the stopping rule at one evaluation of value (lower is better)."""
    _, tol, patience, restore_best, adaptive, state, best_theta = stopping
    state[BAD_COUNT] = state[BAD_COUNT] + 1 if value > state[BEST] - tol else 0.0
    if value < state[BEST]:
        state[BEST] = value
        state[BEST_STEP] = step
        if restore_best:
            best_theta[:] = theta
    if state[BAD_COUNT] < patience:
        return False
    if adaptive and lr * state[LR_SCALE] > 1e-6:
        state[LR_SCALE] /= 5.0
        state[BAD_COUNT] = 0.0
        return False
    state[STOPPED_AT] = step
    return True


@nb.njit(**STRICT)
def dense_certified_setup(Xe, certify, H, O, block):
    """certify.certified_setup for the evaluation set Xe where the run certifies (else for no rows)."""
    return certified_setup(Xe if certify else Xe[:0], H, O, block)


@nb.njit(**STRICT)
def sparse_certified_setup(Xe, certify, H, O, block):
    """Never certifies: the certified arrangement is the fused path's, dense X only."""
    return certified_setup(np.empty((0, Xe.shape[1]), Xe.data.dtype), H, O, block)


@nb.njit(**FAST)
def dense_certified_score(Xe, certified, ye, spec, theta):
    """The evaluation set's accuracy, certified (certify.certified_correct)."""
    W1, b1, W2, b2 = article_views(spec, theta)
    return certified_correct(certified, Xe, ye, W1, b1, W2, b2) / Xe.shape[0]


@nb.njit(**STRICT)
def sparse_certified_score(Xe, certified, ye, spec, theta):
    return 0.0


setup_certified = by_kind(dense_certified_setup, sparse_certified_setup)
certified_score = by_kind(dense_certified_score, sparse_certified_score)


@nb.njit(**FAST)
def train_loop_compiled(spec, theta, data, settings, curves):
    """The steps of fastmlp.reference.train_loop, compiled: see there for the arguments (penalty,
    optimizer and stopping as the kernels take them). Makes the scratch once, then runs train_steps,
    which borrows everything while this call keeps it alive."""
    (Xb, Yb, wb), (Xe, _, _), (Xv, _, _, _) = data
    batch_size, order = settings[0], settings[10]
    sizes = spec[0]
    D, H, O = sizes[0], sizes[1], sizes[sizes.size - 1]
    grad = aligned_empty(theta.shape, theta.dtype)
    outputs = (np.empty((Xe.shape[0], O), theta.dtype), np.empty((Xv.shape[0], O), theta.dtype))
    gathered = order.shape[0] > 0
    batch = (batch_buffer(Xb, batch_size if gathered else 0),
             np.empty((batch_size if gathered else 0, O), Yb.dtype),
             np.empty(batch_size if gathered and wb.shape[0] > 0 else 0, wb.dtype))
    rows = max(min(batch_size, Xb.shape[0]), Xe.shape[0], Xv.shape[0])
    scratch = new_scratch(spec[:7] + (settings[11],), theta, Xb, rows)     # (room for dropout's kept f'(z))
    certify = spec[5] and theta.itemsize == 8 and O >= 2 and Xe.shape[0] > 0
    block = fused_plan(Xe.shape[0], D, H, O, 8)[0] if certify else 0     # (its scratch is D x block)
    certified = setup_certified(Xe, certify, H, O, block)
    buffers = (grad, outputs, batch, scratch, certified)
    return train_steps(spec, theta, data, settings, curves, buffers, certify)


@nb.njit(**FAST)
def train_steps(spec, theta, data, settings, curves, buffers, certify):
    """train_loop_compiled's loop, on borrowed arrays (its caller owns them)."""
    spec, theta, (grad, (h_e, h_v), (Xg, Yg, wg), scratch, certified) = borrowed((spec, theta, buffers))
    (Xb, Yb, wb), (Xe, Ye, ye), (Xv, Yv, yv, wv) = borrowed(data)
    batch_size, lrs, reg, penalty, clip_norm, eval_every, step0, eval_last, optimizer, stopping, order, \
        dropout = borrowed(settings)
    losses, grad_norms, scores, val_losses, val_scores = borrowed(curves)
    monitor, lr_scale = stopping[0], stopping[5][LR_SCALE]
    n_steps = lrs.size
    Nb = Xb.shape[0]
    steps_per_epoch = (Nb + batch_size - 1) // batch_size
    first_epoch = step0 // steps_per_epoch
    n = n_trained(spec, theta)
    in_place = optimizer[0] == SGD_CODE and clip_norm == 0 and not spec[5]
    trains = spec[:7] + (dropout,)          # spec with the run's dropout (dropout[1]: the step), for training
    loss_sum = 0.0
    rows_seen = 0
    for t in range(n_steps):
        epoch = (step0 + t) // steps_per_epoch
        start = (step0 + t - epoch * steps_per_epoch) * batch_size
        stop = min(start + batch_size, Nb)
        if order.shape[0] > 0:
            rows = order[epoch - first_epoch][start:stop]
            X = gather_rows(Xb, rows, Xg)
            dense_gather(Yb, rows, Yg)
            if wg.shape[0] > 0:
                for i in range(stop - start):
                    wg[i] = wb[rows[i]]
            Y, w = Yg[:stop - start], wg[:stop - start]
        else:
            X, Y, w = rows_of(Xb, start, stop), Yb[start:stop], wb[start:stop]
        evaluating = (step0 + t + 1) % eval_every == 0 or (eval_last and t == n_steps - 1)
        if dropout.size > 0:
            dropout[1] = step0 + t
        if in_place and not evaluating and is_one_chunk(spec, stop - start, theta.itemsize):
            loss = step_in_place(trains, theta, X, Y, w, lrs[t] * lr_scale, reg, penalty, scratch[1], np.bool_(True))
            losses[t] = loss
            if not np.isfinite(loss):
                return t
        else:
            loss = loss_and_gradients_into(trains, theta, X, Y, w, reg, penalty, grad, scratch)
            grad_norm = norm(grad, n)
            losses[t] = loss
            if evaluating:
                grad_norms[t] = grad_norm
            if not (np.isfinite(loss) and np.isfinite(grad_norm)):
                return t
            if 0 < clip_norm < grad_norm:
                scale = theta.dtype.type(clip_norm / grad_norm)
                for k in range(n):
                    grad[k] *= scale
            update(optimizer, theta, grad, lrs[t] * lr_scale, n)
        loss_sum += loss * (stop - start)
        rows_seen += stop - start
        if evaluating:
            if certify:
                scores[t] = certified_score(Xe, certified, ye, spec, theta)
            elif Xe.shape[0] > 0:
                scores[t] = evaluate(spec, theta, Xe, Ye[:0], Ye, ye, wb[:0], h_e, scratch)[1]
            if Xv.shape[0] > 0:
                Nv = weight_total(wv, Xv.shape[0])
                data_loss, val_scores[t] = evaluate(spec, theta, Xv, Yv, Yv, yv, wv, h_v, scratch)
                val_losses[t] = data_loss + (0.0 if reg == 0 else reg / Nv * penalty_value(spec, theta, penalty))
            if monitor != NO_MONITOR:
                value = (loss_sum / rows_seen if monitor == LOSS_MONITOR
                         else val_losses[t] if monitor == VAL_LOSS_MONITOR else -val_scores[t])
                if should_stop(stopping, value, theta, step0 + t + 1, lrs[t]):
                    return t + 1
                lr_scale = stopping[5][LR_SCALE]
            loss_sum = 0.0
            rows_seen = 0
    return n_steps
