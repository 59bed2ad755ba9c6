"""scikit-learn estimators on fastmlp's bricks and compiled loop: MLPClassifier and MLPRegressor.

Drop-in for sklearn.neural_network's: the same parameters with the same meanings and defaults, the
same fitted attributes, the same initialisation, batches, shuffles, updates and convergence rule (with
the same random_state, a fit walks the same path, to rounding), plus fastmlp's own `backend` ("numba":
whole epochs in one compiled call; "numpy": the reference) and `dtype` (None: float32 for float32 X,
else float64, as scikit-learn), and what scikit-learn's users ask for: MLPClassifier's `class_weight`
(None, "balanced" or a dict, as scikit-learn's classifiers take it, multiplied into sample_weight), a
validation set of one's own for early stopping (fit's X_val, y_val, sample_weight_val), more
activations, and `dropout` (one rate, or one per hidden layer; sgd and adam; fastmlp.dropout). Sparse
X (scipy.sparse, CSR or CSC, as scikit-learn's) is accepted: the first layer computes on its nonzeros
(fastmlp.kernels.sparse). Differences, by design: sample weights must be non-negative
(scikit-learn's MLP takes negative ones); MLPRegressor(loss="poisson") refuses negative targets
(scikit-learn's returns a NaN loss); a multi-output regressor's loss_curve_ (sgd, adam) holds
sum((Y - out)**2) / (2N), the loss its gradient is the gradient of (scikit-learn divides the value, not
the gradient, by the number of outputs); with lbfgs, whose line search compares values, fastmlp hands
scipy scikit-learn's value (for a classifier, its log loss of clipped probabilities), so that both walk
the same path, and loss_ is that value.

Needs scikit-learn: pip install 'fastmlp[sklearn]'.
"""

import math
import numbers
import warnings

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
except ImportError:
    raise ImportError("fastmlp.sklearn needs scikit-learn: pip install 'fastmlp[sklearn]'") from None

import numpy as np
import scipy.optimize
from scipy.special import xlogy
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import (
    _check_sample_weight, check_array, check_is_fitted, column_or_1d, validate_data,
)

from . import training
from .dropout import Dropout
from .loop import BAD_COUNT, BEST, BEST_STEP, LoopSettings, Stopping
from .network import MLP, glorot_init
from .optimizers import Adam, Momentum
from .validation import check_dropout

# scikit-learn's names of the activations, then the bricks it lacks under fastmlp's names
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
               "leaky_relu": "leaky_relu", "elu": "elu", "softplus": "softplus", "gelu": "gelu", "silu": "silu"}
SKLEARN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
OUTPUTS = {"identity": "identity", "logistic": "sigmoid", "softmax": "softmax", "exp": "exp"}
LOSSES = {"identity": "mse", "exp": "poisson", "logistic": "cross_entropy", "softmax": "cross_entropy"}
REGRESSION_LOSSES = {"squared_error": "identity", "poisson": "exp"}      # loss -> out_activation_
SOLVERS = ("lbfgs", "sgd", "adam")
NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain large values and need to "
              "be preprocessed.")            # scikit-learn's words
LEARNING_RATES = ("constant", "invscaling", "adaptive")
SPARSE_FORMATS = ("csr", "csc")                 # as scikit-learn's MLP: CSR for the kernels, CSC converted


def clipped_log_loss(Y, P, weights, binary):
    """scikit-learn's MLP log loss (sklearn.neural_network._base.log_loss and binary_log_loss): the
    probabilities P (N, O) clipped to [eps, 1 - eps] of their dtype, the (weighted) mean over the rows
    of -sum(Y log P) for softmax outputs, or with `binary` (sigmoid outputs: one column, or multilabel)
    of -sum(Y log P + (1 - Y) log(1 - P)). Y: 0/1 (N, O)."""
    eps = np.finfo(P.dtype).eps
    P = np.clip(P, eps, 1 - eps)
    rows = xlogy(Y, P) + xlogy(1 - Y, 1 - P) if binary else xlogy(Y, P)
    return float(-np.average(rows, weights=weights, axis=0).sum())


class _BaseMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share: their parameters' checks, and fitting (each class's
    __init__ lists its parameters, in scikit-learn's order)."""

    # -- parameters, checked in one place ---------------------------------------------------------

    def _check_params(self):
        """The hidden layer sizes as a list; raises ValueError naming any parameter out of range."""
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}")
        options = {"activation": ACTIVATIONS, "solver": SOLVERS, "learning_rate": LEARNING_RATES,
                   "backend": ("numba", "numpy")}
        for name, allowed in options.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {sorted(allowed)}, got {getattr(self, name)!r}")
        ranges = {"alpha": "[0, inf)", "learning_rate_init": "(0, inf)", "power_t": "[0, inf)",
                  "tol": "[0, inf)", "momentum": "[0, 1]", "validation_fraction": "(0, 1)", "beta_1": "[0, 1)",
                  "beta_2": "[0, 1)", "epsilon": "(0, inf)"}
        for name, interval in ranges.items():
            value, high = getattr(self, name), (math.inf if "inf" in interval else 1.0)
            real = isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)
            if not (real and (0 <= value if interval[0] == "[" else 0 < value)
                    and (value <= high if interval[-1] == "]" else value < high)):
                raise ValueError(f"{name} must be a real number in {interval}, got {value!r}")
        for name in ("max_iter", "n_iter_no_change", "max_fun"):
            value = getattr(self, name)
            if name == "n_iter_no_change" and isinstance(value, numbers.Real) and value == math.inf:
                continue                                        # as scikit-learn: never stop
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1{' or numpy.inf' * (name == 'n_iter_no_change')}, "
                                 f"got {value!r}")
        batch = self.batch_size
        if batch != "auto" and (not isinstance(batch, numbers.Integral) or isinstance(batch, bool) or batch < 1):
            raise ValueError(f"batch_size must be 'auto' or an integer >= 1, got {batch!r}")
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.dtype not in (None, "float32", "float64", np.float32, np.float64):
            raise ValueError(f"dtype must be None, 'float32' or 'float64', got {self.dtype!r}")
        rates = check_dropout(self.dropout, len(sizes))
        if any(rates) and self.solver == "lbfgs":
            raise ValueError(f"dropout={self.dropout!r} needs solver 'sgd' or 'adam' (lbfgs's line search needs "
                             f"one loss function, not one per step's masks)")
        self._check_own_params()
        return [int(s) for s in sizes]

    # -- fitting ---------------------------------------------------------------------------------------

    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None, sample_weight_val=None):
        """Fit the model to X (n_samples, n_features) and y; returns self. sample_weight (n_samples,):
        each row's weight in its batch's loss, as scikit-learn 1.7 defines it. X_val, y_val (and
        sample_weight_val): a validation set of the user's for early_stopping (as scikit-learn's
        HistGradientBoosting estimators take it), instead of a validation_fraction split of X;
        validation_scores_ are its (weighted) scores."""
        return self._fit(X, y, sample_weight, incremental=False, given=(X_val, y_val, sample_weight_val))

    def _fit(self, X, y, sample_weight, incremental, given=(None, None, None)):
        hidden = self._check_params()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        self._check_given_validation(*given)
        X, y, labels = self._validate_input(X, y, incremental, reset=first_pass)
        weights = self._row_weights(sample_weight, X, labels, incremental)
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(Y, [X.shape[1], *hidden, Y.shape[1]], X.dtype)
        net = self._network()
        if (X.shape[1], Y.shape[1]) != (net.sizes[0], net.sizes[-1]):     # coefs_ set by hand (see _network)
            raise ValueError(f"X has {X.shape[1]} features and y {Y.shape[1]} output columns, but coefs_ take "
                             f"{net.sizes[0]} inputs and give {net.sizes[-1]} outputs")
        validation = None if given[0] is None else self._validation_set(*given, net.dtype)
        X = _rows_as(X, net.dtype)
        Y = np.require(Y, net.dtype, ["C", "W"])
        weights = None if weights is None else weights.astype(net.dtype)
        if self.solver == "lbfgs":
            self._fit_lbfgs(net, X, Y, weights)
        else:
            self._fit_stochastic(net, X, Y, weights, incremental, validation)
        self._publish(net)
        return self

    def _row_weights(self, sample_weight, X, labels, incremental):
        """Each row's weight (n_samples,): sample_weight (checked as scikit-learn checks it, and
        non-negative) times the class weights of the row's labels; None when both are None."""
        class_weight = getattr(self, "class_weight", None)
        if sample_weight is None and class_weight is None:
            return None
        weights = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        if class_weight is not None:
            if class_weight == "balanced" and incremental:
                raise ValueError("class_weight 'balanced' is not supported for partial_fit: the classes' "
                                 "frequencies are those of all the data, not of one call's. Use "
                                 "sklearn.utils.class_weight.compute_class_weight('balanced', classes=..., y=...) "
                                 "and pass the result as a dict")
            weights = weights * compute_sample_weight(class_weight, labels)
        if not weights.any():
            raise ValueError("sample_weight (times class_weight) must not be all zero")
        return weights

    def _check_given_validation(self, X_val, y_val, sample_weight_val):
        """X_val and y_val come together, and only for early stopping (sgd or adam)."""
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val must be given together (a validation set), got only "
                             + ("X_val" if y_val is None else "y_val"))
        if X_val is None and sample_weight_val is not None:
            raise ValueError("sample_weight_val weights the rows of X_val: give X_val and y_val with it")
        if X_val is not None and not (self.early_stopping and self.solver != "lbfgs"):
            raise ValueError("X_val and y_val are a validation set for early stopping: set early_stopping=True "
                             "(with solver 'sgd' or 'adam'), or leave them out")

    def _validation_set(self, X_val, y_val, sample_weight_val, dtype):
        """(X_val, Y_val, labels, weights) checked as X, y and sample_weight are, in the network's dtype."""
        X_val = validate_data(self, X_val, accept_sparse=SPARSE_FORMATS, reset=False, dtype=(np.float64, np.float32))
        Y_val = self._validation_targets(y_val, X_val.shape[0])
        weights = training.no_weights(self._net) if sample_weight_val is None else _check_sample_weight(
            sample_weight_val, X_val, dtype=dtype, ensure_non_negative=True)
        return (_rows_as(X_val, dtype), np.require(Y_val, dtype, ["C", "W"]),
                self._labels(Y_val), np.require(weights, dtype, ["C", "W"]))

    def _initialize(self, Y, sizes, dtype):
        """A fresh network, initialised as scikit-learn initialises its MLP (same draws)."""
        self.n_iter_, self.t_ = 0, 0
        self.n_outputs_, self.n_layers_ = Y.shape[1], len(sizes)
        self.out_activation_ = self._out_activation()
        net = self._build_network(sizes, self.dtype if self.dtype is not None else dtype)
        activation = ACTIVATIONS[self.activation]
        net.weights, net.biases = glorot_init(self._random_state, sizes, (activation,) * max(1, len(sizes) - 2))
        self._net = net
        self._publish(net)
        if self.solver != "lbfgs":
            self.loss_curve_ = []
            self._stopping = None
            self.validation_scores_ = self.best_validation_score_ = self.best_loss_ = None   # _start_records

    def _build_network(self, sizes, dtype):
        """The fastmlp network of this estimator's bricks for layer widths `sizes` (out_activation_ set),
        its parameters zero: every caller sets them."""
        return MLP._zeroed(sizes, activation=ACTIVATIONS[self.activation], output=OUTPUTS[self.out_activation_],
                           loss=LOSSES[self.out_activation_], init="glorot", backend=self.backend, dtype=np.dtype(dtype))

    def _new_optimizer(self):
        """The solver's update rule with empty state: sgd's (heavy-ball or Nesterov momentum) or adam's."""
        if self.solver == "sgd":
            return Momentum(self.momentum, self.nesterovs_momentum)
        return Adam(self.beta_1, self.beta_2, self.epsilon)

    def _new_stopping(self, theta, previous=None):
        """scikit-learn's convergence rule: n_iter_no_change + 1 epochs in a row without an improvement by
        tol of the training loss (of the validation score with early_stopping, which keeps the best
        parameters); with learning_rate="adaptive" (sgd) running out divides the rate by 5 instead.
        A warm-start fit goes on from the `previous` fit's best value, count of epochs without
        improvement and best parameters, as scikit-learn's keeps best_loss_ (best_validation_score_,
        _best_coefs) and _no_improvement_count across such fits (the rate scale starts afresh, as its
        new optimizer's rate does): a count of 9 of 10 left the next fit 2 epochs, where a fresh rule
        ran 3. fastmlp's squared error sums over the outputs (sum / 2N; scikit-learn's averages over them),
        so the rule compares it with tol times n_outputs_: with tol itself, tol=0.01 on two targets
        stopped a fit an epoch later than scikit-learn's."""
        tol = self.tol * self._loss_scale()
        stopping = Stopping.start(theta, "val_score" if self.early_stopping else "loss", tol,
                                  self.n_iter_no_change + 1, restore_best=self.early_stopping,
                                  adaptive=self.solver == "sgd" and self.learning_rate == "adaptive")
        if previous is not None and previous.monitor == stopping.monitor and previous.best_theta.shape == \
                stopping.best_theta.shape:
            carried = [BEST, BAD_COUNT, BEST_STEP]
            stopping.state[carried] = previous.state[carried]
            stopping.best_theta[...] = previous.best_theta
        return stopping

    def _loss_scale(self):
        """fastmlp's training loss over scikit-learn's: n_outputs_ for a squared error monitored without
        early stopping (fastmlp's sums over the outputs, scikit-learn's averages), else 1."""
        mse = LOSSES[self.out_activation_] == "mse"
        return self.n_outputs_ if mse and not self.early_stopping else 1

    def _network(self):
        """The fastmlp network whose parameters coefs_ and intercepts_ are; arrays that users set in their
        place (or that a copy of the estimator holds) are copied into it first; where coefs_ and
        intercepts_ were set on an estimator never fitted (as scikit-learn's fits on from them), one of
        their shapes and dtype is built."""
        net = getattr(self, "_net", None)
        if net is None:
            if not hasattr(self, "out_activation_"):
                raise ValueError(f"coefs_ and intercepts_ set by hand need out_activation_ too (one of "
                                 f"{sorted(OUTPUTS)}), as scikit-learn's do")
            sizes = [self.coefs_[0].shape[0], *(np.shape(c)[1] for c in self.coefs_)]
            for name, value in (("n_iter_", 0), ("t_", 0), ("n_layers_", len(sizes)), ("n_outputs_", sizes[-1]),
                                ("n_features_in_", sizes[0])):
                if not hasattr(self, name):
                    setattr(self, name, value)
            given = np.result_type(*self.coefs_, *self.intercepts_)
            dtype = self.dtype or (np.float32 if given == np.float32 else np.float64)
            net = self._net = self._build_network(sizes, dtype)
        if net.activations and net.activations[0] != ACTIVATIONS[self.activation]:     # set_params(activation=)
            rebuilt = self._build_network(net.sizes, net.dtype)          # after a fit: scikit-learn's next
            rebuilt._theta[...] = net._theta                             # forward pass applies it
            net = self._net = rebuilt
            self._publish(net)
        if net.backend != self.backend:
            net.backend = self.backend
        published = getattr(self, "_published", [])
        current = [*self.coefs_, *self.intercepts_]
        owner = net._theta if net._theta.base is None else net._theta.base    # (aligned_flat: a view)
        if not (len(current) == len(published) and all(a is b and a.base is owner
                                                        for a, b in zip(current, published))):
            net.weights, net.biases = self.coefs_, self.intercepts_
        return net

    def _publish(self, net):
        """coefs_ and intercepts_: writable views into the network's parameters (as scikit-learn's, which
        its updates change in place), so that predicting copies nothing."""
        self.coefs_, self.intercepts_ = net._arch.split(net._theta)
        self._published = [*self.coefs_, *self.intercepts_]

    def _fit_lbfgs(self, net, X, Y, weights):
        """L-BFGS-B through scipy.optimize, fastmlp computing the loss and its gradient. The value handed
        to scipy is scikit-learn's: its squared error averages over the outputs too (mean / 2), while its
        gradient is that of sum / (2N), as fastmlp's; the line search compares values, so a multi-output
        regressor follows scikit-learn's path only with its value (with fastmlp's own it ended 0.15 from
        scikit-learn's parameters on make_regression with two targets). A classifier's value likewise is
        scikit-learn's log loss of clipped probabilities (clipped_log_loss), one more forward pass an
        evaluation: fastmlp's exact loss from the logits differs where the line search tries a long
        step that saturates some outputs (11.2 against 5.1 at one such point), and the paths parted."""
        arch, backend = net._arch, net._backend
        n_outputs = Y.shape[1] if arch.loss == "mse" else 1
        n_weights = arch.n_weights
        N = X.shape[0] if weights is None else float(np.sum(weights))

        def loss_and_gradient(theta):
            theta = theta.astype(net.dtype)
            value, gradient = backend.loss_and_gradients(arch, theta, X, Y, self.alpha, "l2", weights)
            penalty = self.alpha / (2 * N) * float(np.dot(theta[:n_weights], theta[:n_weights]))
            if arch.loss == "cross_entropy":
                P = backend.forward(arch, theta, X)
                value = clipped_log_loss(Y, P, weights, arch.output == "sigmoid") + penalty
            elif n_outputs > 1:
                value = (value - penalty) / n_outputs + penalty
            return value, gradient.astype(np.float64)

        result = scipy.optimize.minimize(
            loss_and_gradient, net._theta.astype(np.float64), method="L-BFGS-B", jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        if result.status != 0:
            warnings.warn(f"lbfgs failed to converge after {result.nit} iterations ({result.message}): "
                          "increase max_iter or scale the data", ConvergenceWarning)
        self.n_iter_, self.loss_ = min(result.nit, self.max_iter), float(result.fun)
        net._theta[...] = result.x
        if not np.isfinite(net._theta).all():
            raise ValueError(NON_FINITE)

    def _fit_stochastic(self, net, X, Y, weights, incremental, given=None):
        """Epochs of minibatch sgd or adam in one backend train_loop run (see fastmlp.training._fit)."""
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        self._start_records()
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = self._new_optimizer()
            self._learning_rate = float(self.learning_rate_init)
        rng = self._random_state
        weights = training.no_weights(net) if weights is None else weights
        empty = (X[:0], Y[:0], np.zeros(0, np.int64))
        validation = (*empty, weights[:0])
        if given is not None:
            validation = given
        elif self.early_stopping:
            X, Y, weights, validation = self._validation_split(X, Y, weights, rng)
        n = X.shape[0]
        if self.batch_size != "auto" and self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
        batch_size = min(200, n) if self.batch_size == "auto" else int(np.clip(self.batch_size, 1, n))
        steps_per_epoch = math.ceil(n / batch_size)
        epochs = 1 if incremental else self.max_iter
        if not hasattr(self, "loss_curve_"):            # a warm start from an lbfgs fit (_start_records:
            self.loss_curve_ = []                       # the rest)
        previous = getattr(self, "_stopping", None)
        if previous is None or not incremental:
            self._stopping = self._new_stopping(net._theta, previous)
        settings = LoopSettings(batch_size, self._rates(epochs, steps_per_epoch, n), self.alpha, "l2", 0.0,
                                steps_per_epoch, 0, True, self._optimizer, self._stopping, dropout=self._dropout(rng))
        sample_idx = np.arange(n)

        def next_order():                   # scikit-learn's shuffle: the order of the last epoch, shuffled
            nonlocal sample_idx
            perm = np.arange(n)
            rng.shuffle(perm)
            sample_idx = sample_idx[perm]
            return sample_idx

        try:
            history = training._fit(net, ((X, Y, weights), empty, validation), settings,
                                    (n, next_order if self.shuffle else None), snapshot_every=None,
                                    progress=False, on_divergence="stop" if self.early_stopping else "raise")
        except training.DivergenceError as error:
            raise ValueError(f"{NON_FINITE} ({error.what}; remedies: a smaller learning_rate_init, a larger "
                             f"alpha, or scaled inputs)") from None
        if history.diverged_at:             # with early stopping: warned, and the best parameters kept, as
            net._theta[...] = self._stopping.best_theta     # scikit-learn ends such a fit
        self._record(history, n, batch_size, steps_per_epoch, incremental)

    def _print_progress(self, epoch_losses, scores, stopped):
        """scikit-learn's verbose lines: each epoch's loss (and validation score), then why it stopped.
        (With learning_rate="adaptive" scikit-learn also prints each division of the rate, which the
        compiled loop makes without a record of when: fastmlp prints the last line only.)"""
        for k, value in enumerate(epoch_losses, start=1):
            print(f"Iteration {k}, loss = {value:.8f}")
            if k <= len(scores):
                print(f"Validation score: {scores[k - 1]:f}")
        if stopped:
            adaptive = self.solver == "sgd" and self.learning_rate == "adaptive"
            print(f"{'Validation score' if self.early_stopping else 'Training loss'} did not improve more than "
                  f"tol={self.tol:f} for {self.n_iter_no_change} consecutive epochs."
                  f"{' Learning rate too small.' if adaptive else ''} Stopping.")

    def _start_records(self):
        """The convergence rule's fitted attributes as a fresh fit starts them, where the last fit left
        none (lbfgs) or early_stopping was switched on or off since (scikit-learn's fails on None)."""
        if self.early_stopping and getattr(self, "validation_scores_", None) is None:
            self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None
        if not self.early_stopping and getattr(self, "best_loss_", None) is None:
            self.validation_scores_, self.best_validation_score_, self.best_loss_ = None, None, np.inf

    def _dropout(self, rng):
        """This fit's Dropout (None where no layer drops), its seed drawn from the estimator's random state:
        each fit and partial_fit call draws other masks, the same ones for the same random_state."""
        rates = check_dropout(self.dropout, len(self.coefs_) - 1)
        return Dropout(rates, int(rng.randint(0, 2**32, dtype=np.int64))) if any(rates) else None

    def _rates(self, epochs, steps_per_epoch, n):
        """The rate of every step: sgd's invscaling sets each epoch's rate from the samples seen before
        it, lr_init / (t + 1)**power_t; adam and the other schedules keep lr_init (adaptive divides
        it by 5 inside the loop)."""
        rates = np.full(epochs, self._learning_rate)
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            seen = self.t_ + n * np.arange(1, epochs)
            rates[1:] = self.learning_rate_init / (seen + 1.0) ** self.power_t
        return np.repeat(rates, steps_per_epoch)

    def _validation_split(self, X, Y, weights, rng):
        """(X_train, Y_train, weights_train, (X_val, Y_val, labels_val, weights_val)) as scikit-learn
        splits for early stopping (the same rows whether or not there are weights)."""
        stratify = Y[:, :1] > 0.5 if isinstance(self, ClassifierMixin) and self.n_outputs_ == 1 else None
        arrays = (X, Y, weights) if len(weights) else (X, Y)
        parts = train_test_split(*arrays, random_state=rng, test_size=self.validation_fraction, stratify=stratify)
        X_train, X_val, Y_train, Y_val = parts[:4]
        w_train, w_val = parts[4:] if len(weights) else (weights, weights)
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                             "your dataset.")
        c = np.ascontiguousarray
        return (_rows_as(X_train, X.dtype), c(Y_train), c(w_train),
                (_rows_as(X_val, X.dtype), c(Y_val), self._labels(Y_val), c(w_val)))

    def _record(self, history, n, batch_size, steps_per_epoch, incremental):
        """The fitted attributes of a stochastic run, from its History."""
        steps = len(history.losses)
        epochs = steps // steps_per_epoch
        rows = np.full(steps_per_epoch, batch_size)
        rows[-1] = n - batch_size * (steps_per_epoch - 1)
        epoch_losses = (history.losses[:epochs * steps_per_epoch].reshape(epochs, -1) @ rows) / n
        diverged = [math.nan] if history.diverged_at else []     # the epoch that diverged (early stopping)
        self.n_iter_ = epochs + len(diverged)
        self.t_ += n * self.n_iter_
        self.loss_curve_.extend([*(float(v) for v in epoch_losses), *diverged])
        self.loss_ = self.loss_curve_[-1]
        state = self._stopping.state
        scores = []
        if self.early_stopping:
            score_name = "val_accuracy" if isinstance(self, ClassifierMixin) else "val_r2"
            scores = [float(v) for v in history.frame[score_name]]
            self.validation_scores_.extend([*scores, *diverged])
            self.best_validation_score_ = -float(state[BEST])
        else:
            self.best_loss_ = float(state[BEST])
        self._no_improvement_count = int(state[BAD_COUNT])     # scikit-learn's name, for reading
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            self._learning_rate = self.learning_rate_init / (self.t_ + 1) ** self.power_t
        if self.verbose:
            self._print_progress(epoch_losses, scores, history.stopped_at)
        if not incremental and not history.stopped_at and epochs == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning)

    # -- conversions (fastmlp.export) ----------------------------------------------------------------

    @classmethod
    def from_sklearn(cls, estimator):
        """This estimator with the parameters and every fitted attribute of a fitted scikit-learn one
        (its optimizer's state too, so that partial_fit goes on from where it stood)."""
        from .export import from_sklearn
        return from_sklearn(cls, estimator)

    def to_sklearn(self):
        """The scikit-learn estimator with this one's parameters and fitted state (see from_sklearn)."""
        from .export import to_sklearn
        return to_sklearn(self)

    # -- predicting -------------------------------------------------------------------------------------

    def _forward(self, X):
        """The output layer (N, O) for X, validated as scikit-learn validates it."""
        if not hasattr(self, "coefs_"):     # (check_is_fitted scans every attribute and the tags: 6 us
            check_is_fitted(self)           # of a one-row predict; its verdict and error otherwise)
        if not _is_plain(X, self):        # a plain array is checked by the network (NaN/inf included)
            X = validate_data(self, X, accept_sparse=SPARSE_FORMATS, reset=False, dtype=(np.float64, np.float32))
        net = self._network()
        if X.dtype == np.float64 and net.dtype == np.float32:
            net = net.astype(np.float64)      # as scikit-learn: float64 X with float32 weights computes in float64
        return net.forward(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _store(estimator, parameters):
    """__init__'s parameters as the estimator's attributes, unchanged (scikit-learn's convention: get_params
    reads them back by the signature's names)."""
    for name, value in parameters.items():
        if name != "self":
            setattr(estimator, name, value)


def _rows_as(X, dtype):
    """X in `dtype` as the network takes it: a C-contiguous, writeable array (the kernels write nothing,
    but take no read-only types), or a sparse matrix as CSR."""
    if hasattr(X, "tocsr"):
        return X.tocsr().astype(dtype, copy=False)
    return np.require(X, dtype, ["C", "W"])


def _is_plain(X, estimator):
    """Whether X is what scikit-learn's validate_data would hand on unchanged: a 2-D float32/float64
    ndarray with rows and the fitted number of columns, the estimator fitted without feature names."""
    return (type(X) is np.ndarray and X.ndim == 2 and X.dtype in (np.float32, np.float64) and len(X) > 0
            and X.shape[1] == estimator.n_features_in_ and not hasattr(estimator, "feature_names_in_"))


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's MLPClassifier, computed by fastmlp.

    Binary targets get one logistic output, multiclass a softmax, multilabel indicator matrices one
    logistic output per label; log-loss throughout. See fastmlp.sklearn for the parameters; and
    class_weight: None (every class 1), "balanced" (n_samples / (n_classes * count of the class), from
    fit's y) or a dict {label: weight} (1 for labels it leaves out), multiplying each row's
    sample_weight, as in scikit-learn's other classifiers (scikit-learn issue #9113).
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001, batch_size="auto",
                 learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, backend="numba", dtype=None,
                 class_weight=None, dropout=0.0):
        _store(self, locals())

    def _check_own_params(self):
        cw = self.class_weight
        if not (cw is None or cw == "balanced" or isinstance(cw, dict)):
            raise ValueError(f"class_weight must be None, 'balanced' or a dict {{label: weight}}, got {cw!r}")

    def _out_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        """(X, the targets as the network's outputs, the labels y as checked)."""
        X, y = validate_data(self, X, y, accept_sparse=SPARSE_FORMATS, multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if incremental and hasattr(self, "classes_"):
            Y = self._encoded(y)             # every label among classes_: the checks below would pass
            if Y is not None:
                return X, Y.astype(X.dtype), y
        check_classification_targets(y)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and set(classes) != set(self.classes_):
                raise ValueError(f"warm_start can only be used where `y` has the same classes as in the "
                                 f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            if not self.warm_start and len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        Y = self._encoded(y)
        return X, (self._label_binarizer.transform(y) if Y is None else Y).astype(X.dtype), y

    def _encoded(self, y):
        """1-D labels as the network's targets, as LabelBinarizer.transform gives them (a 0/1 column for
        two classes, one-hot columns for more), by a search in the sorted classes_; None where y is not
        1-D labels all among classes_ (the caller's scikit-learn checks then say what is wrong).
        LabelBinarizer's own checks took 90 of the 445 ms of a partial_fit on 500,000 rows."""
        classes = self.classes_
        if y.ndim != 1 or self._label_binarizer.y_type_ not in ("binary", "multiclass"):
            return None
        try:
            index = np.minimum(np.searchsorted(classes, y), len(classes) - 1)
            if not np.all(classes[index] == y):
                return None
        except TypeError:                     # labels that do not compare with classes_
            return None
        if self._label_binarizer.y_type_ == "binary":
            return (index == 1)[:, None]
        return np.eye(len(classes), dtype=bool)[index]

    def _validation_targets(self, y_val, n_samples):
        """y_val as the network's targets, its labels among classes_."""
        y_val = np.asarray(y_val)
        if y_val.ndim == 2 and y_val.shape[1] == 1:
            y_val = column_or_1d(y_val, warn=True)
        if len(y_val) != n_samples:
            raise ValueError(f"X_val and y_val must have the same number of rows, got {n_samples} and {len(y_val)}")
        unknown = np.setdiff1d(unique_labels(y_val), self.classes_)
        if len(unknown):
            raise ValueError(f"y_val has labels not in classes_ {self.classes_}: {unknown}")
        return self._label_binarizer.transform(y_val).astype(np.float64).reshape(n_samples, -1)

    def _labels(self, Y):
        """What the loop scores accuracy against: class indices (none for multilabel: subset accuracy)."""
        if self._label_binarizer.y_type_.startswith("multilabel"):
            return np.zeros(0, np.int64)
        return (Y[:, 0] > 0.5).astype(np.int64) if Y.shape[1] == 1 else np.argmax(Y, axis=1)

    @available_if(lambda self: self.solver != "lbfgs")
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over X, y (rows weighted by sample_weight); `classes` (all the labels) is needed on
        the first call."""
        if classes is not None and hasattr(self, "classes_") and not np.array_equal(self.classes_,
                                                                                    unique_labels(classes)):
            raise ValueError(f"`classes={classes!r}` is not the same as on last call to partial_fit, was: "
                             f"{self.classes_!r}")
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            multilabel = type_of_target(y).startswith("multilabel")    # as scikit-learn: its columns
            self._label_binarizer = LabelBinarizer().fit(y if multilabel else classes)
            self.classes_ = self._label_binarizer.classes_
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Class labels (n_samples,), or an indicator matrix for multilabel targets."""
        out = self._forward(X)
        return self._label_binarizer.inverse_transform(out.ravel() if self.n_outputs_ == 1 else out)

    def predict_proba(self, X):
        """Probabilities (n_samples, n_classes), in the order of classes_."""
        out = self._forward(X)
        if self.n_outputs_ == 1:
            return np.column_stack([1 - out[:, 0], out[:, 0]])
        return out

    def predict_log_proba(self, X):
        """log(predict_proba(X))."""
        return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's MLPRegressor, computed by fastmlp. loss:
    "squared_error" (half the squared error, identity output) or "poisson" (half the Poisson deviance,
    exp output: out_activation_ "exp", for counts and other non-negative targets). See fastmlp.sklearn
    for the other parameters."""

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto",
                 learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, backend="numba", dtype=None,
                 dropout=0.0):
        _store(self, locals())

    def _check_own_params(self):
        if self.loss not in REGRESSION_LOSSES:
            raise ValueError(f"loss must be one of {sorted(REGRESSION_LOSSES)}, got {self.loss!r}")

    def _out_activation(self):
        return REGRESSION_LOSSES[self.loss]

    def _validate_input(self, X, y, incremental, reset):
        """(X, the targets, the targets): a regressor's labels are its targets."""
        X, y = validate_data(self, X, y, accept_sparse=SPARSE_FORMATS, multi_output=True, y_numeric=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        self._check_targets(y, "y")
        return X, y, y

    def _check_targets(self, y, name):
        if self.loss == "poisson" and (np.asarray(y) < 0).any():
            raise ValueError(f"{name} has negative values, which loss='poisson' (counts and other non-negative "
                             f"targets) does not allow")

    def _validation_targets(self, y_val, n_samples):
        """y_val as the network's targets: numbers, one column per output."""
        y_val = check_array(y_val, ensure_2d=False, dtype=np.float64, input_name="y_val")
        if len(y_val) != n_samples:
            raise ValueError(f"X_val and y_val must have the same number of rows, got {n_samples} and {len(y_val)}")
        Y_val = y_val.reshape(n_samples, -1)
        if Y_val.shape[1] != self.n_outputs_:
            raise ValueError(f"y_val must have {self.n_outputs_} target(s) per row as y has, got {Y_val.shape[1]}")
        self._check_targets(Y_val, "y_val")
        return Y_val

    def _labels(self, Y):
        return np.zeros(0, np.int64)

    @available_if(lambda self: self.solver != "lbfgs")
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over X, y (rows weighted by sample_weight)."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predictions (n_samples,), or (n_samples, n_outputs) for several targets."""
        out = self._forward(X)
        return out.ravel() if out.shape[1] == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # the poisson loss takes non-negative targets; its fit of exp(network) to the estimator checks'
        # linear targets (shifted to be positive) scores R^2 < 0.5, as scikit-learn's own does (-1.8)
        tags.target_tags.positive_only = tags.regressor_tags.poor_score = self.loss == "poisson"
        return tags
