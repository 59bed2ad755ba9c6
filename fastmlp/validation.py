"""Argument checks shared by every public entry point.

Validation happens once, at the public surface: the backends (reference and kernels) assume clean,
C-contiguous, finite arrays of one floating dtype. Every error names the argument, what was expected
and what was given.
"""

import math
import numbers

import numpy as np

from .architecture import Architecture
from .bricks import ACTIVATIONS, LOSS_OUTPUTS, LOSSES, OUTPUTS

DTYPES = {"float32": np.float32, "float64": np.float64}


def check_option(name, value, options):
    """Return `value` if it is one of `options`, else raise ValueError listing them."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return value


def check_dtype(dtype):
    """Return the numpy float type named by `dtype` ('float32' / 'float64' or the numpy type)."""
    try:
        key = np.dtype(dtype).name
    except TypeError:
        key = None
    if key not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[key]


def check_sizes(sizes):
    """Return sizes as a tuple of positive ints (n_inputs, *hidden, n_outputs): at least two."""
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise TypeError(f"sizes must be a sequence of layer widths, got {sizes!r}") from None
    if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in sizes):
        raise TypeError(f"sizes must hold integers, got {sizes!r}")
    if len(sizes) < 2:
        raise ValueError(
            f"sizes must be (n_inputs, *hidden, n_outputs): at least two integers, got {len(sizes)}: {sizes!r}"
        )
    if any(s <= 0 for s in sizes):
        raise ValueError(f"sizes must all be positive, got {sizes!r}")
    return tuple(int(s) for s in sizes)


def check_architecture(sizes, activation, output, loss, bias):
    """An Architecture from what MLP takes: `activation` one name for every hidden layer or a sequence
    of one name per hidden layer; the output and loss names, and their combination."""
    sizes = check_sizes(sizes)
    n_hidden = len(sizes) - 2
    if isinstance(activation, str):
        activations = (check_option("activation", activation, ACTIVATIONS),) * n_hidden
    else:
        try:
            activations = tuple(activation)
        except TypeError:
            raise TypeError(f"activation must be a name or a sequence of names, got {activation!r}") from None
        if len(activations) != n_hidden:
            raise ValueError(f"activation must have one name per hidden layer ({n_hidden} for sizes "
                             f"{sizes}), got {len(activations)}: {list(activations)!r}")
        for k, name in enumerate(activations):
            check_option(f"activation[{k}]", name, ACTIVATIONS)
    check_option("output", output, OUTPUTS)
    check_option("loss", loss, LOSSES)
    if output not in LOSS_OUTPUTS[loss]:
        allowed = " or ".join(repr(o) for o in LOSS_OUTPUTS[loss])
        hint = {"cross_entropy": " (use loss='mse' for regression)", "poisson": " (a count's mean)"}[loss]
        raise ValueError(f"loss={loss!r} needs output={allowed}, got output={output!r}{hint}")
    if output == "softmax" and sizes[-1] < 2:
        raise ValueError(f"output='softmax' needs at least 2 outputs, got sizes {sizes} (use 'sigmoid' "
                         f"for one output)")
    return Architecture(sizes, activations, output, loss, bias)


def check_scalar(name, value, *, low=0.0, low_inclusive=True, high=math.inf, high_inclusive=True):
    """Return `value` as a finite float in [low, high] (ends open where not inclusive); a 0-d array
    counts as its number."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if type(value) is not float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
        value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if value < low or (value == low and not low_inclusive):
        relation = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {relation} {low:g}, got {value!r}")
    if value > high or (value == high and not high_inclusive):
        relation = "<=" if high_inclusive else "<"
        raise ValueError(f"{name} must be {relation} {high:g}, got {value!r}")
    return value


def check_dropout(dropout, n_hidden, name="dropout"):
    """Return dropout rates as a tuple of n_hidden floats in [0, 1): one rate for every hidden layer, or
    a sequence of one per hidden layer."""
    if isinstance(dropout, (numbers.Real, np.ndarray)) and np.ndim(dropout) == 0:
        rates = (check_scalar(name, dropout, high=1.0, high_inclusive=False),) * n_hidden
        if rates == () and dropout != 0:
            raise ValueError(f"{name} drops hidden units, and this network has no hidden layer: got {dropout!r}")
        return rates
    try:
        rates = tuple(dropout) if not isinstance(dropout, (str, bytes)) else None
    except TypeError:
        rates = None
    if rates is None:
        raise TypeError(f"{name} must be a rate or a sequence of rates, got {dropout!r}")
    if len(rates) != n_hidden:
        raise ValueError(f"{name} must have one rate per hidden layer ({n_hidden}), got {len(rates)}: {list(rates)!r}")
    return tuple(check_scalar(f"{name}[{k}]", r, high=1.0, high_inclusive=False) for k, r in enumerate(rates))


def check_int(name, value, *, low=1):
    """Return `value` as an int >= `low`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return int(value)


def check_seed(name, seed):
    """Return `seed` if it is None or an int in [0, 2**32), the seeds numpy's generators accept."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32:
        raise ValueError(f"{name} must be None or an integer in [0, 2**32), got {seed!r}")
    return int(seed)


def check_rows(name, X, *, dtype, n_features, finite=True):
    """Return inputs X (N, n_features): a dense array as check_array makes it, or a scipy.sparse matrix
    or array (any format) as CSR of `dtype` (copied only where its format or dtype differ), its stored
    values finite unless finite=False."""
    if not is_sparse(X):
        return check_array(name, X, ndim=2, dtype=dtype, shape=(None, n_features), finite=finite)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got a sparse array of shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} must not be empty, got shape {X.shape}")
    if X.shape[1] != n_features:
        raise ValueError(f"{name} must have shape (N, {n_features}), got {X.shape} (axis 1 is {X.shape[1]}, "
                         f"expected {n_features})")
    X = X.tocsr()
    if X.dtype != dtype:
        X = X.astype(dtype)
    if finite:
        check_finite(name, X)
    return X


def is_sparse(X):
    """Whether X is a scipy.sparse matrix or array (without importing scipy.sparse)."""
    return hasattr(X, "tocsr") and hasattr(X, "nnz")


def n_rows(X):
    """How many rows X has (dense or sparse: len() is not defined for a sparse matrix)."""
    return X.shape[0]


def check_array(name, a, *, ndim, dtype, shape=None, finite=True):
    """Return `a` as a non-empty, C-contiguous, writeable float array of `ndim` dimensions, finite
    unless finite=False (for a backend that checks finiteness in its own pass, fastmlp.backends).

    dtype: the float type to cast to. shape: expected shape, None for "any" in a position.
    """
    if not is_ready(a, ndim, dtype, shape):
        a = _converted(name, a, ndim, dtype, shape)
    if finite:
        check_finite(name, a)
    return a


def is_ready(a, ndim, dtype, shape):
    """Whether `a` passes check_array's shape and dtype checks as it is: a C-contiguous, writeable,
    non-empty ndarray of exactly this dtype and shape (a tuple; None, for "any", only first). The cheap
    test of every repeated call (a step of 32 rows is about 30 us; the full path cost 5 to 12 of them)."""
    return (type(a) is np.ndarray and a.dtype == dtype and a.ndim == ndim and a.size > 0
            and a.flags.c_contiguous and a.flags.writeable
            and (shape is None or (a.shape[1:] == shape[1:] and shape[0] in (None, a.shape[0]))))


def check_finite(name, a):
    """Raise ValueError naming the first NaN or infinity of array `a` (or of a CSR matrix's stored
    values, by row and column), if it has one."""
    if is_sparse(a):
        bad = np.flatnonzero(~np.isfinite(a.data))
        if len(bad):
            row = int(np.searchsorted(a.indptr, bad[0], side="right")) - 1
            value = a.data[bad[0]]
            raise ValueError(f"{name} must be finite, found {'NaN' if np.isnan(value) else value} at index "
                             f"({row}, {int(a.indices[bad[0]])})")
        return
    if not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        value = a[tuple(bad)]
        raise ValueError(f"{name} must be finite, found {'NaN' if np.isnan(value) else value} at index "
                         f"{tuple(int(i) for i in bad)}")


def _converted(name, a, ndim, dtype, shape):
    """check_array's full path: every check with its message, then a C-contiguous, writeable copy
    of the right dtype where `a` is not one already."""
    if isinstance(a, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array, got a string")
    if is_sparse(a):
        raise TypeError(f"{name} is a scipy.sparse matrix: only X may be sparse (use {name}.toarray())")
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got {arr.ndim}-D array of shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if shape is not None:
        for axis, (want, got) in enumerate(zip(shape, arr.shape)):
            if want is not None and want != got:
                raise ValueError(
                    f"{name} must have shape {_shape_text(shape)}, got {arr.shape} "
                    f"(axis {axis} is {got}, expected {want})"
                )
    return np.require(arr, dtype=dtype, requirements=["C", "W"])    # read-only input (a memmap): a copy


def check_labels(name, y, *, n_classes=None, n_samples=None):
    """Return integer class labels `y` (N,) as int64, each in [0, n_classes)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D class labels, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise ValueError(f"{name} must hold integer class labels, got non-integer values")
    elif arr.dtype.kind not in "biu":
        raise TypeError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 8 and (arr > np.iinfo(np.int64).max).any():
        expected = f"[0, {n_classes})" if n_classes is not None else ">= 0"
        raise ValueError(f"{name} must hold labels in {expected}, got values up to {arr.max()}")
    arr = arr.astype(np.int64)
    if n_samples is not None and len(arr) != n_samples:
        raise ValueError(f"{name} must have {n_samples} labels (one per row of X), got {len(arr)}")
    if (arr < 0).any() or (n_classes is not None and (arr >= n_classes).any()):
        expected = f"[0, {n_classes})" if n_classes is not None else ">= 0"
        raise ValueError(f"{name} must hold labels in {expected}, got values from {arr.min()} to {arr.max()}")
    return arr


def check_sample_weight(name, w, n_samples, dtype):
    """Return sample weights `w` as a (n_samples,) array of `dtype`: finite, non-negative, not all zero."""
    arr = np.asarray(w)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 1 or len(arr) != n_samples:
        raise ValueError(f"{name} must have shape ({n_samples},), one weight per row of X, got shape {arr.shape}")
    arr = np.require(arr, dtype=dtype, requirements=["C", "W"])
    check_finite(name, arr)
    if (arr < 0).any():
        raise ValueError(f"{name} must be non-negative, found {arr.min()} at index {int(np.argmin(arr))}")
    if not arr.any():
        raise ValueError(f"{name} must not be all zero")
    return arr


def check_targets(name, y, *, n_outputs, n_samples, dtype):
    """Return regression targets `y`, (N,) or (N, n_outputs), as a finite (N, n_outputs) array."""
    arr = np.asarray(y)
    if arr.ndim == 1 and n_outputs == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be targets of shape (N,) or (N, {n_outputs}), got shape {arr.shape}")
    arr = check_array(name, arr, ndim=2, dtype=dtype, shape=(None, n_outputs))
    if len(arr) != n_samples:
        raise ValueError(f"{name} must have {n_samples} rows (one per row of X), got {len(arr)}")
    return arr


def _shape_text(shape):
    return "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
