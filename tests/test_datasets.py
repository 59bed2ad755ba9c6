import numpy as np

import fastmlp


def test_xor_is_the_article_data():
    X, y = fastmlp.datasets.xor(300, seed=0)
    expected = np.random.RandomState(0).randn(300, 2)
    assert np.array_equal(X, expected)
    assert np.array_equal(y, ((expected[:, 0] > 0) != (expected[:, 1] > 0)).astype(int))
    assert y.dtype == np.int64 and set(np.unique(y)) == {0, 1}


def test_one_hot_column_is_class():
    Y = fastmlp.one_hot(np.array([0, 1, 1]), 2)
    assert Y.tolist() == [[1, 0], [0, 1], [0, 1]]
