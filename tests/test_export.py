"""fastmlp.export: ONNX checked with ONNX Runtime, PyTorch and scikit-learn conversions both ways."""

import itertools
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import export

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

ONNX_TOL = {"float32": 1e-5, "float64": 1e-12}
ACTIVATIONS = tuple(fastmlp.bricks.ACTIVATIONS)
OUTPUTS = (("identity", "mse"), ("sigmoid", "cross_entropy"), ("sigmoid", "mse"), ("softmax", "cross_entropy"),
           ("softmax", "mse"), ("exp", "poisson"))


def every_brick_combination():
    """Depth 0 to 3 hidden layers; each activation alone at every depth, and mixed stacks; every output
    and loss; with and without biases."""
    stacks = [()] + [(a,) * depth for a in ACTIVATIONS for depth in (1, 2, 3)]
    stacks += [("relu", "tanh"), ("sigmoid", "identity", "relu"), ("tanh", "relu", "sigmoid")]
    for stack, (output, loss), bias in itertools.product(stacks, OUTPUTS, (True, False)):
        sizes = (5, *(7 - i for i in range(len(stack))), 3)
        yield fastmlp.MLP(sizes, bias=bias, activation=list(stack) or "sigmoid", output=output, loss=loss,
                          init="glorot", seed=len(stack))


def session(proto):
    return onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def inputs(n_features, n=17, seed=0, scale=4.0):
    return np.random.default_rng(seed).normal(scale=scale, size=(n, n_features))


def assert_close(got, want, dtype):
    """Within the tolerance of the README's table: absolute for values of order one, relative beyond."""
    tol = ONNX_TOL[dtype]
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


# -- ONNX ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnx_runtime_computes_every_brick_combination(dtype):
    count = 0
    for net in every_brick_combination():
        X = inputs(net.sizes[0])
        proto = fastmlp.to_onnx(net, dtype=dtype)
        onnx.checker.check_model(proto, full_check=True)
        run = session(proto)
        assert [i.name for i in run.get_inputs()] == ["X"] and [o.name for o in run.get_outputs()] == ["variable"]
        got = run.run(None, {"X": X.astype(dtype)})[0]
        assert got.dtype == dtype and got.shape == (len(X), net.sizes[-1])
        assert_close(got, net.forward(X), dtype)
        count += 1
    assert count == (1 + 3 * len(ACTIVATIONS) + 3) * len(OUTPUTS) * 2      # every combination ran


def test_onnx_batch_dimension_is_dynamic_and_float32_is_the_default():
    net = fastmlp.MLP((4, 6, 2), activation="relu", output="softmax", loss="cross_entropy", init="glorot")
    proto = fastmlp.to_onnx(net)
    run = session(proto)
    for n in (1, 3, 1000):
        X = inputs(4, n)
        got = run.run(None, {"X": X.astype(np.float32)})[0]
        assert got.dtype == np.float32
        assert_close(got, net.forward(X), "float32")
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and dims[1].dim_value == 4


def test_onnx_pins_an_opset_and_its_ir_version():
    net = fastmlp.MLP((3, 4, 2), activation="tanh", output="softmax", loss="cross_entropy")
    X = inputs(3)
    for opset in range(export.MIN_OPSET, export.DEFAULT_OPSET + 1):
        proto = fastmlp.to_onnx(net, dtype="float64", opset=opset)
        assert [(o.domain, o.version) for o in proto.opset_import] == [("", opset)]
        assert proto.ir_version == onnx.helper.find_min_ir_version_for(list(proto.opset_import))
        assert_close(session(proto).run(None, {"X": X})[0], net.forward(X), "float64")
    assert fastmlp.to_onnx(net).opset_import[0].version == export.DEFAULT_OPSET


def test_onnx_writes_the_file_whole(tmp_path):
    net = fastmlp.MLP((3, 4, 2))
    path = tmp_path / "sub" / "model.onnx"
    proto = fastmlp.to_onnx(net, path)
    assert onnx.load(path) == proto
    path.write_bytes(b"old")
    with pytest.raises(ValueError, match="opset"):
        fastmlp.to_onnx(net, path, opset=1)
    assert path.read_bytes() == b"old" and [p.name for p in path.parent.iterdir()] == ["model.onnx"]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(dtype="float16"), ValueError, "dtype must be 'float32' or 'float64'"),
    (dict(opset=12), ValueError, "opset must be an integer from 13"),
    (dict(opset=10_000), ValueError, "opset must be an integer"),
    (dict(opset="17"), ValueError, "opset must be an integer"),
])
def test_onnx_refuses_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        fastmlp.to_onnx(fastmlp.MLP((2, 3, 2)), **kwargs)


def test_conversions_refuse_what_is_not_a_model():
    with pytest.raises(TypeError, match="model must be a fastmlp.MLP"):
        fastmlp.to_onnx(np.zeros(3))
    sk = pytest.importorskip("fastmlp.sklearn")
    with pytest.raises(ValueError, match="not fitted yet"):
        fastmlp.to_onnx(sk.MLPClassifier())


def test_a_missing_optional_library_names_its_extra(monkeypatch):
    import importlib
    real = importlib.import_module

    def without_onnx(name, *args):
        if name == "onnx":
            raise ImportError("no onnx here")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_onnx)
    with pytest.raises(ImportError, match=r"pip install 'fastmlp\[onnx\]'"):
        fastmlp.to_onnx(fastmlp.MLP((2, 3, 2)))


# -- ONNX of the fitted estimators -------------------------------------------------------------------------

def targets(kind, n):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, n)
    return {"binary": y % 2, "binary_strings": np.array(["no", "yes"])[y % 2],
            "multiclass_strings": np.array(["cat", "dog", "emu"])[y], "multiclass_floats": y * 2.0,
            "multilabel": np.c_[y == 0, y > 0, y % 2].astype(int)}[kind]


def assert_same_labels_away_from_ties(label, want, probabilities):
    """Labels equal wherever the top two probabilities are not within 1e-5 of each other."""
    top2 = np.sort(probabilities, axis=1)[:, -2:] if probabilities.shape[1] > 1 else None
    clear = np.ones(len(want), bool) if top2 is None else top2[:, 1] - top2[:, 0] > 1e-5
    if label.ndim == 2:                                     # multilabel: each output against 0.5
        clear = np.all(np.abs(probabilities - 0.5) > 1e-5, axis=1)
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(label[clear], np.asarray(want)[clear])


@pytest.mark.parametrize("kind", ["binary", "binary_strings", "multiclass_strings", "multiclass_floats",
                                  "multilabel"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnx_classifier_gives_label_and_probabilities(kind, dtype):
    sk = pytest.importorskip("fastmlp.sklearn")
    X = inputs(6, 120)
    y = targets(kind, len(X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = sk.MLPClassifier((9, 5), max_iter=30, random_state=0).fit(X, y)
    run = session(fastmlp.to_onnx(est, dtype=dtype))
    assert [o.name for o in run.get_outputs()] == ["label", "probabilities"]
    label, probabilities = run.run(None, {"X": X.astype(dtype)})
    want = est.predict_proba(X)
    assert probabilities.dtype == dtype and probabilities.shape == want.shape
    assert_close(probabilities, want, dtype)
    if kind.endswith("strings"):
        assert label.dtype == object
    elif kind != "multiclass_floats":
        assert label.dtype == np.int64
    assert_same_labels_away_from_ties(label, est.predict(X), probabilities)


@pytest.mark.parametrize("n_outputs", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnx_regressor_gives_variable(n_outputs, dtype):
    sk = pytest.importorskip("fastmlp.sklearn")
    X = inputs(4, 80)
    y = X[:, :n_outputs] ** 2 + X[:, 1:n_outputs + 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = sk.MLPRegressor(hidden_layer_sizes=(8,), max_iter=40, random_state=0, activation="tanh")
        est.fit(X, y.squeeze())
    got = session(fastmlp.to_onnx(est, dtype=dtype)).run(None, {"X": X.astype(dtype)})[0]
    assert got.shape == (len(X), n_outputs)
    assert_close(got, est.predict(X).reshape(len(X), -1), dtype)


# -- PyTorch -----------------------------------------------------------------------------------------------

def test_to_torch_computes_the_same_outputs_and_round_trips_exactly():
    torch = pytest.importorskip("torch")
    for net in every_brick_combination():
        if net.output == "exp":                    # no module in PyTorch: refused (test_poisson_regressors...)
            continue
        X = inputs(net.sizes[0])
        model = fastmlp.to_torch(net)
        assert all(p.dtype == torch.float64 for p in model.parameters())
        with torch.no_grad():
            got = model(torch.from_numpy(X)).numpy()
        np.testing.assert_allclose(got, net.forward(X), rtol=1e-12, atol=1e-12)
        back = fastmlp.from_torch(model, output=None, loss=net.loss_name)
        assert back._arch == net._arch
        np.testing.assert_array_equal(back._theta, net._theta)
        assert back.dtype == net.dtype


def test_to_torch_softplus_is_exact_in_float64_above_pytorchs_default_threshold():
    """PyTorch's Softplus returns z itself above its threshold (20 by default): 2e-9 off at z = 20, more
    than float64's rounding; a float64 export raises the threshold, a float32 one needs not."""
    torch = pytest.importorskip("torch")
    net = fastmlp.MLP((1, 1, 1), activation="softplus", output="identity", loss="mse")
    net.weights, net.biases = [np.ones((1, 1)), np.ones((1, 1))], [np.zeros(1), np.zeros(1)]
    z = np.linspace(15.0, 45.0, 61).reshape(-1, 1)
    with torch.no_grad():
        got = fastmlp.to_torch(net)(torch.from_numpy(z)).numpy()
        got32 = fastmlp.to_torch(net, dtype="float32")(torch.from_numpy(z.astype(np.float32))).numpy()
    np.testing.assert_allclose(got, net.forward(z), rtol=1e-15, atol=0)
    np.testing.assert_allclose(got32, net.forward(z), rtol=1e-7, atol=0)
    default = torch.nn.Sequential(torch.nn.Linear(1, 2), torch.nn.Softplus(), torch.nn.Linear(2, 1))
    assert fastmlp.from_torch(default.double()).activations == ("softplus",)         # any threshold


def test_to_torch_layers_are_pytorchs_own():
    torch = pytest.importorskip("torch")
    net = fastmlp.MLP((3, 5, 2), activation="relu", output="softmax", loss="cross_entropy", dtype="float32")
    model = fastmlp.to_torch(net)
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear", "Softmax"]
    np.testing.assert_array_equal(model[0].weight.detach().numpy(), net.weights[0].T)
    np.testing.assert_array_equal(model[2].bias.detach().numpy(), net.biases[1])
    assert model[0].weight.dtype == torch.float32
    assert fastmlp.to_torch(net, dtype="float64")[0].weight.dtype == torch.float64


def test_from_torch_reads_a_network_trained_in_pytorch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
                                torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.Identity()),
                                torch.nn.Linear(6, 3)).double()
    net = fastmlp.from_torch(model, output="softmax")
    assert net.activations == ("tanh", "identity") and net.output == "softmax" and net.loss_name == "cross_entropy"
    X = inputs(4)
    with torch.no_grad():
        logits = model(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(net.forward(X), fastmlp.bricks.softmax(logits), rtol=1e-12, atol=1e-14)
    assert fastmlp.from_torch(torch.nn.Sequential(torch.nn.Linear(4, 2))).output == "identity"


@pytest.mark.parametrize("layers, output, match", [
    ("Linear(4, 8), Dropout(), Linear(8, 3)", None, "Dropout.*no dropout"),
    ("Linear(4, 8), LeakyReLU(0.2), Linear(8, 3)", None, r"negative_slope.: 0.2.*leaky_relu has"),
    ("Linear(4, 8), Softplus(beta=2.0), Linear(8, 3)", None, r"beta.: 2.0"),
    ("Linear(4, 8), GELU(approximate='tanh'), Linear(8, 3)", None, r"approximate.: .tanh."),
    ("Linear(4, 8), Hardswish(), Linear(8, 3)", None, "no fastmlp brick"),
    ("Linear(4, 8), ReLU(), ReLU(), Linear(8, 3)", None, "follows another activation"),
    ("ReLU(), Linear(4, 8)", None, "before the first Linear"),
    ("Linear(4, 8), Linear(7, 3)", None, "gives 8 features but layer 2 takes 7"),
    ("Linear(4, 8), Linear(8, 3), ReLU()", None, "not one of fastmlp's output functions"),
    ("Linear(4, 8), Softmax(dim=-1), Linear(8, 3)", None, "softmax only as the output"),
    ("Linear(4, 8), Softmax(dim=0)", None, "over dim 0"),
    ("Linear(4, 8), Sigmoid()", "softmax", "ends with sigmoid, but output='softmax'"),
    ("Linear(4, 8), Linear(8, 3, bias=False)", None, "some Linear layers have biases"),
    ("", None, "no Linear layer"),
])
def test_from_torch_refuses_what_it_cannot_express(layers, output, match):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    model = nn.Sequential(*eval(f"[{layers}]", {k: getattr(nn, k) for k in dir(nn)}))
    with pytest.raises(ValueError, match=match):
        fastmlp.from_torch(model, output=output)


def test_from_torch_refuses_mixed_dtypes_and_other_types():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="must all be float32 or all float64"):
        fastmlp.from_torch(torch.nn.Sequential(torch.nn.Linear(4, 8).double(), torch.nn.Linear(8, 3)))
    with pytest.raises(ValueError, match="must all be float32 or all float64"):
        fastmlp.from_torch(torch.nn.Sequential(torch.nn.Linear(4, 8).half()))
    with pytest.raises(TypeError, match="expected a torch.nn.Sequential"):
        fastmlp.from_torch(torch.nn.Linear(4, 8))


# -- scikit-learn ------------------------------------------------------------------------------------------

SOLVERS = [dict(solver="adam"), dict(solver="sgd"), dict(solver="sgd", nesterovs_momentum=False),
           dict(solver="sgd", learning_rate="invscaling"), dict(solver="sgd", learning_rate="adaptive",
                                                                 n_iter_no_change=1, tol=10.0)]


def digits():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    return X[:400] / 16, y[:400]


def assert_same_state(a, b, tol=1e-12):
    for name in export.FITTED:
        if name in ("coefs_", "intercepts_"):
            for x, y in zip(getattr(a, name), getattr(b, name), strict=True):
                np.testing.assert_allclose(x, y, rtol=0, atol=tol)
        elif name == "loss_curve_" and hasattr(b, name):
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12)
        elif name not in ("_label_binarizer", "loss_", "best_loss_") and hasattr(b, name):
            assert np.all(getattr(a, name) == getattr(b, name)), name


@pytest.mark.parametrize("params", SOLVERS, ids=lambda p: "-".join(map(str, p.values())))
def test_sklearn_conversions_keep_training_where_they_stood(params):
    """scikit-learn fits, fastmlp takes over (partial_fit), scikit-learn takes back: each step equals the
    run that never changed library."""
    sk = pytest.importorskip("sklearn.neural_network")
    X, y = digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sk.MLPClassifier((20,), max_iter=4, random_state=0, **params).fit(X, y)
        ours = fastmlp.MLPClassifier.from_sklearn(theirs)
        assert type(ours) is fastmlp.MLPClassifier and ours.get_params()["solver"] == params["solver"]
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=0, atol=1e-12)
        assert_same_state(ours, theirs)
        for _ in range(3):
            theirs.partial_fit(X, y)
            ours.partial_fit(X, y)
        assert_same_state(ours, theirs)
        back = ours.to_sklearn()
        assert type(back) is sk.MLPClassifier
        for _ in range(2):
            theirs.partial_fit(X, y)
            back.partial_fit(X, y)
        assert_same_state(back, theirs)
        np.testing.assert_array_equal(back.predict(X), theirs.predict(X))


def test_sklearn_conversions_of_regressors_and_string_labels():
    sk = pytest.importorskip("sklearn.neural_network")
    X, y = digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sk.MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=30, random_state=0)
        theirs.fit(X, np.c_[y, y ** 2] / 10)
        ours = fastmlp.MLPRegressor.from_sklearn(theirs)
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-12, atol=1e-12)
        assert ours.loss_ == theirs.loss_ and ours.n_iter_ == theirs.n_iter_
        labels = np.array(["zero", "one", "two"])[y % 3]
        mine = fastmlp.MLPClassifier((7,), max_iter=3, random_state=1).fit(X.astype(np.float32), labels)
        back = mine.to_sklearn()
        np.testing.assert_array_equal(back.predict(X), mine.predict(X))
        assert back.coefs_[0].dtype == np.float32 and back.coefs_[0] is not mine.coefs_[0]
        again = fastmlp.MLPClassifier.from_sklearn(back)
        assert again.predict_proba(X[:5]).dtype == np.float64
        np.testing.assert_array_equal(again.predict_proba(X), mine.predict_proba(X))


def test_sklearn_conversions_refuse_what_they_cannot_convert():
    sk = pytest.importorskip("sklearn.neural_network")
    with pytest.raises(TypeError, match="expected a fitted sklearn.neural_network.MLPClassifier"):
        fastmlp.MLPClassifier.from_sklearn(sk.MLPRegressor())
    with pytest.raises(ValueError, match="not fitted yet"):
        fastmlp.MLPClassifier.from_sklearn(sk.MLPClassifier())
    with pytest.raises(ValueError, match="not fitted yet"):
        fastmlp.MLPRegressor().to_sklearn()
    X, y = digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weighted = fastmlp.MLPClassifier((5,), max_iter=2, class_weight="balanced", random_state=0).fit(X, y)
    with pytest.warns(UserWarning, match="has no class_weight"):
        weighted.to_sklearn()


def test_poisson_regressors_convert_both_ways():
    """scikit-learn's MLPRegressor(loss="poisson") comes over with its exp output and goes back."""
    sk = pytest.importorskip("sklearn.neural_network")
    X, y = digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sk.MLPRegressor(loss="poisson", hidden_layer_sizes=(7,), max_iter=3, random_state=0).fit(X, y)
    ours = fastmlp.MLPRegressor.from_sklearn(theirs)
    assert ours.loss == "poisson" and ours.out_activation_ == "exp"
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-13)
    np.testing.assert_allclose(ours.to_sklearn().predict(X), theirs.predict(X), rtol=1e-15)
    session = pytest.importorskip("onnxruntime").InferenceSession(
        fastmlp.to_onnx(ours, dtype="float64").SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"X": X})[0].ravel(), ours.predict(X), rtol=1e-13)
    with pytest.raises(ValueError, match="PyTorch has no module for the output 'exp'"):
        fastmlp.to_torch(ours)


def test_estimator_coefs_are_the_network_and_predictions_follow_them():
    """coefs_ set or changed in place by a user reach predictions (the network copies nothing on its own)."""
    sk = pytest.importorskip("fastmlp.sklearn")
    X, y = digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = sk.MLPClassifier((6,), max_iter=2, random_state=0).fit(X, y)
    before = est.predict_proba(X)
    est.coefs_[1][...] = 0                                  # in place: the output layer sees only its biases
    np.testing.assert_allclose(est.predict_proba(X), np.tile(fastmlp.bricks.softmax(est.intercepts_[1][None]),
                                                             (len(X), 1)), rtol=1e-12)
    rng = np.random.default_rng(0)
    est.coefs_ = [W + rng.normal(size=W.shape) for W in est.coefs_]     # a new list
    assert not np.allclose(est.predict_proba(X), before)
    import copy
    twin = copy.deepcopy(est)
    twin.coefs_[0][...] = 0                                 # a copy's arrays are its own
    assert not np.allclose(twin.predict_proba(X), est.predict_proba(X))


def test_estimators_with_fastmlps_own_activations_export_but_not_to_sklearn():
    sk = pytest.importorskip("fastmlp.sklearn")
    X = inputs(5, 60)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    for activation in ("leaky_relu", "elu", "softplus"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = sk.MLPClassifier((6,), activation=activation, max_iter=20, random_state=0).fit(X, y)
        probabilities = session(fastmlp.to_onnx(est, dtype="float64")).run(None, {"X": X})[1]
        assert_close(probabilities, est.predict_proba(X), "float64")
        with pytest.raises(ValueError, match=f"no activation '{activation}'"):
            est.to_sklearn()
