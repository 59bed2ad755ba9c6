"""What a backend's train_loop takes besides the data: LoopSettings, and the Stopping rule.

Both backends (fastmlp.reference.train_loop and its compiled twin) run the same loop on these; fit
(fastmlp.training) and the scikit-learn estimators (fastmlp.sklearn) build them.
"""

from typing import NamedTuple

import numpy as np

MONITORS = {"none": 0, "loss": 1, "val_loss": 2, "val_score": 3}
NEVER = np.iinfo(np.int64).max        # the patience that never runs out (patience=math.inf)
BEST, BAD_COUNT, LR_SCALE, STOPPED_AT, BEST_STEP = range(5)      # the entries of Stopping.state


class Stopping(NamedTuple):
    """Stop when the monitored value has not improved by tol for `patience` evaluations in a row.

    monitor: "none", "loss" (the training loss, averaged over the rows trained on since the last
    evaluation: the epoch's loss when evaluating once per epoch), "val_loss" or "val_score" (of the
    validation set; a score improves upwards). An evaluation whose value is not below best - tol (above
    best + tol for a score) counts as bad; one below best becomes the best. patience math.inf: never
    runs out (scikit-learn's n_iter_no_change=np.inf). With `adaptive`
    (scikit-learn's learning_rate="adaptive"), patience running out divides the rates by 5 instead,
    until the rate is at most 1e-6. With `restore_best`, best_theta keeps the best parameters.
    state: float64 [best, bad count, rate scale, step stopped at (0: not stopped), best step], carried
    across train_loop calls like an optimizer's state.
    """

    monitor: str
    tol: float
    patience: int
    restore_best: bool
    adaptive: bool
    state: np.ndarray
    best_theta: np.ndarray

    @classmethod
    def start(cls, theta, monitor="none", tol=0.0, patience=1, restore_best=False, adaptive=False):
        state = np.array([np.inf, 0.0, 1.0, 0.0, 0.0])
        best_theta = theta.copy() if restore_best else theta[:0].copy()
        patience = NEVER if patience == np.inf else int(patience)
        return cls(monitor, float(tol), patience, bool(restore_best), bool(adaptive), state, best_theta)


class LoopSettings(NamedTuple):
    """How a backend's train_loop runs its steps (see fastmlp.reference.train_loop).

    The batches walk the training rows in epochs of ceil(rows / batch_size) steps (the last batch of an
    epoch may be smaller), counting from the fit's first step; `order` (epochs, rows) int64 holds the
    row order of each epoch this call touches, from the epoch of step0 on (None: rows in order).
    optimizer: a fastmlp.optimizers.Optimizer (None: plain gradient descent). stopping: a Stopping
    (None: none).
    """

    batch_size: int
    lrs: np.ndarray          # float64 (steps,): the rate of each step
    reg: float
    penalty: str
    clip_norm: float         # 0: no clipping
    eval_every: int
    step0: int               # steps done before this call (batches and eval_every count from the fit's start)
    eval_last: bool          # evaluate after the last step too
    optimizer: object = None
    stopping: Stopping = None
    order: np.ndarray = None
    dropout: object = None   # a fastmlp.dropout.Dropout (its step: the fit's step, counted per step), None: none

    def completed(self, theta, n_trained):
        """These settings with every default made concrete for theta: an optimizer with its state
        prepared, a Stopping, an order array ((0, 0) for rows in order)."""
        from .optimizers import SGD
        optimizer = (self.optimizer or SGD()).prepare(theta, n_trained)
        stopping = self.stopping or Stopping.start(theta)
        order = np.zeros((0, 0), np.int64) if self.order is None else self.order
        return self._replace(optimizer=optimizer, stopping=stopping, order=order)
