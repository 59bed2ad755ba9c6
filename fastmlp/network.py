"""MLP: the network's parameters, validation of what users pass, and dispatch to a backend."""

import numpy as np

from . import training
from .backends import BACKENDS, get_backend
from .files import atomic_path
from .reference import PENALTIES
from .validation import (
    check_array, check_dtype, check_labels, check_option, check_scalar, check_seed, check_sizes,
)

DEFAULT_BACKEND = "numba"


class MLP:
    """A one-hidden-layer sigmoid network, the article's, with optional biases.

    sizes: (n_inputs, n_hidden, n_outputs). bias=False is the article's network exactly; bias=True
    (the default) adds b1, b2, initialised to zero and never regularised. Weights are drawn as the
    article's code draws them: RandomState(seed), for each layer in order
    (2 * random((fan_in, fan_out)) - 1) / sqrt(fan_in); seed=2017 with sizes (2, 3, 2) gives the
    article's W1 and W2. backend: "numpy" (the reference) or "numba" (the compiled kernels).
    dtype: "float32" or "float64"; inputs are cast to it and every result comes in it.
    """

    def __init__(self, sizes, bias=True, seed=2017, backend=DEFAULT_BACKEND, dtype="float64"):
        self.sizes = check_sizes(sizes)
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        self.bias = bool(bias)
        self.backend = backend
        self._dtype = check_dtype(dtype)
        rng = np.random.RandomState(check_seed("seed", seed))
        weights = []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            weights.append((2 * rng.random_sample((fan_in, fan_out)) - 1) / np.sqrt(fan_in))
        self._W1, self._W2 = (W.astype(self._dtype) for W in weights)
        self._b1 = np.zeros(self.sizes[1], self._dtype)
        self._b2 = np.zeros(self.sizes[2], self._dtype)

    # -- attributes -------------------------------------------------------------------------------

    @property
    def backend(self):
        return self._backend_name

    @backend.setter
    def backend(self, name):
        self._backend_name = check_option("backend", name, BACKENDS)
        self._backend = get_backend(name)

    @property
    def dtype(self):
        return np.dtype(self._dtype)

    @property
    def weights(self):
        """[W1 (D, H), W2 (H, O)], read-only views; assign a new list to change them."""
        return [_read_only(self._W1), _read_only(self._W2)]

    @weights.setter
    def weights(self, values):
        D, H, O = self.sizes
        W1, W2 = self._check_pair("weights", values, [(D, H), (H, O)])
        self._W1, self._W2 = W1, W2

    @property
    def biases(self):
        """[b1 (H,), b2 (O,)], read-only views; [] for a network without biases."""
        if not self.bias:
            return []
        return [_read_only(self._b1), _read_only(self._b2)]

    @biases.setter
    def biases(self, values):
        if not self.bias:
            raise ValueError("biases cannot be set on a network built with bias=False")
        _, H, O = self.sizes
        self._b1, self._b2 = self._check_pair("biases", values, [(H,), (O,)])

    @property
    def parameters(self):
        """weights + biases, in that order (the order of the gradients)."""
        return self.weights + self.biases

    def _check_pair(self, name, values, shapes):
        values = list(values) if isinstance(values, (list, tuple)) else None
        if values is None or len(values) != 2:
            raise ValueError(f"{name} must be a list of 2 arrays with shapes {shapes}")
        return [
            check_array(f"{name}[{i}]", v, ndim=len(s), dtype=self._dtype, shape=s).copy()
            for i, (v, s) in enumerate(zip(values, shapes))
        ]

    # -- checks of what users pass ------------------------------------------------------------------

    def _check_X(self, X):
        return check_array("X", X, ndim=2, dtype=self._dtype, shape=(None, self.sizes[0]))

    def _check_XY(self, X, Y):
        X = self._check_X(X)
        Y = check_array("Y", Y, ndim=2, dtype=self._dtype, shape=(None, self.sizes[-1]))
        if len(Y) != len(X):
            raise ValueError(f"X and Y must have the same number of rows, got {len(X)} and {len(Y)}")
        return X, Y

    def _params(self):
        return self._W1, self._b1, self._W2, self._b2

    # -- the network's functions --------------------------------------------------------------------

    def forward(self, X):
        """The network's output h2 (N, O) for inputs X (N, D)."""
        return self._backend.forward(self._check_X(X), *self._params())

    def predict(self, X):
        """Predicted class labels (N,) int64: the argmax of h2."""
        return np.argmax(self.forward(X), axis=1)

    def score(self, X, y):
        """Accuracy in [0, 1] of predict(X) against integer labels y (N,)."""
        X = self._check_X(X)
        y = check_labels("y", y, n_classes=self.sizes[-1], n_samples=len(X))
        predicted = np.argmax(self._backend.forward(X, *self._params()), axis=1)   # X checked once
        return float(np.mean(predicted == y))

    def loss(self, X, Y, reg=0.0, penalty="l2"):
        """sum((Y - h2)**2) / (2N) + (reg / N) * penalty(weights), as a float."""
        X, Y = self._check_XY(X, Y)
        reg, penalty = _check_reg(reg, penalty)
        return self._backend.loss(X, Y, *self._params(), reg, penalty)

    def loss_and_gradients(self, X, Y, reg=0.0, penalty="l2"):
        """(loss, grads): grads aligned with `parameters` ([dW1, dW2] then [db1, db2] with biases)."""
        X, Y = self._check_XY(X, Y)
        reg, penalty = _check_reg(reg, penalty)
        loss, (dW1, db1, dW2, db2) = self._backend.loss_and_gradients(X, Y, *self._params(), reg, penalty)
        return loss, [dW1, dW2] + ([db1, db2] if self.bias else [])

    def step(self, X, Y, lr, reg=0.0, penalty="l2"):
        """One gradient-descent update of every parameter in place; returns the loss before it."""
        X, Y = self._check_XY(X, Y)
        lr = check_scalar("lr", lr, low=0.0, low_inclusive=False)
        reg, penalty = _check_reg(reg, penalty)
        return self._backend.step(X, Y, *self._params(), lr, reg, penalty, self.bias)

    def fit(self, X, y, *, lr, steps, batch_size=None, shuffle=False, reg=0.0, penalty="l2",
            schedule="constant", decay=1e-3, clip_norm=None, eval_every=100, eval_set=None,
            snapshot_every=None, seed=None, progress=True, on_divergence="raise"):
        """Train by gradient descent on integer labels y; returns a History (`history.frame`).

        batch_size: None for full batch. shuffle=False trains every step on the first batch_size
        samples (the article's run); True deals a fresh permutation each epoch (seeded by `seed`).
        reg, penalty: the loss's regularisation ("l2" or "l1"). schedule: "constant", "inverse"
        (lr / (1 + decay t)) or "exponential" (lr exp(-decay t)), t the 0-based step. clip_norm: clip
        the gradient's global norm. eval_every: record a row every this many steps (and the last):
        loss (the step's pre-update batch loss), accuracy (on all of X, y, after the update), lr,
        grad_norm, and val_loss / val_accuracy on eval_set=(X_val, y_val). snapshot_every: keep a
        copy of the parameters this often (for animations). on_divergence: "raise" a DivergenceError
        or "stop" with a warning and return the history so far.
        """
        return training.fit(
            self, X, y, lr=lr, steps=steps, batch_size=batch_size, shuffle=shuffle, reg=reg,
            penalty=penalty, schedule=schedule, decay=decay, clip_norm=clip_norm,
            eval_every=eval_every, eval_set=eval_set, snapshot_every=snapshot_every, seed=seed,
            progress=progress, on_divergence=on_divergence)

    def save(self, path):
        """Write the network to an .npz file (sizes, bias, dtype, backend, parameters), atomically."""
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, format=np.array(MODEL_FORMAT), sizes=np.array(self.sizes),
                         bias=np.array(self.bias), dtype=np.array(self.dtype.name),
                         backend=np.array(self.backend), W1=self._W1, W2=self._W2,
                         b1=self._b1, b2=self._b2)

    def __repr__(self):
        return (f"MLP({self.sizes}, bias={self.bias}, backend={self.backend!r}, "
                f"dtype={self.dtype.name!r})")


def _check_reg(reg, penalty):
    return check_scalar("reg", reg), check_option("penalty", penalty, PENALTIES)


def _read_only(a):
    view = a.view()
    view.flags.writeable = False
    return view


MODEL_FORMAT = "fastmlp-model-1"
MODEL_KEYS = {"format", "sizes", "bias", "dtype", "backend", "W1", "W2", "b1", "b2"}


def load(path):
    """Read a network written by MLP.save; a truncated or foreign file raises ValueError."""
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = MODEL_KEYS - set(data.files)
            if missing or str(data["format"]) != MODEL_FORMAT:
                raise ValueError(f"missing {sorted(missing)}" if missing else "unknown format")
            fields = {k: data[k] for k in MODEL_KEYS}
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{path} is not a readable fastmlp model file ({exc})") from None
    net = MLP(tuple(int(s) for s in fields["sizes"]), bias=bool(fields["bias"]),
              backend=str(fields["backend"]), dtype=str(fields["dtype"]))
    net.weights = [fields["W1"], fields["W2"]]
    if net.bias:
        net.biases = [fields["b1"], fields["b2"]]
    return net
