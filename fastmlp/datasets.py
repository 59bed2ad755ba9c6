"""Seeded toy datasets in 2-D, and one-hot encoding.

Every generator returns (X, y): X float64 (n, 2), y int64 class labels (n,), and never touches
numpy's global random state.
"""

import os

import numpy as np

from .validation import check_int, check_labels


def one_hot(y, n_classes):
    """Labels (N,) -> one-hot float64 (N, n_classes), column index = class (as the article's code)."""
    n_classes = check_int("n_classes", n_classes)
    y = check_labels("y", y, n_classes=n_classes)
    Y = np.zeros((len(y), n_classes))
    Y[np.arange(len(y)), y] = 1.0
    return Y


def xor(n=300, seed=0):
    """The article's XOR data: X = RandomState(seed).randn(n, 2); label 1 where the signs differ."""
    n = check_int("n", n)
    X = np.random.RandomState(seed).randn(n, 2)
    y = np.logical_xor(X[:, 0] > 0, X[:, 1] > 0).astype(np.int64)
    return X, y


def moons(n=300, noise=0.1, seed=0):
    """Two interleaving half circles (class 0 upper, class 1 lower), with Gaussian noise."""
    n = check_int("n", n)
    rng = np.random.RandomState(seed)
    y = np.arange(n) % 2
    angle = rng.uniform(0, np.pi, n)
    X = np.where(y[:, None] == 0,
                 np.c_[np.cos(angle), np.sin(angle)],
                 np.c_[1 - np.cos(angle), 0.5 - np.sin(angle)])
    return X + noise * rng.randn(n, 2), y.astype(np.int64)


def circles(n=300, noise=0.05, factor=0.5, seed=0):
    """A circle of class 1 (radius `factor`) inside a circle of class 0 (radius 1), with noise."""
    n = check_int("n", n)
    rng = np.random.RandomState(seed)
    y = np.arange(n) % 2
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = np.where(y == 1, factor, 1.0)
    X = radius[:, None] * np.c_[np.cos(angle), np.sin(angle)]
    return X + noise * rng.randn(n, 2), y.astype(np.int64)


def spirals(n=300, noise=0.1, turns=1.5, seed=0):
    """Two interleaved spiral arms, one per class."""
    n = check_int("n", n)
    rng = np.random.RandomState(seed)
    y = np.arange(n) % 2
    t = np.sqrt(rng.uniform(0, 1, n)) * turns * 2 * np.pi
    arm = np.where(y == 0, 1.0, -1.0)[:, None]
    X = arm * np.c_[t * np.cos(t), t * np.sin(t)] / (turns * 2 * np.pi)
    return X + noise * rng.randn(n, 2), y.astype(np.int64)


def load_csv(path, label="label", classes=True):
    """(X, y) from a CSV with a header: every column but `label` is a numeric feature.

    y: the label column's values mapped to 0..K-1 in sorted order (integers or strings alike), or with
    classes=False its numeric values as float64 targets (regression).
    """
    import pandas as pd

    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory, not a CSV file")
    table = pd.read_csv(path)
    if label not in table.columns:
        raise ValueError(f"label column {label!r} not found in {path}; columns are {list(table.columns)}")
    if len(table) == 0:
        raise ValueError(f"{path} has a header but no rows")
    features = table.drop(columns=[label])
    if features.shape[1] == 0:
        raise ValueError(f"{path} has no feature columns besides {label!r}")
    for column in features.columns:
        if not pd.api.types.is_numeric_dtype(features[column]):
            raise ValueError(f"column {column!r} of {path} is not numeric (dtype {features[column].dtype})")
    X = features.to_numpy(np.float64)
    if not np.isfinite(X).all():
        row, col = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(f"{path} has a missing or non-finite value in column {features.columns[col]!r}, row {row}")
    if table[label].isna().any():
        raise ValueError(f"label column {label!r} of {path} has missing values")
    if not classes:
        if not pd.api.types.is_numeric_dtype(table[label]):
            raise ValueError(f"label column {label!r} of {path} is not numeric (dtype {table[label].dtype})")
        return X, table[label].to_numpy(np.float64)
    _, y = np.unique(table[label].to_numpy(), return_inverse=True)
    return X, y.astype(np.int64)


GENERATORS = {"xor": xor, "moons": moons, "circles": circles, "spirals": spirals}
