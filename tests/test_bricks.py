"""The bricks themselves: stable at extremes, and the losses as scikit-learn defines them."""

import warnings

import numpy as np
import pytest

from fastmlp import bricks


def test_cross_entropy_is_stable_where_probabilities_underflow():
    """z = +-1000: log p would be log(0); computed from z the loss is exact and finite."""
    z = np.array([[1000.0, -1000.0]])
    Y = np.array([[0.0, 1.0]])
    assert bricks.cross_entropy(Y, z, bricks.softmax(z), "softmax")[0] == pytest.approx(2000.0)
    assert bricks.cross_entropy(Y, z, bricks.sigmoid(z), "sigmoid")[0] == pytest.approx(2000.0)


def test_sigmoid_is_clean_at_extremes():
    z = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = bricks.sigmoid(z)
        s32 = bricks.sigmoid(z.astype(np.float32))
        p = bricks.softmax(z[None, :])
    assert s[0] == 0.0 and s[-1] == 1.0 and s[2] == 0.5
    assert s32[0] == 0.0 and s32[-1] == 1.0
    assert np.all(np.isfinite(s)) and p[0, -1] == 1.0
    np.testing.assert_allclose(s[1], np.exp(-50.0), rtol=1e-14)   # relative accuracy on the small side


def test_poisson_is_scikit_learns_half_deviance():
    """The rows' mean equals scikit-learn's poisson_loss (zero counts included: 0 log 0 = 0), and it is
    0 exactly where the predicted mean is the count."""
    base = pytest.importorskip("sklearn.neural_network._base")
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 3))
    Y = rng.poisson(np.exp(z)).astype(float)
    assert (Y == 0).any()
    h = bricks.exp(z)
    ours = bricks.poisson(Y, z, h, "exp").mean()
    assert ours == pytest.approx(base.poisson_loss(Y, h), rel=1e-13)
    w = rng.random(50)
    assert np.average(bricks.poisson(Y, z, h, "exp"), weights=w) == pytest.approx(
        base.poisson_loss(Y, h, sample_weight=w), rel=1e-13)
    counts = np.array([[1.0, 4.0]])
    assert bricks.poisson(counts, np.log(counts), counts, "exp")[0] == pytest.approx(0.0, abs=1e-15)


def test_every_loss_names_its_outputs():
    """LOSS_OUTPUTS covers every loss, and names only outputs that exist."""
    assert set(bricks.LOSS_OUTPUTS) == set(bricks.LOSSES)
    for outputs in bricks.LOSS_OUTPUTS.values():
        assert set(outputs) <= set(bricks.OUTPUTS)
