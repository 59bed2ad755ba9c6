"""Seeded toy datasets in 2-D, and one-hot encoding.

Every generator returns (X, y): X float64 (n, 2), y int64 class labels (n,), and never touches
numpy's global random state.
"""

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
