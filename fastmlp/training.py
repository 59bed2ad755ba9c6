"""fit: batches and epochs, learning-rate schedules, optimizers, penalties, clipping, evaluation,
early stopping, History and divergence.

The steps themselves run in the backend's train_loop (a Python loop in the reference, one compiled
call in the kernels), shuffled epochs included (their row orders drawn up front); fit only cuts the run
into segments (at snapshots and every SEGMENT_STEPS steps, for the progress bar) and gathers what they
record.
"""

import math
import os
import warnings
import numpy as np

from .loop import BEST_STEP, STOPPED_AT, LoopSettings, Stopping
from .optimizers import get_optimizer
from .bricks import PENALTIES
from .dropout import Dropout
from .validation import (
    check_dropout, check_int, check_option, check_sample_weight, check_scalar, check_seed, n_rows,
)

SEGMENT_STEPS = 20_000


def constant_schedule(lr, decay, t):
    return np.full(t.shape, lr)


def inverse_schedule(lr, decay, t):
    """lr / (1 + decay * t)"""
    return lr / (1.0 + decay * t)


def exponential_schedule(lr, decay, t):
    """lr * exp(-decay * t)"""
    return lr * np.exp(-decay * t)


SCHEDULES = {
    "constant": constant_schedule,
    "inverse": inverse_schedule,
    "exponential": exponential_schedule,
}


class DivergenceError(FloatingPointError):
    """Training produced a NaN or infinite loss, gradient or parameter. The network keeps its last
    finite parameters (and the optimizer the state that goes with them). step: the 1-based step that
    diverged; `history` holds the run so far (None for MLP.step); `remedies` the usual cures, named
    as fit's arguments (the command line and the estimators name their own)."""

    remedies = ("a smaller lr, a decaying schedule ('inverse' or 'exponential'), a stronger reg or "
                "penalty='l1', or clip_norm")

    def __init__(self, step, last_loss, history, what=None):
        self.step, self.last_loss, self.history = step, last_loss, history
        self.what = what or (f"training diverged at step {step}: the loss, gradient or update is no longer "
                             f"finite (last finite loss {last_loss:.6g})")
        super().__init__(f"{self.what}; the network keeps its last finite parameters. Remedies: {self.remedies}.")


class History:
    """What a fit recorded: `frame` (pandas, one row per evaluation), parameter `snapshots`, the
    pre-update loss of every step run (`losses`), and how the run ended: `diverged_at` (the step whose
    loss or gradient was not finite), or `stopped_at` and `stop_reason` (early stopping), with
    `best_step`, whose parameters early stopping restored."""

    def __init__(self, frame, snapshots, losses, diverged_at=None, stopped_at=None, stop_reason=None,
                 best_step=None):
        self.frame = frame
        self.snapshots = snapshots          # list of (step, [parameters]) copies
        self.losses = losses
        self.diverged_at = diverged_at
        self.stopped_at, self.stop_reason, self.best_step = stopped_at, stop_reason, best_step

    def __repr__(self):
        ending = (f", diverged at step {self.diverged_at}" if self.diverged_at else
                  f", stopped at step {self.stopped_at}" if self.stopped_at else "")
        return f"History({len(self.frame)} evaluations, {len(self.snapshots)} snapshots{ending})"


def fit(net, X, y, *, lr, steps=None, epochs=None, batch_size=None, shuffle=False, optimizer="sgd",
        reg=0.0, penalty="l2", schedule="constant", decay=1e-3, clip_norm=None, eval_every=None,
        eval_set=None, early_stopping=False, monitor="val_loss", patience=10, tol=1e-4,
        snapshot_every=None, seed=None, progress=True, on_divergence="raise", sample_weight=None, dropout=0.0):
    """Train `net` in place; see MLP.fit for the arguments. Returns a History."""
    X = net._check_X(X)
    N = n_rows(X)
    Y, labels = net._targets("y", y, N)
    weights = no_weights(net) if sample_weight is None else check_sample_weight(
        "sample_weight", sample_weight, N, net.dtype)
    lr = check_scalar("lr", lr, low=0.0, low_inclusive=False)
    batch_size = N if batch_size is None else check_int("batch_size", batch_size)
    if batch_size > N:
        raise ValueError(f"batch_size must be at most the number of samples ({N}), got {batch_size}")
    steps_per_epoch = math.ceil(N / batch_size)
    if (steps is None) == (epochs is None):
        raise ValueError(f"give exactly one of steps and epochs, got steps={steps!r}, epochs={epochs!r}")
    steps = check_int("steps", steps) if epochs is None else check_int("epochs", epochs) * steps_per_epoch
    check_history_fits(steps)
    reg = check_scalar("reg", reg)
    penalty = check_option("penalty", penalty, PENALTIES)
    schedule = check_option("schedule", schedule, SCHEDULES)
    decay = check_scalar("decay", decay)
    clip_norm = 0.0 if clip_norm is None else check_scalar("clip_norm", clip_norm, low_inclusive=False)
    default_every = 100 if epochs is None else steps_per_epoch
    eval_every = default_every if eval_every is None else check_int("eval_every", eval_every)
    snapshot_every = steps if snapshot_every is None else check_int("snapshot_every", snapshot_every)
    on_divergence = check_option("on_divergence", on_divergence, {"raise", "stop"})
    for name, flag in (("shuffle", shuffle), ("early_stopping", early_stopping)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    validation = _check_eval_set(net, eval_set)
    monitor = check_option("monitor", monitor, {"loss", "val_loss", "val_score"})
    tol, patience = check_scalar("tol", tol), check_int("patience", patience)
    stopping = None
    if early_stopping:
        if monitor != "loss" and eval_set is None:
            raise ValueError(f"early_stopping with monitor={monitor!r} needs an eval_set")
        stopping = Stopping.start(net._theta, monitor, tol, patience, restore_best=True)
    seed = check_seed("seed", seed)
    rng = np.random.default_rng(seed)
    rates = check_dropout(dropout, len(net.sizes) - 2)
    lrs = SCHEDULES[schedule](lr, decay, np.arange(steps, dtype=np.float64))
    settings = LoopSettings(batch_size, lrs, reg, penalty, clip_norm, eval_every, 0, False,
                            get_optimizer(optimizer), stopping, dropout=dropout_of(rates, seed))
    batch_rows = N if shuffle or epochs is not None else batch_size   # else: the first batch, always
    epoch_orders = (lambda: rng.permutation(N)) if shuffle else None
    return _fit(net, ((X, Y, weights), (X, Y, labels), validation), settings, (batch_rows, epoch_orders),
                snapshot_every, progress, on_divergence)


CURVES = ("loss", "grad_norm", "score", "val_loss", "val_score")
ORDER_BUDGET = 1 << 22      # at most this many row indices of epoch orders at once (32 MiB)


def check_history_fits(steps):
    """Refuse, before allocating anything, a run whose per-step history (the CURVES and the rate of
    every step, float64) would take more than half of this machine's memory."""
    need = steps * 8 * (len(CURVES) + 1)
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):        # no sysconf: let the allocation decide
        return
    if need > memory / 2:
        raise ValueError(f"{steps} steps would need {need / 2**30:.3g} GiB for the history of every step (its "
                         f"loss, rate, ...), more than half of this machine's {memory / 2**30:.3g} GiB: train "
                         f"in several shorter fits instead (they continue from where the last one stopped)")


def _fit(net, data, settings, epochs, snapshot_every, progress, on_divergence):
    """fit's loop over segments, on checked arguments: each segment is one backend train_loop call,
    ending at snapshots, every SEGMENT_STEPS steps, and where the orders drawn for it would pass
    ORDER_BUDGET. data: ((X, Y, w) training rows, evaluation set, validation set) as train_loop takes it;
    epochs: (rows, epoch_orders): the batches walk the first `rows` training rows epoch by epoch, in
    order (epoch_orders None) or in the order that epoch_orders() draws for each epoch. snapshot_every
    None: no snapshots (the estimators keep none: two copies of a large network's parameters)."""
    (X, Y, w), evaluation, validation = data
    rows, epoch_orders = epochs
    lrs, batch_size = settings.lrs, settings.batch_size
    steps = len(lrs)
    steps_per_epoch = math.ceil(rows / batch_size)
    max_epochs = max(1, ORDER_BUDGET // rows)
    settings = settings.completed(net._theta, net._arch.n_trained)
    theta, stopping = net._theta, settings.stopping
    curves = {name: np.full(steps, np.nan) for name in CURVES}
    score_name = "accuracy" if net._arch.is_classifier() else "r2"
    has_val = n_rows(validation[0]) > 0
    snapshots = [] if snapshot_every is None else [(0, [p.copy() for p in net.parameters])]
    snapshot_every = snapshot_every or steps
    bar = _progress_bar(steps, progress)
    orders = {}                                             # epoch -> its row order
    done = 0
    while done < steps:
        first_epoch = done // steps_per_epoch
        stop = min(steps, done + SEGMENT_STEPS, (done // snapshot_every + 1) * snapshot_every,
                   (first_epoch + max_epochs) * steps_per_epoch)
        order = None
        if epoch_orders is not None:
            epochs = range(first_epoch, (stop - 1) // steps_per_epoch + 1)
            orders = {e: orders[e] if e in orders else epoch_orders() for e in epochs}
            order = np.stack([orders[e] for e in epochs])
        seg = slice(done, stop)
        segment = settings._replace(lrs=lrs[seg], step0=done, eval_last=stop == steps, order=order)
        seg_curves = tuple(curves[name][seg] for name in CURVES)
        segment_data = ((X[:rows], Y[:rows], w[:rows]), evaluation, validation)
        saved = _checkpoint(theta, settings)
        n = net._backend.train_loop(net._arch, theta, segment_data, segment, seg_curves)
        stopped = stopping.state[STOPPED_AT] > 0
        bad_step = None
        if not np.isfinite(theta).all():                       # step done + n's update overflowed:
            bad_step = done + n                                # run the segment again up to before it
            _restore(saved)
            if n > 1:
                net._backend.train_loop(net._arch, theta, segment_data,
                                        segment._replace(lrs=lrs[done:done + n - 1], eval_last=False), seg_curves)
        elif n < stop - done and not stopped:                  # a loss or gradient not finite
            bad_step = done + n + 1
        if bad_step is not None:
            if bar is not None:
                bar.close()
            return _diverged(curves, lrs, bad_step, snapshots, score_name, has_val, settings.eval_every,
                             on_divergence)
        done += n
        if snapshots and (done % snapshot_every == 0 or done == steps or stopped):
            snapshots.append((done, [p.copy() for p in net.parameters]))
        if bar is not None:
            bar.update(n)
        if stopped:
            break
    if bar is not None:
        bar.close()
    history = _history(curves, lrs, done, snapshots, score_name, has_val, settings.eval_every)
    if stopping.monitor != "none":
        history.best_step = int(stopping.state[BEST_STEP]) or None
        if stopping.restore_best and history.best_step:
            theta[...] = stopping.best_theta
    if stopped:
        history.stopped_at = done
        history.stop_reason = (f"{stopping.monitor} did not improve by more than tol={stopping.tol:g} for "
                               f"{stopping.patience} evaluations in a row")
    return history


def _checkpoint(theta, settings):
    """What a segment of training changes, with a copy of each: theta, the optimizer's state and the
    stopping rule's (so that a diverged segment can be run again up to its last finite step; the
    steps are deterministic, so the rerun gives the same bits)."""
    optimizer, stopping = settings.optimizer, settings.stopping
    return [(a, a.copy()) for a in (theta, optimizer.slots, optimizer.count, stopping.state, stopping.best_theta)]


def _restore(checkpoint):
    for array, saved in checkpoint:
        array[...] = saved


def _diverged(curves, lrs, bad_step, snapshots, score_name, has_val, eval_every, on_divergence):
    """Raise DivergenceError for 1-based step bad_step (or warn and return the history before it)."""
    history = _history(curves, lrs, bad_step - 1, snapshots, score_name, has_val, eval_every)
    history.diverged_at = bad_step
    losses = curves["loss"][:bad_step]
    finite = losses[np.isfinite(losses)]
    error = DivergenceError(bad_step, finite[-1] if len(finite) else float("nan"), history)
    if on_divergence == "raise":
        raise error
    warnings.warn(str(error), RuntimeWarning, stacklevel=4)
    return history


def dropout_of(rates, seed):
    """The run's Dropout, or None where no layer drops: keyed by `seed`, or by a seed drawn for the run."""
    if not any(rates):
        return None
    return Dropout(rates, int(np.random.default_rng().integers(2**32)) if seed is None else seed)


def no_weights(net):
    """The sample weights of rows that have none, as the backends take them: an empty array."""
    return np.zeros(0, net.dtype)


def _check_eval_set(net, eval_set):
    """(Xv, Yv, labels, weights) of eval_set=(X_val, y_val) or (X_val, y_val, sample_weight_val), or
    empty ones for None."""
    if eval_set is None:
        return (np.zeros((0, net.sizes[0]), net.dtype), np.zeros((0, net.sizes[-1]), net.dtype),
                np.zeros(0, np.int64), no_weights(net))
    if not isinstance(eval_set, (tuple, list)) or len(eval_set) not in (2, 3):
        raise ValueError("eval_set must be a pair (X_val, y_val) or a triple (X_val, y_val, sample_weight_val)")
    Xv = net._check_X(eval_set[0])
    weights = no_weights(net) if len(eval_set) == 2 or eval_set[2] is None else check_sample_weight(
        "eval_set sample_weight", eval_set[2], n_rows(Xv), net.dtype)
    return (Xv, *net._targets("eval_set y", eval_set[1], n_rows(Xv)), weights)


def _history(curves, lrs, n_steps, snapshots, score_name, has_val, eval_every):
    """One row per evaluated step (every eval_every steps, the last step of the run), up to n_steps;
    steps are 1-based. The score columns are named for what they hold: accuracy (classification) or r2
    (regression)."""
    evaluated = np.arange(eval_every - 1, n_steps, eval_every)
    if n_steps == len(lrs) and n_steps % eval_every:
        evaluated = np.append(evaluated, n_steps - 1)
    columns = {"step": evaluated + 1, "loss": curves["loss"][evaluated],
               score_name: curves["score"][evaluated], "lr": lrs[evaluated],
               "grad_norm": curves["grad_norm"][evaluated]}
    if has_val:
        columns["val_loss"] = curves["val_loss"][evaluated]
        columns[f"val_{score_name}"] = curves["val_score"][evaluated]
    import pandas as pd                 # on first use: a fifth of a second that `import fastmlp` need not pay
    return History(pd.DataFrame(columns), snapshots, curves["loss"][:n_steps].copy())


def _progress_bar(steps, progress):
    if not progress or steps < 2 * SEGMENT_STEPS:
        return None
    from tqdm import tqdm
    return tqdm(total=steps, unit="step", unit_scale=True, leave=False)
