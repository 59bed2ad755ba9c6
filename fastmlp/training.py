"""fit: batches, learning-rate schedules, penalties, clipping, evaluation, History and divergence.

The steps themselves run in the backend's train_loop (a Python loop in the reference, one compiled
call in the kernels); fit only cuts the run into segments (at snapshots, epochs and every
SEGMENT_STEPS steps, for the progress bar) and gathers what they record.
"""

import math
import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd

from .reference import PENALTIES
from .validation import check_int, check_option, check_scalar, check_seed

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
    """Training produced a NaN or infinite loss, gradient or weight; `history` holds the run so far."""

    def __init__(self, step, last_loss, history):
        self.step, self.last_loss, self.history = step, last_loss, history
        super().__init__(
            f"training diverged at step {step}: the loss or gradient is no longer finite "
            f"(last finite loss {last_loss:.6g}). Remedies: a smaller lr, a decaying schedule "
            f"('inverse' or 'exponential'), a stronger reg or penalty='l1', or clip_norm."
        )


class LoopSettings(NamedTuple):
    """How a backend's train_loop runs its steps (see fastmlp.reference.train_loop)."""

    batch_size: int
    lrs: np.ndarray          # float64 (steps,): the rate of each step
    reg: float
    penalty: str
    clip_norm: float         # 0: no clipping
    eval_every: int
    step0: int               # steps done before this call (eval_every counts from the fit's start)
    eval_last: bool          # evaluate after the last step too


class History:
    """What a fit recorded: `frame` (pandas, one row per evaluation) and parameter `snapshots`."""

    def __init__(self, frame, snapshots, diverged_at=None):
        self.frame = frame
        self.snapshots = snapshots          # list of (step, [parameters]) copies
        self.diverged_at = diverged_at

    def __repr__(self):
        return f"History({len(self.frame)} evaluations, {len(self.snapshots)} snapshots)"


def fit(net, X, y, *, lr, steps, batch_size=None, shuffle=False, reg=0.0, penalty="l2",
        schedule="constant", decay=1e-3, clip_norm=None, eval_every=100, eval_set=None,
        snapshot_every=None, seed=None, progress=True, on_divergence="raise"):
    """Train `net` in place by gradient descent; see MLP.fit for the arguments. Returns a History."""
    X = net._check_X(X)
    Y, labels = net._targets("y", y, len(X))
    lr = check_scalar("lr", lr, low=0.0, low_inclusive=False)
    steps = check_int("steps", steps)
    batch_size = len(X) if batch_size is None else check_int("batch_size", batch_size)
    if batch_size > len(X):
        raise ValueError(f"batch_size must be at most the number of samples ({len(X)}), got {batch_size}")
    reg = check_scalar("reg", reg)
    penalty = check_option("penalty", penalty, PENALTIES)
    schedule = check_option("schedule", schedule, SCHEDULES)
    decay = check_scalar("decay", decay)
    clip_norm = 0.0 if clip_norm is None else check_scalar("clip_norm", clip_norm, low_inclusive=False)
    eval_every = check_int("eval_every", eval_every)
    snapshot_every = steps if snapshot_every is None else check_int("snapshot_every", snapshot_every)
    on_divergence = check_option("on_divergence", on_divergence, {"raise", "stop"})
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
    validation = _check_eval_set(net, eval_set)
    rng = np.random.default_rng(check_seed("seed", seed))
    lrs = SCHEDULES[schedule](lr, decay, np.arange(steps, dtype=np.float64))
    settings = LoopSettings(batch_size, lrs, reg, penalty, clip_norm, eval_every, 0, False)
    return _fit(net, (X, Y, labels), validation, settings, shuffle, snapshot_every, rng, progress,
                on_divergence)


CURVES = ("loss", "grad_norm", "score", "val_loss", "val_score")


def _fit(net, train, validation, settings, shuffle, snapshot_every, rng, progress, on_divergence):
    """fit's loop over segments, on checked arguments: each segment is one backend train_loop call,
    within one epoch (shuffle) and ending at snapshots and every SEGMENT_STEPS steps."""
    X, Y, labels = train
    lrs, batch_size = settings.lrs, settings.batch_size
    steps = len(lrs)
    steps_per_epoch = math.ceil(len(X) / batch_size)
    theta = net._theta
    curves = {name: np.full(steps, np.nan) for name in CURVES}
    score_name = "accuracy" if net._arch.is_classifier() else "r2"
    snapshots = [(0, [p.copy() for p in net.parameters])]
    bar = _progress_bar(steps, progress)
    done = 0
    Xs, Ys = X[:batch_size], Y[:batch_size]            # shuffle=False: the fixed first batch
    while done < steps:
        into_epoch = done % steps_per_epoch if shuffle else 0
        if shuffle and into_epoch == 0:
            order = rng.permutation(len(X))
            Xs, Ys = X[order], Y[order]
        stop = min(steps, done + SEGMENT_STEPS, (done // snapshot_every + 1) * snapshot_every)
        if shuffle:
            stop = min(stop, done - into_epoch + steps_per_epoch)
        seg, first_row = slice(done, stop), into_epoch * batch_size
        data = ((Xs[first_row:], Ys[first_row:]), train, validation)
        segment = settings._replace(lrs=lrs[seg], step0=done, eval_last=stop == steps)
        n = net._backend.train_loop(net._arch, theta, data, segment, tuple(curves[name][seg] for name in CURVES))
        if n < stop - done:                                    # a loss or gradient not finite
            bad_step = done + n + 1
        elif not np.isfinite(theta).all():
            bad_step = done + n                                # its last update overflowed
        else:
            bad_step = None
        if bad_step is not None:
            if bar is not None:
                bar.close()
            return _diverged(curves, lrs, bad_step, snapshots, score_name, len(validation[0]) > 0,
                             on_divergence)
        done = stop
        if done % snapshot_every == 0 or done == steps:
            snapshots.append((done, [p.copy() for p in net.parameters]))
        if bar is not None:
            bar.update(n)
    if bar is not None:
        bar.close()
    return _history(curves, lrs, steps, snapshots, score_name, len(validation[0]) > 0)


def _diverged(curves, lrs, bad_step, snapshots, score_name, has_val, on_divergence):
    """Raise DivergenceError for 1-based step bad_step (or warn and return the history before it)."""
    history = _history(curves, lrs, bad_step - 1, snapshots, score_name, has_val, diverged_at=bad_step)
    losses = curves["loss"][:bad_step]
    finite = losses[np.isfinite(losses)]
    error = DivergenceError(bad_step, finite[-1] if len(finite) else float("nan"), history)
    if on_divergence == "raise":
        raise error
    warnings.warn(str(error), RuntimeWarning, stacklevel=4)
    return history


def _check_eval_set(net, eval_set):
    """(Xv, Yv, labels) of eval_set=(X_val, y_val), or empty ones for None."""
    if eval_set is None:
        return (np.zeros((0, net.sizes[0]), net.dtype), np.zeros((0, net.sizes[-1]), net.dtype),
                np.zeros(0, np.int64))
    if not isinstance(eval_set, (tuple, list)) or len(eval_set) != 2:
        raise ValueError("eval_set must be a pair (X_val, y_val)")
    Xv = net._check_X(eval_set[0])
    return (Xv, *net._targets("eval_set y", eval_set[1], len(Xv)))


def _history(curves, lrs, n_steps, snapshots, score_name, has_val, diverged_at=None):
    """One row per evaluated step (score recorded), up to n_steps; steps are 1-based. The score
    columns are named for what they hold: accuracy (classification) or r2 (regression)."""
    evaluated = np.flatnonzero(np.isfinite(curves["score"][:n_steps]))
    columns = {"step": evaluated + 1, "loss": curves["loss"][evaluated],
               score_name: curves["score"][evaluated], "lr": lrs[evaluated],
               "grad_norm": curves["grad_norm"][evaluated]}
    if has_val:
        columns["val_loss"] = curves["val_loss"][evaluated]
        columns[f"val_{score_name}"] = curves["val_score"][evaluated]
    return History(pd.DataFrame(columns), snapshots, diverged_at)


def _progress_bar(steps, progress):
    if not progress or steps < 2 * SEGMENT_STEPS:
        return None
    from tqdm import tqdm
    return tqdm(total=steps, unit="step", unit_scale=True, leave=False)
