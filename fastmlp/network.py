"""MLP: the network's architecture and parameters, validation of what users pass, dispatch to a backend."""

import copy

import numpy as np

from . import reference, training
from .architecture import aligned_flat
from .backends import BACKENDS, CHECKS_FINITE, get_backend
from .files import atomic_path
from .bricks import PENALTIES
from .validation import (
    check_architecture, check_array, check_dtype, check_finite, check_labels, check_option, check_rows,
    check_sample_weight, check_scalar, check_seed, check_sizes, check_targets, n_rows,
)

DEFAULT_BACKEND = "numba"


def article_init(rng, sizes, activations):
    """The article's code: per layer (2 * random((fan_in, fan_out)) - 1) / sqrt(fan_in); biases zero."""
    weights = [(2 * rng.random_sample((a, b)) - 1) / np.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:])]
    return weights, [np.zeros(b) for b in sizes[1:]]


def glorot_init(rng, sizes, activations):
    """scikit-learn's MLP: W and b ~ U(-s, s), s = sqrt(f / (fan_in + fan_out)), f = 2 for a sigmoid
    layer and 6 otherwise (the output layer takes the last hidden layer's), drawn W then b per layer."""
    weights, biases = [], []
    for l, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        activation = activations[min(l, len(activations) - 1)] if activations else None
        bound = np.sqrt((2.0 if activation == "sigmoid" else 6.0) / (fan_in + fan_out))
        weights.append(rng.uniform(-bound, bound, (fan_in, fan_out)))
        biases.append(rng.uniform(-bound, bound, fan_out))
    return weights, biases


def he_init(rng, sizes, activations):
    """W ~ U(-s, s) with s = sqrt(6 / fan_in) (He et al., uniform); biases zero."""
    weights = [rng.uniform(-np.sqrt(6.0 / a), np.sqrt(6.0 / a), (a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
    return weights, [np.zeros(b) for b in sizes[1:]]


INITS = {"article": article_init, "glorot": glorot_init, "he": he_init}


class MLP:
    """A multilayer perceptron of LEGO bricks; MLP((2, 3, 2), seed=2017) is the article's network.

    sizes: (n_inputs, *hidden, n_outputs). activation: one of fastmlp.bricks.ACTIVATIONS ("sigmoid",
    "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu", "silu", "identity") for every hidden layer,
    or one name per hidden layer. output: "sigmoid", "softmax", "identity" or "exp". loss: "mse" (the
    article's sum((Y - out)**2) / (2N)), "cross_entropy" (sigmoid or softmax outputs) or "poisson"
    (half the Poisson deviance, exp output, non-negative targets). init: "article" (RandomState(seed),
    per layer (2 * random((fan_in, fan_out)) - 1) / sqrt(fan_in), biases zero: seed 2017 gives the
    article's weights), "glorot" (as scikit-learn's MLP) or "he". bias=False is the article's network
    exactly: biases stay zero and are never trained.
    backend: "numpy" (the reference) or "numba" (the compiled kernels). dtype: "float32" or "float64";
    inputs are cast to it and every result comes in it.
    """

    def __init__(self, sizes, bias=True, seed=2017, backend=DEFAULT_BACKEND, dtype="float64",
                 activation="sigmoid", output="sigmoid", loss="mse", init="article"):
        self._configure(sizes, bias, backend, dtype, activation, output, loss, init)
        rng = np.random.RandomState(check_seed("seed", seed))
        weights, biases = INITS[init](rng, self.sizes, self.activations)
        self._theta = aligned_flat(self._arch.n_parameters, self._dtype,
                                   np.concatenate([W.ravel() for W in weights] + [b for b in biases]))
        if not self.bias:
            self._theta[self._arch.n_weights:] = 0

    def _configure(self, sizes, bias, backend, dtype, activation, output, loss, init):
        """Check and set everything but the parameters."""
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        self._arch = check_architecture(sizes, activation, output, loss, bool(bias))
        self._init = check_option("init", init, INITS)
        self.backend = backend
        self._dtype = check_dtype(dtype)

    @classmethod
    def _zeroed(cls, sizes, bias=True, backend=DEFAULT_BACKEND, dtype="float64", activation="sigmoid",
                output="sigmoid", loss="mse", init="article"):
        """An MLP with every parameter zero, for a caller that sets them at once (the estimators): no
        initial draw (a 5,000-word first layer's took 3 ms a fit)."""
        net = cls.__new__(cls)
        net._configure(sizes, bias, backend, dtype, activation, output, loss, init)
        net._theta = aligned_flat(net._arch.n_parameters, net._dtype)
        return net

    # -- attributes -------------------------------------------------------------------------------

    sizes = property(lambda self: self._arch.sizes, doc="(n_inputs, *hidden, n_outputs)")
    activations = property(lambda self: self._arch.activations, doc="one activation per hidden layer")
    output = property(lambda self: self._arch.output, doc="the output layer's function")
    loss_name = property(lambda self: self._arch.loss, doc="the loss's name (`loss` is the method)")
    bias = property(lambda self: self._arch.bias, doc="whether the layers have trained biases")
    init = property(lambda self: self._init, doc="the initialisation rule's name")

    @property
    def backend(self):
        return self._backend_name

    @backend.setter
    def backend(self, name):
        self._backend_name = check_option("backend", name, BACKENDS)
        self._backend = get_backend(name)
        self._backend_checks_finite = name in CHECKS_FINITE

    @property
    def dtype(self):
        return np.dtype(self._dtype)

    @property
    def weights(self):
        """[W1 (sizes[0], sizes[1]), ..., WL], read-only views; assign a new list to change them."""
        return [_read_only(W) for W in self._arch.split(self._theta)[0]]

    @weights.setter
    def weights(self, values):
        shapes = list(zip(self.sizes[:-1], self.sizes[1:]))
        self._assign("weights", values, shapes, self._arch.split(self._theta)[0])

    @property
    def biases(self):
        """[b1 (sizes[1],), ..., bL], read-only views; [] for a network without biases."""
        if not self.bias:
            return []
        return [_read_only(b) for b in self._arch.split(self._theta)[1]]

    @biases.setter
    def biases(self, values):
        if not self.bias:
            raise ValueError("biases cannot be set on a network built with bias=False")
        self._assign("biases", values, [(s,) for s in self.sizes[1:]], self._arch.split(self._theta)[1])

    @property
    def parameters(self):
        """weights + biases, in that order (the order of the gradients)."""
        return self.weights + self.biases

    def _assign(self, name, values, shapes, targets):
        """Check every array of `values` first, then copy them all into theta (all or nothing)."""
        values = list(values) if isinstance(values, (list, tuple)) else None
        if values is None or len(values) != len(shapes):
            raise ValueError(f"{name} must be a list of {len(shapes)} arrays with shapes {shapes}")
        checked = [check_array(f"{name}[{i}]", v, ndim=len(s), dtype=self._dtype, shape=s)
                   for i, (v, s) in enumerate(zip(values, shapes))]
        for target, value in zip(targets, checked):
            target[...] = value

    # -- checks of what users pass ------------------------------------------------------------------

    def _check_X(self, X, finite=True):
        """Inputs X (N, D): a dense array, or a scipy.sparse matrix made CSR (see validation.check_rows)."""
        return check_rows("X", X, dtype=self._dtype, n_features=self.sizes[0], finite=finite)

    def _check_XY(self, X, Y):
        """X and Y of forward, loss and step; their NaN/inf left to backends that check them in their
        own pass (fastmlp.backends.CHECKS_FINITE)."""
        finite = not self._backend_checks_finite
        X = self._check_X(X, finite)
        Y = check_array("Y", Y, ndim=2, dtype=self._dtype, shape=(None, self.sizes[-1]), finite=finite)
        if len(Y) != n_rows(X):
            check_finite("X", X)          # X's own errors first, on every backend
            raise ValueError(f"X and Y must have the same number of rows, got {n_rows(X)} and {len(Y)}")
        return X, Y

    def _check_weights(self, sample_weight, n_samples):
        """Sample weights (N,) in the network's dtype, or None for none."""
        if sample_weight is None:
            return None
        return check_sample_weight("sample_weight", sample_weight, n_samples, self._dtype)

    def _targets(self, name, y, n_samples):
        """(Y, labels) from what fit and score take: integer labels for classification outputs
        (Y one-hot, or y itself as a column for one sigmoid output), float targets (N,) or (N, O) for
        value outputs (labels empty; non-negative for the poisson loss)."""
        O = self.sizes[-1]
        if self._arch.is_classifier():
            labels = check_labels(name, y, n_classes=max(O, 2), n_samples=n_samples)
            Y = labels[:, None] if O == 1 else np.eye(O)[labels]
            return Y.astype(self._dtype), labels
        Y = check_targets(name, y, n_outputs=O, n_samples=n_samples, dtype=self._dtype)
        if self._arch.loss == "poisson" and (Y < 0).any():
            raise ValueError(f"{name} must be non-negative for loss='poisson' (counts, rates), found {Y.min()} "
                             f"at row {int(np.argmin(Y.min(axis=1)))}")
        return Y, np.zeros(0, np.int64)

    # -- the network's functions --------------------------------------------------------------------

    def forward(self, X):
        """The output layer h_L (N, O) for inputs X (N, D)."""
        X = self._check_X(X, finite=not self._backend_checks_finite)
        return self._backend.forward(self._arch, self._theta, X)

    def predict(self, X):
        """Class labels (N,) int64 for sigmoid/softmax outputs (argmax; one sigmoid output: 1 where it
        exceeds 0.5), the outputs (N, O) themselves for value outputs (identity, exp)."""
        return reference.predict_from_output(self._arch, self.forward(X))

    def score(self, X, y, sample_weight=None):
        """Accuracy of predict(X) against labels y for classification outputs; R^2 (as scikit-learn's
        r2_score) against targets y for value outputs (identity, exp); rows weighted by sample_weight."""
        X = self._check_X(X, finite=not self._backend_checks_finite)
        Y, labels = self._targets("y", y, n_rows(X))
        weights = self._check_weights(sample_weight, n_rows(X))
        h = self._backend.forward(self._arch, self._theta, X)        # X checked once
        return reference.score_from_output(self._arch, h, Y, labels, weights)

    def loss(self, X, Y, reg=0.0, penalty="l2", *, sample_weight=None):
        """The data loss plus (reg / N) * penalty(weights), as a float; Y (N, O) as the outputs. With
        sample_weight (N,), each row's loss counts w_i / sum(w) and N is sum(w)."""
        X, Y = self._check_XY(X, Y)
        reg, penalty = _check_reg(reg, penalty)
        weights = self._check_weights(sample_weight, n_rows(X))
        return self._backend.loss(self._arch, self._theta, X, Y, reg, penalty, weights)

    def loss_and_gradients(self, X, Y, reg=0.0, penalty="l2", *, sample_weight=None):
        """(loss, grads): grads aligned with `parameters` (weights, then biases if the net has them)."""
        X, Y = self._check_XY(X, Y)
        reg, penalty = _check_reg(reg, penalty)
        weights = self._check_weights(sample_weight, n_rows(X))
        loss, gradient = self._backend.loss_and_gradients(self._arch, self._theta, X, Y, reg, penalty, weights)
        dW, db = self._arch.split(gradient)
        return loss, dW + (db if self.bias else [])

    def step(self, X, Y, lr, reg=0.0, penalty="l2", *, sample_weight=None):
        """One gradient-descent update of every parameter in place; returns the loss before it. An
        update that is not finite raises fastmlp.DivergenceError and leaves the parameters as they were."""
        X, Y = self._check_XY(X, Y)
        lr = check_scalar("lr", lr, low=0.0, low_inclusive=False)
        reg, penalty = _check_reg(reg, penalty)
        weights = self._check_weights(sample_weight, n_rows(X))
        try:
            return self._backend.step(self._arch, self._theta, X, Y, lr, reg, penalty, weights)
        except FloatingPointError as error:          # the backend left theta as it was
            raise training.DivergenceError(1, np.nan, None, f"the step at lr={lr:g} would make a parameter NaN "
                                                            f"or infinite: {error}") from None

    def fit(self, X, y, *, lr, steps=None, epochs=None, batch_size=None, shuffle=False, optimizer="sgd",
            reg=0.0, penalty="l2", schedule="constant", decay=1e-3, clip_norm=None, eval_every=None,
            eval_set=None, early_stopping=False, monitor="val_loss", patience=10, tol=1e-4,
            snapshot_every=None, seed=None, progress=True, on_divergence="raise", sample_weight=None,
            dropout=0.0):
        """Train in place; returns a History (`history.frame`).

        y: integer labels for classification outputs (one sigmoid output: 0/1), float targets (N,)
        or (N, O) for value outputs (identity, exp). Give `steps` or `epochs`. batch_size: None for
        full batch. With `epochs`, every epoch walks all samples in batches (the last one smaller if
        batch_size does not divide N); with `steps` and shuffle=False every step trains on the first
        batch_size samples (the article's run). shuffle=True deals a fresh permutation each epoch
        (seeded by `seed`, drawn up front: the compiled loop runs whole epochs). optimizer: "sgd",
        "momentum", "nesterov" (momentum 0.9), "adam" (beta_1 0.9, beta_2 0.999, epsilon 1e-8), or
        a fastmlp.optimizers object (fastmlp.Adam(beta_1=...), ...); updates as scikit-learn's MLP
        optimizers make them. lr: the (initial) rate. reg, penalty: the loss's regularisation ("l2"
        or "l1"). schedule: "constant", "inverse" (lr / (1 + decay t)) or "exponential"
        (lr exp(-decay t)), t the 0-based step.
        clip_norm: clip the gradient's global norm. eval_every: record a row every this many steps
        (default 100, or once per epoch with `epochs`; and after the last step): loss (the step's
        pre-update batch loss), the score on all of X, y after the update ("accuracy", or "r2" for value
        outputs), lr, grad_norm, and val_loss / val_<score> on eval_set=(X_val, y_val).
        early_stopping: stop when `monitor` ("val_loss", "val_score" on eval_set, or "loss", the
        training loss averaged since the last evaluation) has not improved by more than tol for
        `patience` evaluations in a row, and restore the parameters of the best evaluation; the History
        says where and why (stopped_at, stop_reason, best_step). snapshot_every: keep a copy of the
        parameters this often (for animations). on_divergence: "raise" a DivergenceError or "stop" with
        a warning and return the history so far. sample_weight (N,): each row's weight in its batches'
        losses (w_i / sum of the batch's w, as scikit-learn weights its MLP's loss; the penalty's N is
        that sum); eval_set may be a triple (X_val, y_val, sample_weight_val) for a weighted validation
        loss and score. dropout: one rate in [0, 1) for every hidden layer, or one per hidden layer:
        inverted dropout while training (fastmlp.dropout: masks keyed by the seed, the step, the row's
        place in its batch and the unit; with seed None a seed is drawn), never when predicting.
        """
        return training.fit(
            self, X, y, lr=lr, steps=steps, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
            optimizer=optimizer, reg=reg, penalty=penalty, schedule=schedule, decay=decay,
            clip_norm=clip_norm, eval_every=eval_every, eval_set=eval_set, early_stopping=early_stopping,
            monitor=monitor, patience=patience, tol=tol, snapshot_every=snapshot_every, seed=seed,
            progress=progress, on_divergence=on_divergence, sample_weight=sample_weight, dropout=dropout)

    def astype(self, dtype):
        """A copy of this network that computes in `dtype` ("float32" or "float64"), its parameters cast."""
        twin = copy.copy(self)
        twin._dtype = check_dtype(dtype)
        twin._theta = aligned_flat(self._theta.size, twin._dtype, self._theta)
        return twin

    def save(self, path):
        """Write the network to an .npz file (its whole architecture and parameters), atomically. A network
        whose parameters are not all finite is refused (load would reject the file)."""
        arch = self._arch
        if not np.isfinite(self._theta).all():
            raise ValueError("cannot save a network whose parameters are not all finite (NaN or inf): "
                             "load would reject the file; nothing was written")
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, format=np.array(MODEL_FORMAT), sizes=np.array(arch.sizes),
                         activations=np.array(arch.activations, dtype=str), output=np.array(arch.output),
                         loss=np.array(arch.loss), init=np.array(self.init), bias=np.array(arch.bias),
                         dtype=np.array(self.dtype.name), backend=np.array(self.backend),
                         theta=self._theta)

    def __getstate__(self):
        """Pickle without the backend's module (looked up again by name on unpickling)."""
        state = self.__dict__.copy()
        del state["_backend"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._theta = np.require(self._theta, requirements=["C", "W"])    # loaded read-only (a memmap)
        self._backend = get_backend(self._backend_name)

    def __repr__(self):
        return (f"MLP({self.sizes}, bias={self.bias}, backend={self.backend!r}, dtype={self.dtype.name!r}, "
                f"activation={list(self.activations)!r}, output={self.output!r}, loss={self.loss_name!r}, "
                f"init={self.init!r})")


def _check_reg(reg, penalty):
    return check_scalar("reg", reg), check_option("penalty", penalty, PENALTIES)


def _read_only(a):
    view = a.view()
    view.flags.writeable = False
    return view


MODEL_FORMAT = "fastmlp-model-2"
MODEL_KEYS = {"format", "sizes", "activations", "output", "loss", "init", "bias", "dtype", "backend", "theta"}
MODEL_FORMAT_1 = "fastmlp-model-1"      # one sigmoid hidden layer, sigmoid outputs, mse
MODEL_KEYS_1 = {"format", "sizes", "bias", "dtype", "backend", "W1", "W2", "b1", "b2"}


def load(path):
    """Read a network written by MLP.save (this format or fastmlp-model-1); a truncated or foreign
    file raises ValueError."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "format" not in data.files:
                raise ValueError("missing ['format']")
            version = str(data["format"])
            keys = {MODEL_FORMAT: MODEL_KEYS, MODEL_FORMAT_1: MODEL_KEYS_1}.get(version)
            if keys is None:
                raise ValueError(f"unknown format {version!r}")
            missing = keys - set(data.files)
            if missing:
                raise ValueError(f"missing {sorted(missing)}")
            fields = {k: data[k] for k in keys}
            net = _from_fields(version, fields)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{path} is not a readable fastmlp model file ({exc})") from None
    return net


def _from_fields(version, fields):
    """The network of a model file's fields, each checked as the constructor checks it (types exact),
    and theta's length against the sizes before anything of that size is allocated."""
    bias, sizes = fields["bias"], fields["sizes"]
    if bias.dtype != np.bool_ or bias.shape != ():
        raise ValueError(f"bias must be a boolean, got {bias!r}")
    if sizes.dtype.kind not in "iu" or sizes.ndim != 1:
        raise ValueError(f"sizes must be a list of integers, got {sizes!r}")
    sizes = check_sizes(sizes.tolist())
    if version == MODEL_FORMAT_1:
        if len(sizes) != 3 or fields["W1"].shape != sizes[:2] or fields["W2"].shape != sizes[1:]:
            raise ValueError(f"W1 and W2 must have shapes {sizes[:2]} and {sizes[1:]} (sizes {sizes}), got "
                             f"{fields['W1'].shape} and {fields['W2'].shape}")
    else:
        n_parameters = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        if fields["theta"].shape != (n_parameters,):
            raise ValueError(f"theta must hold the {n_parameters} parameters of sizes {sizes}, got shape "
                             f"{fields['theta'].shape}")
    common = dict(bias=bool(bias), backend=str(fields["backend"]), dtype=str(fields["dtype"]))
    if version == MODEL_FORMAT_1:
        net = MLP(sizes, **common)
        net.weights = [fields["W1"], fields["W2"]]
        if net.bias:
            net.biases = [fields["b1"], fields["b2"]]
        return net
    net = MLP(sizes, activation=[str(a) for a in fields["activations"]], output=str(fields["output"]),
              loss=str(fields["loss"]), init=str(fields["init"]), **common)
    theta = check_array("theta", fields["theta"], ndim=1, dtype=net._dtype, shape=(net._arch.n_parameters,))
    net._theta[...] = theta
    return net
