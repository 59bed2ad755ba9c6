"""fastmlp.sklearn against scikit-learn: its estimator checks, and the same fit path as its MLP."""

import pathlib
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_friedman1  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkClassifier, MLPRegressor as SkRegressor  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402


def balanced_is_not_incremental(estimator):
    """Checks that class_weight="balanced" fails by design: partial_fit refuses it (as scikit-learn's
    SGDClassifier does: one call's class frequencies are not the data's), and weights that rebalance
    the classes change when rows are repeated, so weighting is not repeating there."""
    if getattr(estimator, "class_weight", None) != "balanced":
        return {}
    refused = "partial_fit refuses class_weight='balanced'"
    return {"check_fit_score_takes_y": refused, "check_n_features_in_after_fitting": refused,
            "check_estimators_partial_fit_n_features": refused,
            "check_sample_weight_equivalence_on_dense_data": "balanced weights depend on the class counts",
            "check_sample_weight_equivalence_on_sparse_data": "balanced weights depend on the class counts"}


@parametrize_with_checks([MLPClassifier(max_iter=50), MLPRegressor(max_iter=50),
                          MLPClassifier(class_weight="balanced", activation="elu", dropout=0.1, max_iter=50),
                          MLPRegressor(loss="poisson", activation="softplus", max_iter=50)],
                         expected_failed_checks=balanced_is_not_incremental)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16, y[:600]


def parameters(estimator):
    return estimator.coefs_ + estimator.intercepts_


def assert_same_fit(ours, theirs, X, y, tol=1e-10, **fit_params):
    """Both fitted from the same random_state: the same parameters, curves, attributes, predictions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs.fit(X, y, **fit_params)
        ours.fit(X, y, **fit_params)
    for mine, want in zip(parameters(ours), parameters(theirs), strict=True):
        np.testing.assert_allclose(mine, want, rtol=0, atol=tol)
    assert ours.n_iter_ == theirs.n_iter_
    for name in ("loss_curve_", "validation_scores_"):
        if getattr(theirs, name, None) is not None:
            np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-9, atol=1e-12)
    for name in ("t_", "n_outputs_", "n_layers_", "out_activation_", "n_features_in_"):
        assert getattr(ours, name) == getattr(theirs, name), name
    if isinstance(ours, MLPRegressor):
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9)
    else:
        np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


SOLVERS = [
    dict(solver="adam"),
    dict(solver="sgd", learning_rate_init=0.1),                                   # nesterov momentum
    dict(solver="sgd", learning_rate_init=0.1, nesterovs_momentum=False),
    dict(solver="sgd", learning_rate_init=0.5, momentum=0.0, learning_rate="invscaling"),
    dict(solver="sgd", learning_rate_init=0.2, learning_rate="adaptive", max_iter=40, tol=1e-2),
    dict(solver="adam", early_stopping=True, n_iter_no_change=3),
    dict(solver="adam", shuffle=False, batch_size=47),
    dict(solver="lbfgs", max_iter=30),
]


@pytest.mark.parametrize("params", SOLVERS, ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()))
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_classifier_walks_scikit_learns_path(digits, params, backend):
    X, y = digits
    kw = dict(dict(hidden_layer_sizes=(24,), activation="relu", random_state=3, max_iter=15, batch_size=64), **params)
    assert_same_fit(MLPClassifier(backend=backend, **kw), SkClassifier(**kw), X, y,
                    tol=1e-7 if params["solver"] == "lbfgs" else 1e-10)


@pytest.mark.parametrize("target", ["binary", "strings", "multilabel"])
def test_classifier_targets(digits, target):
    X, y = digits
    y = {"binary": (y > 4).astype(int), "strings": np.array(["odd", "even"])[y % 2],
         "multilabel": np.stack([y > 4, y % 2 == 0, y == 3], axis=1).astype(int)}[target]
    kw = dict(hidden_layer_sizes=(16, 8), activation="tanh", random_state=0, max_iter=10, early_stopping=True)
    ours, theirs = MLPClassifier(**kw), SkClassifier(**kw)
    assert_same_fit(ours, theirs, X, y)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)
    np.testing.assert_allclose(ours.predict_log_proba(X[:5]), np.log(theirs.predict_proba(X[:5])), atol=1e-8)
    assert list(ours.classes_) == list(theirs.classes_)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_regressor_walks_scikit_learns_path(solver):
    X, y = make_friedman1(300, random_state=0)
    kw = dict(hidden_layer_sizes=(16, 8), activation="logistic", solver=solver, random_state=1, max_iter=25,
              learning_rate_init=0.01 if solver == "sgd" else 0.05)
    assert_same_fit(MLPRegressor(**kw), SkRegressor(**kw), X, y, tol=1e-7 if solver == "lbfgs" else 1e-10)


@pytest.mark.parametrize("solver, learning_rate", [("sgd", "constant"), ("sgd", "adaptive"), ("adam", "constant")])
def test_multi_output_regressor_stops_where_scikit_learn_does(solver, learning_rate):
    """fastmlp's squared error sums over the outputs, scikit-learn's averages: the rule compares with tol
    times the outputs (with tol itself, tol=0.01 on two targets ran an epoch more)."""
    X, y = sklearn.datasets.make_regression(200, 5, noise=3, random_state=0)
    Y = np.c_[y, y ** 2 / 100] / 100
    for tol in (1e-2, 0.1, 0.5):
        kw = dict(hidden_layer_sizes=(10,), max_iter=200, random_state=0, solver=solver, learning_rate_init=0.05,
                  tol=tol, n_iter_no_change=2, learning_rate=learning_rate)
        ours, theirs = MLPRegressor(**kw).fit(X, Y), SkRegressor(**kw).fit(X, Y)
        assert ours.n_iter_ == theirs.n_iter_
        for a, b in zip(parameters(ours), parameters(theirs)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


def test_multi_output_regressor_conversions_keep_each_librarys_loss_scale():
    X, y = sklearn.datasets.make_regression(200, 5, noise=3, random_state=0)
    Y = np.c_[y, y ** 2 / 100] / 100
    kw = dict(hidden_layer_sizes=(10,), max_iter=5, random_state=0, solver="sgd", learning_rate_init=0.05, tol=0.01,
              n_iter_no_change=2, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = SkRegressor(**kw).fit(X, Y)
        ours = MLPRegressor.from_sklearn(theirs)
        assert ours.best_loss_ == pytest.approx(2 * theirs.best_loss_, rel=1e-15)
        for _ in range(6):
            theirs.partial_fit(X, Y)
            ours.partial_fit(X, Y)
        assert ours._no_improvement_count == theirs._no_improvement_count
        back = ours.to_sklearn()
        assert back.loss_curve_[-1] == pytest.approx(theirs.loss_curve_[-1], rel=1e-5)    # (the penalty's share)
        theirs.set_params(max_iter=30).fit(X, Y)
        back.set_params(max_iter=30).fit(X, Y)
    assert back.n_iter_ == theirs.n_iter_


WEIGHTED = [
    dict(solver="adam"),
    dict(solver="sgd", learning_rate_init=0.1),
    dict(solver="adam", early_stopping=True, n_iter_no_change=3),         # the split keeps the weights
    dict(solver="lbfgs", max_iter=30),
]


def weights_for(n, seed=0):
    """Sample weights in [0, 2), one in ten exactly 0."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < 0.1, 0.0, rng.random(n) * 2)


@pytest.mark.parametrize("params", WEIGHTED, ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()))
def test_sample_weight_walks_scikit_learns_path(digits, params):
    """scikit-learn 1.7's sample_weight: each batch's loss a weighted mean, the penalty over sum(w),
    the validation split's weights weighting its score."""
    X, y = digits
    tol = 1e-7 if params["solver"] == "lbfgs" else 1e-10
    kw = dict(dict(hidden_layer_sizes=(24,), random_state=3, max_iter=12, batch_size=64), **params)
    assert_same_fit(MLPClassifier(**kw), SkClassifier(**kw), X, y, tol, sample_weight=weights_for(len(X)))
    Xr, yr = make_friedman1(300, random_state=0)
    kw = dict(dict(hidden_layer_sizes=(16,), random_state=1, max_iter=12, learning_rate_init=0.01), **params)
    assert_same_fit(MLPRegressor(**kw), SkRegressor(**kw), Xr, yr, tol, sample_weight=weights_for(len(Xr), 1))


def test_partial_fit_with_sample_weight_walks_scikit_learns_path(digits):
    X, y = digits
    w = weights_for(len(X))
    kw = dict(hidden_layer_sizes=(12,), random_state=0, learning_rate_init=0.05)
    ours, theirs = MLPClassifier(**kw), SkClassifier(**kw)
    for k in range(3):
        rows = slice(200 * k, 200 * (k + 1))
        for est in (ours, theirs):
            est.partial_fit(X[rows], y[rows], sample_weight=w[rows], classes=np.arange(10))
    for mine, want in zip(parameters(ours), parameters(theirs), strict=True):
        np.testing.assert_allclose(mine, want, rtol=0, atol=1e-12)


def test_class_weight_multiplies_sample_weight(digits):
    """class_weight="balanced" or a dict is sample_weight times compute_sample_weight's weights: the
    same fit as scikit-learn's MLP given that product (it has no class_weight of its own)."""
    from sklearn.utils.class_weight import compute_sample_weight
    X, y = digits
    y = np.where(y < 2, y, 2)                        # classes 0 and 1 rare, class 2 common
    w = weights_for(len(X))
    kw = dict(hidden_layer_sizes=(16,), random_state=2, max_iter=10)
    for class_weight in ("balanced", {0: 5.0, 2: 0.5}):
        product = w * compute_sample_weight(class_weight, y)
        ours = MLPClassifier(class_weight=class_weight, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ours.fit(X, y, sample_weight=w)
            theirs = SkClassifier(**kw).fit(X, y, sample_weight=product)
        for mine, want in zip(parameters(ours), parameters(theirs), strict=True):
            np.testing.assert_allclose(mine, want, rtol=0, atol=1e-10)
    balanced = MLPClassifier(class_weight="balanced", **kw)
    with pytest.raises(ValueError, match="'balanced' is not supported for partial_fit"):
        balanced.partial_fit(X, y, classes=np.arange(3))
    with pytest.raises(ValueError, match="class_weight must be None, 'balanced' or a dict"):
        MLPClassifier(class_weight="even").fit(X, y)


@pytest.mark.parametrize("params", [dict(solver="adam"), dict(solver="sgd", learning_rate_init=0.01),
                                    dict(solver="lbfgs", max_iter=40)], ids=lambda p: p["solver"])
@pytest.mark.parametrize("weighted", [False, True])
def test_poisson_regressor_walks_scikit_learns_path(params, weighted):
    """loss="poisson": the exp output and half the Poisson deviance, on counts (zeros included)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    y = rng.poisson(np.exp(0.5 * X[:, 0] - 0.3 * X[:, 1] + 0.2)).astype(float)
    kw = dict(dict(loss="poisson", hidden_layer_sizes=(10,), random_state=0, max_iter=20, batch_size=50), **params)
    fit_params = dict(sample_weight=weights_for(len(X))) if weighted else {}
    ours = MLPRegressor(**kw)
    assert_same_fit(ours, SkRegressor(**kw), X, y, tol=1e-7 if params["solver"] == "lbfgs" else 1e-10, **fit_params)
    assert ours.out_activation_ == "exp" and (ours.predict(X) > 0).all()
    with pytest.raises(ValueError, match="y has negative values, which loss='poisson'"):
        MLPRegressor(loss="poisson").fit(X, y - 1)
    with pytest.raises(ValueError, match="loss must be one of"):
        MLPRegressor(loss="absolute_error").fit(X, y)


def test_multi_output_lbfgs_regression_walks_scikit_learns_path():
    """scikit-learn's lbfgs value averages the squared error over the outputs while its gradient does
    not; handing scipy that value (not fastmlp's sum / 2N) puts both on the same path: it ended 0.15
    apart before."""
    from sklearn.datasets import make_regression
    X, y = make_regression(120, 6, noise=5, random_state=0)
    Y = np.c_[y, y**2 / 100] / 100
    kw = dict(hidden_layer_sizes=(8,), solver="lbfgs", random_state=3, max_iter=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, theirs = MLPRegressor(**kw).fit(X, Y), SkRegressor(**kw).fit(X, Y)
    for mine, want in zip(parameters(ours), parameters(theirs), strict=True):      # rounding over 100 steps
        np.testing.assert_allclose(mine, want, rtol=0, atol=1e-7)                  # (one output: 3e-8)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=0, atol=1e-6)
    assert ours.n_iter_ == theirs.n_iter_ and ours.loss_ == pytest.approx(theirs.loss_, rel=1e-7)


@pytest.mark.parametrize("weighted", [False, True])
def test_lbfgs_classifier_walks_scikit_learns_path_through_saturated_trial_points(weighted):
    """scikit-learn's lbfgs value is the log loss of probabilities clipped to [eps, 1 - eps]: where its
    line search tries a long step that saturates outputs, the exact loss from the logits is another
    number (here up to 0.05 apart), and the paths parted (4.7e-3 apart after 10 iterations)."""
    from sklearn.datasets import make_classification
    X, y = make_classification(100, 6, n_informative=3, n_redundant=0, random_state=2)
    kw = dict(hidden_layer_sizes=(13, 3), activation="logistic", solver="lbfgs", max_iter=10, random_state=2)
    fit_params = dict(sample_weight=np.linspace(0, 2, len(y))) if weighted else {}
    assert_same_fit(MLPClassifier(**kw), SkClassifier(**kw), X, y, tol=1e-9, **fit_params)


@pytest.mark.parametrize("output", ["softmax", "multilabel"])
def test_clipped_log_loss_is_scikit_learns(output):
    """The value handed to lbfgs, against scikit-learn's own loss functions, saturated rows included."""
    from sklearn.neural_network._base import binary_log_loss, log_loss
    from fastmlp.sklearn import clipped_log_loss
    rng = np.random.default_rng(0)
    Z = rng.normal(scale=30, size=(50, 3))
    if output == "softmax":
        P = np.exp(Z - Z.max(1, keepdims=True))
        P /= P.sum(1, keepdims=True)
        Y = np.eye(3)[rng.integers(0, 3, 50)]
    else:
        P, Y = 1 / (1 + np.exp(-Z)), rng.integers(0, 2, (50, 3)).astype(float)
    w = rng.uniform(0, 2, 50)
    theirs = binary_log_loss if output == "multilabel" else log_loss
    for weights in (None, w):
        assert clipped_log_loss(Y, P, weights, output == "multilabel") == pytest.approx(
            theirs(Y, P.copy(), weights), rel=1e-14)


def test_float64_inputs_to_a_float32_fit_predict_in_float64(digits):
    """As scikit-learn: float32 weights with float64 X compute (and return) float64."""
    X, y = digits
    kw = dict(hidden_layer_sizes=(12,), random_state=0, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(**kw).fit(X.astype(np.float32), y)
        theirs = SkClassifier(**kw).fit(X.astype(np.float32), y)
    assert ours.coefs_[0].dtype == np.float32
    for dtype in (np.float32, np.float64):
        mine, want = ours.predict_proba(X.astype(dtype)), theirs.predict_proba(X.astype(dtype))
        assert mine.dtype == want.dtype == dtype
        np.testing.assert_allclose(mine, want, atol=1e-5)


def test_partial_fit_and_warm_start_follow_scikit_learn(digits):
    X, y = digits
    kw = dict(hidden_layer_sizes=(20,), random_state=0, solver="sgd", learning_rate="invscaling",
              learning_rate_init=0.3)
    ours, theirs = MLPClassifier(**kw), SkClassifier(**kw)
    for chunk in np.array_split(np.arange(len(X)), 3):
        ours.partial_fit(X[chunk], y[chunk], classes=np.arange(10))
        theirs.partial_fit(X[chunk], y[chunk], classes=np.arange(10))
    for mine, want in zip(parameters(ours), parameters(theirs)):
        np.testing.assert_allclose(mine, want, atol=1e-10)
    assert ours.t_ == theirs.t_ and ours.n_iter_ == theirs.n_iter_ == 1
    with pytest.raises(AttributeError):
        MLPClassifier(solver="lbfgs").partial_fit
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(X, y)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_warm_start_fits_go_on_with_scikit_learns_convergence_count(solver):
    """scikit-learn keeps best_loss_ and its count of epochs without improvement across warm-start fits:
    a fit that ends 9 epochs into a patience of 10 leaves the next one 2 epochs, not a fresh 11."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(61, 4))
    y = X[:, 0] * X[:, 1] + 0.1 * rng.normal(size=61)
    kw = dict(hidden_layer_sizes=(1, 14), activation="logistic", solver=solver, alpha=2e-3, batch_size=57,
              learning_rate_init=0.009, random_state=57, warm_start=True)
    ours, theirs = MLPRegressor(**kw), SkRegressor(**kw)
    iterations = []
    for max_iter in (13, 3, 5, 20):
        ours.set_params(max_iter=max_iter)
        theirs.set_params(max_iter=max_iter)
        assert_same_fit(ours, theirs, X, y, tol=1e-12)
        assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=1e-12)
        iterations.append(theirs.n_iter_)
    assert min(iterations[1:]) < 3, iterations      # the carried count stopped a fit early: the test bites


def test_warm_start_with_early_stopping_keeps_the_best_parameters_of_all_fits():
    """A warm-start fit whose epochs never beat the previous fit's best validation score ends with that
    best (scikit-learn's ends with its last epoch: its _best_coefs alias the arrays it trains)."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(61, 4))
    y = X[:, 0] * X[:, 1] + 0.1 * rng.normal(size=61)
    est = MLPRegressor(hidden_layer_sizes=(1, 14), activation="logistic", batch_size=57, learning_rate_init=0.009,
                       random_state=57, warm_start=True, early_stopping=True, validation_fraction=0.2, n_iter_no_change=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.set_params(max_iter=13).fit(X, y)
        best = [p.copy() for p in parameters(est)]
        est.set_params(max_iter=3).fit(X, y)
    assert max(est.validation_scores_[-est.n_iter_:]) < est.best_validation_score_   # no better epoch
    for mine, want in zip(parameters(est), best, strict=True):
        np.testing.assert_array_equal(mine, want)


@pytest.mark.parametrize("labels", [np.array([3, 7]), np.array([0, 1, 2]), np.array(["cat", "dog", "emu", "yak"]),
                                    np.array([1.0, 2.0, 4.0])], ids=["binary", "multiclass", "strings", "floats"])
def test_partial_fit_encodes_labels_as_label_binarizer_does_and_refuses_unknown_ones(labels):
    """partial_fit's targets for labels among classes_ come from a search in classes_, not from
    LabelBinarizer (its checks cost a fifth of a large partial_fit): the same targets; labels outside
    classes_, or of another kind, still get scikit-learn's error."""
    from sklearn.preprocessing import LabelBinarizer
    rng = np.random.default_rng(0)
    y = labels[rng.integers(0, len(labels), 200)]
    X = rng.normal(size=(200, 3))
    est = MLPClassifier((4,), random_state=0).partial_fit(X, y, classes=labels)
    _, Y, _ = est._validate_input(X, y, incremental=True, reset=False)
    np.testing.assert_array_equal(Y, LabelBinarizer().fit(labels).transform(y))
    if labels.dtype.kind in "iu":
        _, Y_float, _ = est._validate_input(X, y.astype(float), incremental=True, reset=False)
        np.testing.assert_array_equal(Y_float, Y)
    unknown = np.where(np.arange(200) == 5, np.array(["zebra"]) if labels.dtype.kind == "U" else labels.max() + 1, y)
    with pytest.raises(ValueError, match="classes not in"):
        est.partial_fit(X, unknown)
    if labels.dtype.kind in "iuf":
        with pytest.raises(ValueError, match="Unknown label type"):
            est.partial_fit(X, y + 0.25)


def test_coefs_are_the_parameters_predictions_use(digits):
    X, y = digits
    est = MLPClassifier((8,), max_iter=3, random_state=0).fit(X, y)
    before = est.predict_proba(X)
    est.coefs_ = [np.zeros_like(W) for W in est.coefs_]
    after = est.predict_proba(X)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, np.tile(after[0], (len(X), 1)))    # constant without weights


def test_pickle_clone_and_parallel_grid_search(digits):
    X, y = digits
    est = MLPClassifier((16,), max_iter=20, random_state=0).fit(X, y)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))
    assert clone(est).get_params() == est.get_params()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(MLPClassifier(max_iter=30, learning_rate_init=0.01, random_state=0),
                              {"hidden_layer_sizes": [(8,), (16,)]},
                              cv=2, n_jobs=2).fit(X, y)
    assert search.best_params_["hidden_layer_sizes"] in [(8,), (16,)]
    assert search.best_score_ > 0.8


@pytest.mark.parametrize("name, value, message", [
    ("hidden_layer_sizes", (10, 0), "hidden_layer_sizes must be positive"),
    ("activation", "mish", "activation must be one of"),
    ("solver", "newton", "solver must be one of"),
    ("learning_rate_init", 0.0, r"learning_rate_init must be a real number in \(0, inf\)"),
    ("beta_2", 1.0, r"beta_2 must be a real number in \[0, 1\)"),
    ("validation_fraction", 1.0, "validation_fraction"),
    ("batch_size", 0, "batch_size must be 'auto' or an integer"),
    ("max_iter", 0, "max_iter must be an integer >= 1"),
    ("backend", "cuda", "backend must be one of"),
    ("dtype", "float16", "dtype must be None"),
])
def test_bad_parameters_are_named(digits, name, value, message):
    X, y = digits
    with pytest.raises(ValueError, match=message):
        MLPClassifier(**{name: value}).fit(X, y)


def test_divergence_is_reported(digits):
    X, y = digits
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights. The input data may"):
        MLPRegressor(solver="sgd", learning_rate_init=1e6, max_iter=5).fit(X, y * 1e3)


def test_divergence_with_early_stopping_ends_with_scikit_learns_best_parameters():
    """scikit-learn goes on with non-finite parameters until its rule stops it, then restores the best;
    fastmlp stops where the loss diverges, warns, and restores the same best (its last score nan)."""
    X, y = sklearn.datasets.load_iris(return_X_y=True)
    params = dict(hidden_layer_sizes=100, activation="identity", solver="sgd", learning_rate_init=1,
                  max_iter=20, early_stopping=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SkRegressor(**params).fit(X, y)
    with pytest.warns(RuntimeWarning, match="training diverged"):
        ours = MLPRegressor(**params).fit(X, y)
    np.testing.assert_allclose(np.concatenate([p.ravel() for p in parameters(ours)]),
                               np.concatenate([p.ravel() for p in parameters(theirs)]), rtol=1e-12, atol=1e-12)
    assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_, rel=1e-12)
    assert np.isnan(ours.validation_scores_[-1]) and ours.n_iter_ < theirs.n_iter_
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-12)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_n_iter_no_change_inf_never_stops_and_counts_as_scikit_learn(digits, solver):
    X, y = digits
    params = dict(solver=solver, hidden_layer_sizes=(8,), tol=1e9, max_iter=7, n_iter_no_change=np.inf,
                  random_state=0)
    ours, theirs = MLPClassifier(**params), SkClassifier(**params)
    assert_same_fit(ours, theirs, X, y)
    assert ours.n_iter_ == 7 and ours._no_improvement_count == theirs._no_improvement_count == 6
    with pytest.raises(ValueError, match="n_iter_no_change must be an integer >= 1 or numpy.inf"):
        MLPClassifier(n_iter_no_change=2.5).fit(X, y)


def test_partial_fit_classes_are_checked_and_multilabel_columns_come_from_y():
    X = np.array([[3.0, 2.0], [1.0, 0.0]])
    clf = MLPClassifier(solver="sgd").partial_fit(X, [0, 1], classes=[0, 1])
    with pytest.raises(ValueError, match="is not the same as on last call to partial_fit"):
        clf.partial_fit(X, [1, 2], classes=[1, 2])
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        MLPClassifier(solver="sgd").partial_fit(X, np.array([[1, 0, 1], [0, 1, 1]]))
    Y = np.array([[1, 0, 1], [0, 1, 1]])
    clf = MLPClassifier(solver="sgd", random_state=0).partial_fit(X, Y, classes=[0, 1, 2])
    theirs = SkClassifier(solver="sgd", random_state=0).partial_fit(X, Y, classes=[0, 1, 2])
    assert clf.n_outputs_ == theirs.n_outputs_ == 3
    np.testing.assert_allclose(clf.predict_proba(X), theirs.predict_proba(X), rtol=1e-12)


def test_coefs_set_on_an_unfitted_estimator_are_trained_on_as_scikit_learn():
    """scikit-learn's partial_fit goes on from coefs_ and intercepts_ that a user sets (its own
    test_fit works an example by hand this way)."""
    X, y = np.array([[0.6, 0.8, 0.7]]), np.array([0])
    fitted = []
    for Estimator in (MLPClassifier, SkClassifier):
        clf = Estimator(hidden_layer_sizes=2, activation="logistic", solver="sgd", alpha=0.1,
                        learning_rate_init=0.1, momentum=0, max_iter=1)
        clf.coefs_ = [np.array([[0.1, 0.2], [0.3, 0.1], [0.5, 0]]), np.array([[0.1], [0.2]])]
        clf.intercepts_ = [np.array([0.1, 0.1]), np.array([1.0])]
        clf.n_outputs_, clf.n_layers_, clf.n_iter_, clf.t_ = 1, 3, 0, 0
        clf.out_activation_, clf.best_loss_, clf.loss_curve_, clf._no_improvement_count = "logistic", np.inf, [], 0
        clf._coef_grads, clf._intercept_grads = [0, 0], [0, 0]       # scikit-learn's own state
        fitted.append(clf.partial_fit(X, y, classes=[0, 1]))
    ours, theirs = fitted
    with pytest.raises(ValueError, match="X has 4 features and y 1 output columns, but coefs_ take 3 inputs"):
        clone_with_coefs = MLPClassifier(hidden_layer_sizes=2, solver="sgd")
        clone_with_coefs.coefs_, clone_with_coefs.intercepts_ = ours.coefs_, ours.intercepts_
        clone_with_coefs.out_activation_, clone_with_coefs.n_outputs_ = "logistic", 1
        clone_with_coefs.partial_fit(np.ones((5, 4)), [0, 1, 0, 1, 0], classes=[0, 1])
    np.testing.assert_allclose(ours.coefs_[0], [[0.098, 0.195756], [0.2956664, 0.096008], [0.4939998, -0.002244]],
                               atol=1e-3)                             # the hand-worked update
    for a, b in zip(parameters(ours), parameters(theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-16)
    bare = MLPClassifier(hidden_layer_sizes=2, solver="sgd")          # no out_activation_: said, not crashed
    bare.coefs_, bare.intercepts_ = ours.coefs_, ours.intercepts_
    with pytest.raises(ValueError, match="set by hand need out_activation_ too"):
        bare.partial_fit(X, y, classes=[0, 1])


@pytest.mark.parametrize("Ours, Theirs, params", [
    (MLPClassifier, SkClassifier, dict(max_iter=300, n_iter_no_change=3, tol=0.1)),
    (MLPClassifier, SkClassifier, dict(max_iter=30, early_stopping=True, n_iter_no_change=2, tol=0.5)),
    (MLPRegressor, SkRegressor, dict(max_iter=30, early_stopping=True, n_iter_no_change=2, tol=0.5)),
    (MLPClassifier, SkClassifier, dict(solver="sgd", learning_rate="invscaling", max_iter=5)),
])
def test_verbose_prints_scikit_learns_lines(digits, capsys, Ours, Theirs, params):
    X, y = digits
    printed = []
    for Estimator in (Ours, Theirs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            Estimator(random_state=0, verbose=True, **params).fit(X[:300], y[:300])
        printed.append(capsys.readouterr().out)
    assert printed[0] == printed[1] and "Iteration 2, loss" in printed[0]


def test_set_params_between_warm_fits_apply_as_in_scikit_learn(digits):
    """A new activation applies to the fitted weights at once (predictions too, as scikit-learn's next
    forward pass); fastmlp kept the old one (0.15 apart in probabilities). early_stopping switched on
    or off between warm fits starts its own record (scikit-learn's fails on None)."""
    X, y = digits
    fitted = []
    for Estimator in (MLPClassifier, SkClassifier):
        est = Estimator(hidden_layer_sizes=(10,), max_iter=5, random_state=0, warm_start=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y).set_params(activation="tanh")
            before = est.predict_proba(X)
            fitted.append((before, est.fit(X, y)))
    (ours_before, ours), (theirs_before, theirs) = fitted
    np.testing.assert_allclose(ours_before, theirs_before, rtol=1e-12, atol=1e-15)
    for a, b in zip(parameters(ours), parameters(theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.set_params(early_stopping=True).fit(X, y)
        assert len(ours.validation_scores_) == ours.n_iter_ and ours.best_loss_ is None
        ours.set_params(early_stopping=False).fit(X, y)
    assert np.isfinite(ours.best_loss_)


def test_partial_fit_refuses_targets_of_another_width():
    """A regressor fitted on 2 targets and given 3 (scikit-learn's fails to broadcast): fastmlp's trained
    on the first 2 columns without a word."""
    X = np.ones((5, 3))
    reg = MLPRegressor(max_iter=2).partial_fit(X, np.ones((5, 2)))
    with pytest.raises(ValueError, match="y 3 output columns, but coefs_ take 3 inputs and give 2 outputs"):
        reg.partial_fit(X, np.ones((5, 3)))


# scikit-learn's own tests read attributes of its private objects that fastmlp's are not; SKLEARN_TESTED:
# the newest scikit-learn whose tests pass (a newer one's may test what fastmlp has not followed yet)
SKLEARN_TESTED = (1, 9)
SKLEARN_PRIVATE = {"test_gradient": "calls MLPClassifier._loss_grad_lbfgs",
                   "test_learning_rate_warmstart": "reads _optimizer.learning_rate of its SGDOptimizer",
                   "test_adaptive_learning_rate": "reads _optimizer.learning_rate of its SGDOptimizer"}


def test_scikit_learns_own_mlp_tests_pass(tmp_path):
    """The installed scikit-learn's sklearn/neural_network/tests/test_mlp.py, its estimators swapped for
    fastmlp's (its global_random_seed fixture as its conftest has it by default), all but the tests
    of its private objects (SKLEARN_PRIVATE)."""
    import sklearn.neural_network.tests as sk_tests
    source = (pathlib.Path(sk_tests.__file__).parent / "test_mlp.py").read_text()
    swap = ("from sklearn.neural_network import MLPClassifier, MLPRegressor",
            "from fastmlp.sklearn import MLPClassifier, MLPRegressor")
    assert source.count(swap[0]) == 1, "scikit-learn's test_mlp.py imports its estimators otherwise now"
    (tmp_path / "test_mlp_on_fastmlp.py").write_text(source.replace(*swap))
    (tmp_path / "conftest.py").write_text("import pytest\n\n@pytest.fixture\ndef global_random_seed():\n"
                                          "    return 42\n")
    deselect = [f"--deselect=test_mlp_on_fastmlp.py::{name}" for name in SKLEARN_PRIVATE]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                          "-W", "ignore::DeprecationWarning", *deselect, "test_mlp_on_fastmlp.py"],
                         cwd=tmp_path, capture_output=True, text=True)
    if run.returncode != 0 and tuple(int(p) for p in sklearn.__version__.split(".")[:2]) > SKLEARN_TESTED:
        pytest.xfail(f"scikit-learn {sklearn.__version__}'s own MLP tests, newer than the {SKLEARN_TESTED} ones "
                     f"fastmlp was checked against, fail:\n{run.stdout[-3000:]}")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout


def test_top_level_names_and_missing_scikit_learn():
    assert fastmlp.MLPClassifier is MLPClassifier and fastmlp.MLPRegressor is MLPRegressor
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import fastmlp\n"
            "try:\n    fastmlp.MLPClassifier\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'fastmlp[sklearn]'" in out


def test_early_stopping_on_a_validation_set_the_user_gives(digits):
    """fit(X, y, X_val=..., y_val=...): the whole of X trains, validation_scores_ are X_val's scores,
    and the parameters kept are those of the best of them."""
    X, y = digits
    X_train, y_train, X_val, y_val = X[:450], y[:450], X[450:], y[450:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPClassifier((20,), early_stopping=True, max_iter=30, random_state=0).fit(
            X_train, y_train, X_val=X_val, y_val=y_val)
        assert est.t_ == est.n_iter_ * len(X_train) and len(est.validation_scores_) == est.n_iter_
        assert est.best_validation_score_ == max(est.validation_scores_) == est.score(X_val, y_val)
        split = MLPClassifier((20,), early_stopping=True, max_iter=30, random_state=0).fit(X_train, y_train)
        assert split.t_ == split.n_iter_ * round(0.9 * len(X_train))
        reg = MLPRegressor(hidden_layer_sizes=(10,), early_stopping=True, max_iter=20, random_state=0).fit(
            X_train, y_train * 1.0, X_val=X_val, y_val=y_val * 1.0)
        assert reg.best_validation_score_ == pytest.approx(reg.score(X_val, y_val * 1.0), abs=1e-12)


@pytest.mark.parametrize("kwargs, fit_kwargs, match", [
    (dict(early_stopping=True), dict(X_val="X"), "must be given together"),
    (dict(), dict(X_val="X", y_val="y"), "set early_stopping=True"),
    (dict(early_stopping=True, solver="lbfgs"), dict(X_val="X", y_val="y"), "set early_stopping=True"),
    (dict(early_stopping=True), dict(X_val="X3", y_val="y"), "X has 3 features"),
    (dict(early_stopping=True), dict(X_val="X", y_val="y10"), "y_val has labels not in classes_"),
    (dict(early_stopping=True), dict(X_val="X", y_val="short"), "same number of rows"),
])
def test_a_validation_set_is_checked_like_the_training_set(digits, kwargs, fit_kwargs, match):
    X, y = digits
    y = y % 5
    named = {"X": X[:50], "X3": X[:50, :3], "y": y[:50], "y10": y[:50] + 5, "short": y[:49]}
    with pytest.raises(ValueError, match=match):
        MLPClassifier(max_iter=2, **kwargs).fit(X, y, **{k: named[v] for k, v in fit_kwargs.items()})


SPARSE = [
    dict(solver="adam"),
    dict(solver="sgd", learning_rate_init=0.1),
    dict(solver="adam", early_stopping=True, n_iter_no_change=3),         # the split of sparse rows
    dict(solver="lbfgs", max_iter=30),
]


@pytest.mark.parametrize("params", SPARSE, ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()))
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_X_walks_scikit_learns_path(digits, params, fmt):
    """scipy.sparse X (CSR, or CSC as scikit-learn takes it) with sample weights: the same path as
    scikit-learn's on the same matrix; predictions on sparse and dense X agree."""
    X, y = digits
    Xs = scipy.sparse.csr_matrix(X).asformat(fmt)
    tol = 1e-7 if params["solver"] == "lbfgs" else 1e-10
    kw = dict(dict(hidden_layer_sizes=(24,), random_state=3, max_iter=12, batch_size=64), **params)
    ours = MLPClassifier(**kw)
    assert_same_fit(ours, SkClassifier(**kw), Xs, y, tol, sample_weight=weights_for(len(y)))
    np.testing.assert_allclose(ours.predict_proba(Xs), ours.predict_proba(X), rtol=0, atol=1e-12)
    Xr, yr = make_friedman1(300, random_state=0)
    Xr[Xr < 0.5] = 0
    kw = dict(hidden_layer_sizes=(16,), random_state=1, max_iter=10, solver=params["solver"],
              learning_rate_init=0.01 if params["solver"] == "sgd" else 0.05)
    assert_same_fit(MLPRegressor(**kw), SkRegressor(**kw), scipy.sparse.csr_matrix(Xr).asformat(fmt), yr, tol)


def test_sparse_X_of_the_users_own_validation_set(digits):
    """X_val may be sparse too (and dense beside sparse X): the same validation scores either way."""
    X, y = digits
    kw = dict(hidden_layer_sizes=(16,), random_state=0, max_iter=6, early_stopping=True, n_iter_no_change=50)
    Xs = scipy.sparse.csr_matrix(X)
    runs = [MLPClassifier(**kw).fit(A[:500], y[:500], X_val=B[500:], y_val=y[500:])
            for A, B in ((X, X), (Xs, Xs), (Xs, X))]
    for run in runs[1:]:
        np.testing.assert_allclose(run.validation_scores_, runs[0].validation_scores_, rtol=0, atol=1e-12)
        np.testing.assert_allclose(run.coefs_[0], runs[0].coefs_[0], rtol=0, atol=1e-12)


def test_race_starts_each_timed_fit_after_a_settle(monkeypatch):
    """race.run sleeps SETTLE_S before every timed fit (of both libraries), so that no fit runs beside the
    BLAS threads the one before left spinning."""
    from fastmlp import race
    sleeps = []
    monkeypatch.setattr(race.time, "sleep", sleeps.append)
    case = race.RaceCase("wine-few-epochs", "wine", dict(max_iter=5))
    frame = race.run([case], repeats=2, echo=lambda line: None)
    assert len(frame) == 2 and sleeps == [race.SETTLE_S] * 4


def test_predict_after_fit_copies_no_parameters(monkeypatch):
    """coefs_ and intercepts_ are views into the network's theta (itself a view into a 64-byte-aligned
    buffer): predict finds them unchanged and does not copy them back into the network."""
    from fastmlp.network import MLP
    from fastmlp.sklearn import MLPClassifier
    X, y = np.random.default_rng(0).normal(size=(60, 5)), np.arange(60) % 3
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
    assert est._net._theta.ctypes.data % 64 == 0
    before = est.predict_proba(X)

    def refuse(self, values):
        raise AssertionError("predict copied the parameters")
    monkeypatch.setattr(MLP, "weights", property(MLP.weights.fget, refuse))
    np.testing.assert_array_equal(est.predict_proba(X), before)
    est.coefs_[0][0, 0] += 1.0                       # in place: the network sees it without a copy
    assert not np.array_equal(est.predict_proba(X), before)
