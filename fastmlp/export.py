"""Every format conversion in one place: ONNX (to_onnx), PyTorch (to_torch, from_torch) and
scikit-learn (the estimators' from_sklearn / to_sklearn).

A network is its architecture and its parameters (fastmlp.architecture); each format holds the same
two things in its own words:

    fastmlp              ONNX                    PyTorch                     scikit-learn
    W_l (in, out)        Gemm's B (in, out)      Linear.weight (out, in)     coefs_[l - 1]
    b_l (out,)           Gemm's C                Linear.bias                 intercepts_[l - 1]
    bias=False           MatMul, no C            Linear(bias=False)          (always has biases)
    "sigmoid"            Sigmoid                 nn.Sigmoid                  "logistic"
    "tanh", "relu"       Tanh, Relu              nn.Tanh, nn.ReLU            "tanh", "relu"
    "leaky_relu"         Max(x, 0.01 x)          nn.LeakyReLU(0.01)          (fastmlp's only)
    "elu"                see onnx_elu            nn.ELU()                    (fastmlp's only)
    "softplus"           see onnx_softplus       nn.Softplus()               (fastmlp's only)
    "gelu"               see onnx_gelu           nn.GELU()                   (fastmlp's only)
    "silu"               Mul(x, Sigmoid(x))      nn.SiLU()                   (fastmlp's only)
    "softmax"            Softmax(axis=-1)        nn.Softmax(dim=-1)          "softmax"
    "exp" (output)       Exp                     (none: to_torch refuses)    "exp" (loss="poisson")
    "identity"           (nothing)               (nothing)                   "identity"

The optional libraries (onnx, torch, scikit-learn) are imported inside the functions that use them,
so `import fastmlp` never imports them; without them a clear ImportError names the extra to install.
"""

import copy
import warnings

import numpy as np

from .files import atomic_path
from .network import MLP
from .bricks import LEAKY_SLOPE, OUTPUTS


def onnx_leaky_relu(graph, x, output):
    """leaky_relu as Max(x, slope x): LeakyRelu's alpha is a float32 attribute (0.01 off by 2e-10)."""
    slope = graph.constant(f"{output}_slope", graph.scalar(LEAKY_SLOPE))
    return graph.node("Max", [x, graph.node("Mul", [x, slope], f"{output}_scaled")], output)


def onnx_elu(graph, x, output):
    """ELU (alpha 1) as Where(x > 0, x, Exp(Min(x, 0)) - 1): onnxruntime has no float64 Elu."""
    zero, one = graph.constant(f"{output}_0", graph.scalar(0)), graph.constant(f"{output}_1", graph.scalar(1))
    below = graph.node("Sub", [graph.node("Exp", [graph.node("Min", [x, zero], f"{output}_min")], f"{output}_exp"),
                               one], f"{output}_below")
    return graph.node("Where", [graph.node("Greater", [x, zero], f"{output}_pos"), x, below], output)


def onnx_softplus(graph, x, output):
    """Softplus as Relu(x) + Log(1 + Exp(-Abs(x))), which never overflows: onnxruntime has no float64
    Softplus."""
    one = graph.constant(f"{output}_1", graph.scalar(1))
    tail = graph.node("Exp", [graph.node("Neg", [graph.node("Abs", [x], f"{output}_abs")], f"{output}_neg")],
                      f"{output}_exp")
    log = graph.node("Log", [graph.node("Add", [one, tail], f"{output}_1p")], f"{output}_log")
    return graph.node("Add", [graph.node("Relu", [x], f"{output}_relu"), log], output)


def onnx_cdf64(graph, x, output):
    """The standard normal CDF Phi(x) in float64, which onnxruntime's Erf lacks, as the kernels compute
    it (fastmath.gelu_parts64): with a = min(|x|, 40) and N(a), D(a) by Horner's rule,
    h = exp(-x**2 / 2) N / D / 2, and Phi = h below 0, else 1 - h; one node per step."""
    from .kernels.fastmath import ERFCX_A_MAX, ERFCX_DEN_64, ERFCX_NUM_64
    names = iter(range(10**6))

    def op(op_type, *inputs):
        return graph.node(op_type, list(inputs), f"{output}_{next(names)}")

    def const(value):
        return graph.constant(f"{output}_c{next(names)}", graph.scalar(value))

    def horner(coefficients, a):
        value = const(coefficients[-1])
        for c in coefficients[-2::-1]:
            value = op("Add", op("Mul", value, a), const(c))
        return value

    gauss = op("Exp", op("Mul", op("Mul", x, x), const(-0.5)))
    a = op("Min", op("Abs", x), const(ERFCX_A_MAX))
    ratio = op("Div", horner(ERFCX_NUM_64, a), horner(ERFCX_DEN_64, a))
    half_erfc = op("Mul", op("Mul", gauss, ratio), const(0.5))
    return graph.node("Where", [op("Less", x, const(0.0)), half_erfc, op("Sub", const(1.0), half_erfc)], output)


def onnx_gelu(graph, x, output):
    """The exact GELU x Phi(x), Phi as 0.5 (1 + Erf(x / sqrt 2)) in float32 and onnx_cdf64 in float64
    (onnxruntime has no float64 Erf): ONNX's Gelu operator arrived in opset 20."""
    if graph.dtype == np.float64:
        return graph.node("Mul", [x, onnx_cdf64(graph, x, f"{output}_cdf")], output)
    half, one = graph.constant(f"{output}_half", graph.scalar(0.5)), graph.constant(f"{output}_1", graph.scalar(1))
    scale = graph.constant(f"{output}_scale", graph.scalar(1 / np.sqrt(2)))
    scaled = graph.node("Mul", [x, scale], f"{output}_scaled")
    erf = graph.node("Erf", [scaled], f"{output}_erf")
    cdf = graph.node("Mul", [half, graph.node("Add", [one, erf], f"{output}_1p")], f"{output}_cdf")
    return graph.node("Mul", [x, cdf], output)


def onnx_silu(graph, x, output):
    """SiLU as x Sigmoid(x)."""
    return graph.node("Mul", [x, graph.node("Sigmoid", [x], f"{output}_sigmoid")], output)


# The bricks as ONNX operators: (op_type, attributes), or a function (graph, x, output) building the
# brick from standard operators; identity adds no node.
ONNX_FUNCTIONS = {
    "identity": None,
    "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}),
    "relu": ("Relu", {}),
    "leaky_relu": onnx_leaky_relu,
    "elu": onnx_elu,
    "softplus": onnx_softplus,
    "gelu": onnx_gelu,
    "silu": onnx_silu,
    "softmax": ("Softmax", {"axis": -1}),
    "exp": ("Exp", {}),
}
# The bricks as torch.nn modules: (class name, constructor keywords, which from_torch requires of a
# module too); identity adds no module. PyTorch's Softplus returns z itself above its threshold (20 by
# default: 0 to 2e-9 from log(1 + exp(z)) there, far below float32's rounding of z but not float64's), so
# a float64 export sets it to SOFTPLUS_THRESHOLD_64, above which log(1 + exp(-z)) < 4.3e-18 is below half
# z's ulp (exp(40) does not overflow).
SOFTPLUS_THRESHOLD_64 = 40.0
TORCH_FUNCTIONS = {
    "identity": None,
    "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}),
    "relu": ("ReLU", {}),
    "leaky_relu": ("LeakyReLU", {"negative_slope": LEAKY_SLOPE}),
    "elu": ("ELU", {"alpha": 1.0}),
    "softplus": ("Softplus", {"beta": 1.0}),
    "gelu": ("GELU", {"approximate": "none"}),
    "silu": ("SiLU", {}),
    "softmax": ("Softmax", {"dim": -1}),
}

# opset 17 holds every operator used here in its current meaning (Softmax along one axis since 13) and
# loads in every onnxruntime since 1.13; an older or newer one may be asked for (13 to onnx's newest).
DEFAULT_OPSET = 17
MIN_OPSET = 13


def _require(module, extra):
    """Import an optional dependency, or raise ImportError naming the extra that installs it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"this needs {module.split('.')[0]}: pip install 'fastmlp[{extra}]'") from None


def _network_of(model, caller):
    """(MLP, estimator or None) behind `model`: an MLP, or a fitted fastmlp MLPClassifier/MLPRegressor."""
    if isinstance(model, MLP):
        return model, None
    if hasattr(model, "_network") and hasattr(model, "hidden_layer_sizes"):
        if not hasattr(model, "coefs_"):
            raise ValueError(f"{caller}: this {type(model).__name__} is not fitted yet; call fit first")
        return model._network(), model
    raise TypeError(f"{caller}: model must be a fastmlp.MLP or a fitted fastmlp MLPClassifier / MLPRegressor, "
                    f"got {type(model).__name__}")


# -- ONNX ------------------------------------------------------------------------------------------------


def to_onnx(model, path=None, *, dtype=None, opset=None):
    """The onnx.ModelProto that computes `model` (an MLP or a fitted fastmlp estimator); written to
    `path` atomically when one is given.

    Input "X" (N, n_inputs), N dynamic. Outputs as skl2onnx names them (zipmap=False): "variable"
    (N, n_outputs) for an MLP and a regressor; "label" (N,) (the classes_: int64, strings or floats;
    (N, n_labels) int64 for multilabel) and "probabilities" (N, n_classes) for a classifier (both
    columns for a binary one). dtype: "float32" (the default) or "float64". opset: the ai.onnx opset
    (default DEFAULT_OPSET); the IR version is the lowest that opset needs. Needs fastmlp[onnx].
    """
    onnx = _require("onnx", "onnx")
    net, estimator = _network_of(model, "to_onnx")
    dtype = np.dtype("float32" if dtype is None else dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    opset = DEFAULT_OPSET if opset is None else opset
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or isinstance(opset, bool) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an integer from {MIN_OPSET} to {newest} (the installed onnx's newest), "
                         f"got {opset!r}")
    graph = _OnnxGraph(onnx, dtype)
    out = graph.network(net)
    if estimator is None or not net._arch.is_classifier():
        outputs = [graph.output("variable", out, ["N", net.sizes[-1]])]
    else:
        outputs = graph.classifier(out, estimator)
    proto = graph.model(outputs, opset)
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        with atomic_path(path) as tmp:
            tmp.write_bytes(proto.SerializeToString())
    return proto


class _OnnxGraph:
    """The nodes, initializers and names of one graph as it is built."""

    def __init__(self, onnx, dtype):
        self.onnx, self.dtype = onnx, dtype
        self.nodes, self.initializers = [], []
        self.input = None                   # set by network(), which knows the inputs' width

    def _elem(self, dtype):
        return self.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    def constant(self, name, value):
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op_type, inputs, output, **attributes):
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [output], name=output, **attributes))
        return output

    def scalar(self, value):
        return np.array(value, self.dtype)

    def function(self, name, x, output):
        """The brick `name` (ONNX_FUNCTIONS) applied to x."""
        entry = ONNX_FUNCTIONS[name]
        if entry is None:
            return x
        if callable(entry):
            return entry(self, x, output)
        op_type, attributes = entry
        return self.node(op_type, [x], output, **attributes)

    def network(self, net):
        """h_L of `net`: per layer z_l = Gemm(h_{l-1}, W_l, b_l) (MatMul without biases), then its brick."""
        self.input = self.onnx.helper.make_tensor_value_info("X", self._elem(self.dtype), ["N", net.sizes[0]])
        h = "X"
        weights, biases = net._arch.split(net._theta)
        functions = (*net.activations, net.output)
        for l, (W, b, name) in enumerate(zip(weights, biases, functions), start=1):
            W = self.constant(f"W{l}", W.astype(self.dtype))
            if net.bias:
                z = self.node("Gemm", [h, W, self.constant(f"b{l}", b.astype(self.dtype))], f"z{l}")
            else:
                z = self.node("MatMul", [h, W], f"z{l}")
            h = self.function(name, z, f"h{l}")
        return h

    def output(self, name, x, shape, dtype=None):
        """Make x the graph output `name`."""
        self.node("Identity", [x], name)
        return self.onnx.helper.make_tensor_value_info(name, self._elem(dtype or self.dtype), shape)

    def classifier(self, h, estimator):
        """"label" and "probabilities" from the output layer h, as the estimator's predict and predict_proba."""
        classes = estimator.classes_
        if estimator._label_binarizer.y_type_.startswith("multilabel"):
            above = self.node("Greater", [h, self.constant("half", self.scalar(0.5))], "above_half")
            label = self.node("Cast", [above], "labels", to=self.onnx.TensorProto.INT64)
            return [self.output("label", label, ["N", len(classes)], np.int64),
                    self.output("probabilities", h, ["N", len(classes)])]
        if len(classes) == 2:                       # one sigmoid output: the columns 1 - p and p
            one = self.constant("one", self.scalar(1))
            h = self.node("Concat", [self.node("Sub", [one, h], "one_minus_p"), h], "p_both", axis=1)
        index = self.node("ArgMax", [h], "class_index", axis=1, keepdims=0)
        kind = classes.dtype.kind
        if kind not in "iufUSOb":
            raise ValueError(f"to_onnx: classes_ of dtype {classes.dtype} have no ONNX tensor type")
        values = (classes.astype(np.int64) if kind in "iub" else classes.astype(np.float64) if kind == "f"
                  else np.array([str(c) for c in classes], dtype=object))
        label = self.node("Gather", [self.constant("classes", values), index], "class_label", axis=0)
        return [self.output("label", label, ["N"], values.dtype if kind in "iubf" else object),
                self.output("probabilities", h, ["N", len(classes)])]

    def model(self, outputs, opset):
        helper = self.onnx.helper
        graph = helper.make_graph(self.nodes, "fastmlp", [self.input], outputs, self.initializers)
        opsets = [helper.make_opsetid("", opset)]
        return helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets),
                                 producer_name="fastmlp")


# -- PyTorch ---------------------------------------------------------------------------------------------


def to_torch(model, *, dtype=None):
    """A torch.nn.Sequential computing `model`'s output layer (an MLP or a fitted fastmlp estimator):
    per layer a Linear (weight (out, in) = W_l.T, bias b_l; bias=False without biases), then the
    layer's activation module, the output function last. dtype: the model's by default. Needs torch."""
    torch = _require("torch", "peers")
    net, _ = _network_of(model, "to_torch")
    dtype = np.dtype(net.dtype if dtype is None else dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if net.output not in TORCH_FUNCTIONS:
        raise ValueError(f"to_torch: PyTorch has no module for the output {net.output!r}; export the "
                         f"network's z (fastmlp.MLP with output='identity' and the same parameters) and apply "
                         f"torch.{net.output} to it, or use to_onnx")
    modules = []
    weights, biases = net._arch.split(net._theta)
    for W, b, name in zip(weights, biases, (*net.activations, net.output)):
        linear = torch.nn.Linear(*W.shape, bias=net.bias, dtype=getattr(torch, dtype.name))
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T.astype(dtype)))
            if net.bias:
                linear.bias.copy_(torch.from_numpy(b.astype(dtype)))
        modules.append(linear)
        if TORCH_FUNCTIONS[name] is not None:
            class_name, keywords = TORCH_FUNCTIONS[name]
            if name == "softplus" and dtype == np.float64:
                keywords = {**keywords, "threshold": SOFTPLUS_THRESHOLD_64}
            modules.append(getattr(torch.nn, class_name)(**keywords))
    return torch.nn.Sequential(*modules)


def from_torch(sequential, *, output=None, loss=None, backend="numba"):
    """The MLP that computes a torch.nn.Sequential of Linear layers, each followed by at most one
    activation (nn.Sigmoid, nn.Tanh, nn.ReLU; nn.Identity modules and nested Sequentials are read
    through). The last module gives the output function (nn.Sigmoid, or nn.Softmax over the last
    dimension; a final Linear: `output`, "identity" unless given, e.g. "softmax" for a network trained
    on logits with CrossEntropyLoss, "exp" for one trained with PoissonNLLLoss(log_input=True)).
    loss: "cross_entropy" for sigmoid/softmax outputs, "poisson" for exp and "mse" for identity unless
    given. dtype from the parameters (float32 or float64). Any module it cannot express
    is refused with the reason. Needs torch."""
    torch = _require("torch", "peers")
    if not isinstance(sequential, torch.nn.Sequential):
        raise TypeError(f"from_torch: expected a torch.nn.Sequential, got {type(sequential).__name__}")
    layers = _torch_layers(torch, sequential)
    linears = [linear for linear, _ in layers]
    for i, (before, after) in enumerate(zip(linears, linears[1:]), start=1):
        if before.out_features != after.in_features:
            raise ValueError(f"from_torch: Linear layer {i} gives {before.out_features} features but layer "
                             f"{i + 1} takes {after.in_features}")
    has_bias = {linear.bias is not None for linear in linears}
    if len(has_bias) > 1:
        raise ValueError("from_torch: some Linear layers have biases and others not; a fastmlp network has "
                         "biases in every layer or in none")
    dtypes = {p.dtype for linear in linears for p in linear.parameters()}
    if len(dtypes) > 1 or dtypes - {torch.float32, torch.float64}:
        raise ValueError(f"from_torch: parameters must all be float32 or all float64, got "
                         f"{sorted(str(d) for d in dtypes)}")
    hidden = [name or "identity" for _, name in layers[:-1]]
    if "softmax" in hidden:
        raise ValueError("from_torch: Softmax between Linear layers; fastmlp takes softmax only as the output")
    last = layers[-1][1]
    if last is not None and output is not None and output != last:
        raise ValueError(f"from_torch: the Sequential ends with {last}, but output={output!r} was given")
    output = last or output or "identity"
    if output not in OUTPUTS:
        raise ValueError(f"from_torch: the last layer's {output} is not one of fastmlp's output functions "
                         f"({', '.join(OUTPUTS)}); end the Sequential with a Linear layer or one of those")
    if loss is None:
        loss = {"identity": "mse", "exp": "poisson"}.get(output, "cross_entropy")
    sizes = [linears[0].in_features] + [linear.out_features for linear in linears]
    dtype = str(dtypes.pop()).replace("torch.", "")
    net = MLP(sizes, bias=has_bias.pop(), backend=backend, dtype=dtype, activation=hidden or "identity",
              output=output, loss=loss)
    net.weights = [linear.weight.detach().cpu().numpy().T for linear in linears]
    if net.bias:
        net.biases = [linear.bias.detach().cpu().numpy() for linear in linears]
    return net


def _torch_layers(torch, sequential):
    """[(Linear, brick name or None)] of a Sequential, nested Sequentials and Identity modules read through."""
    by_class = {getattr(torch.nn, entry[0]): name for name, entry in TORCH_FUNCTIONS.items() if entry}
    layers = []
    for i, module in enumerate(_flattened(torch, sequential)):
        if isinstance(module, torch.nn.Identity):
            continue
        if type(module) is torch.nn.Linear:
            layers.append([module, None])
            continue
        name = by_class.get(type(module))
        if name is None:
            known = ", ".join(entry[0] for entry in TORCH_FUNCTIONS.values() if entry)
            why = " (fastmlp has no dropout; in inference it does nothing: drop it)" if "Dropout" in str(module) else ""
            raise ValueError(f"from_torch: module {i} ({module!r}) has no fastmlp brick{why}; fastmlp reads Linear "
                             f"layers, each followed by at most one of {known}")
        wanted = {key: value for key, value in TORCH_FUNCTIONS[name][1].items() if key != "dim"}
        other = {key: getattr(module, key) for key, value in wanted.items() if getattr(module, key) != value}
        if other:
            raise ValueError(f"from_torch: module {i} ({module!r}) has {other}; fastmlp's {name} has {wanted}")
        if name == "softmax" and module.dim not in (None, 1, -1):
            raise ValueError(f"from_torch: module {i} ({module!r}) takes softmax over dim {module.dim}; fastmlp's "
                             f"softmax runs over the features (dim=-1)")
        if not layers:
            raise ValueError(f"from_torch: module {i} ({module!r}) comes before the first Linear layer")
        if layers[-1][1] is not None:
            raise ValueError(f"from_torch: module {i} ({module!r}) follows another activation; fastmlp applies "
                             f"one per layer")
        layers[-1][1] = name
    if not layers:
        raise ValueError("from_torch: the Sequential holds no Linear layer")
    return [tuple(layer) for layer in layers]


def _flattened(torch, sequential):
    for module in sequential:
        if isinstance(module, torch.nn.Sequential):
            yield from _flattened(torch, module)
        else:
            yield module


# -- scikit-learn ----------------------------------------------------------------------------------------

# The fitted attributes both estimators hold with the same meaning (those an estimator has are copied).
FITTED = ("coefs_", "intercepts_", "n_features_in_", "feature_names_in_", "classes_", "_label_binarizer",
          "n_iter_", "t_", "n_outputs_", "n_layers_", "out_activation_", "loss_", "loss_curve_", "best_loss_",
          "validation_scores_", "best_validation_score_")


def from_sklearn(cls, estimator):
    """A fastmlp estimator of class `cls` (MLPClassifier or MLPRegressor) with the parameters and
    fitted state of the scikit-learn estimator of the same name: FITTED, and for sgd and adam the
    optimizer's state (velocities, or first and second moments and the step count), the current rate
    and the convergence rule's counters."""
    from .loop import BAD_COUNT, BEST, LR_SCALE
    theirs = getattr(_require("sklearn.neural_network", "sklearn"), cls.__name__)
    if not isinstance(estimator, theirs):
        raise TypeError(f"from_sklearn: expected a fitted sklearn.neural_network.{cls.__name__}, got "
                        f"{type(estimator).__name__}")
    if not hasattr(estimator, "coefs_"):
        raise ValueError(f"from_sklearn: this {cls.__name__} is not fitted yet")
    params = estimator.get_params()
    ours = cls(**{k: v for k, v in params.items() if k in cls._get_param_names()})
    ours._check_params()
    for name in FITTED:
        if hasattr(estimator, name):
            setattr(ours, name, copy.deepcopy(getattr(estimator, name)))
    _rescale_losses(ours, ours._loss_scale() if ours.solver != "lbfgs" else 1)
    sizes = [W.shape[0] for W in ours.coefs_] + [ours.coefs_[-1].shape[1]]
    ours._net = ours._build_network(sizes, ours.coefs_[0].dtype)
    net = ours._network()
    ours._publish(net)
    sk_optimizer = getattr(estimator, "_optimizer", None)
    if sk_optimizer is not None:
        optimizer = ours._optimizer = ours._new_optimizer().prepare(net._theta, net._arch.n_trained)
        moments = [sk_optimizer.velocities] if ours.solver == "sgd" else [sk_optimizer.ms, sk_optimizer.vs]
        for slot, arrays in zip(optimizer.slots, moments):
            slot[...] = np.concatenate([a.ravel() for a in arrays])
        optimizer.count[0] = getattr(sk_optimizer, "t", 0)
        rate = float(sk_optimizer.learning_rate)
        adaptive = ours.solver == "sgd" and ours.learning_rate == "adaptive"
        ours._learning_rate = rate if ours.learning_rate == "invscaling" else float(ours.learning_rate_init)
        ours._stopping = ours._new_stopping(net._theta)
        state = ours._stopping.state
        state[BEST] = -ours.best_validation_score_ if ours.early_stopping else ours.best_loss_
        state[BAD_COUNT] = getattr(estimator, "_no_improvement_count", 0)
        state[LR_SCALE] = rate / ours.learning_rate_init if adaptive else 1.0
    return ours


def to_sklearn(ours):
    """The scikit-learn estimator of the same name with the parameters and fitted state of a fastmlp one
    (the reverse of from_sklearn, exact: the same arrays, copied)."""
    from .loop import BAD_COUNT, LR_SCALE
    sk = _require("sklearn.neural_network", "sklearn")
    if not hasattr(ours, "coefs_"):
        raise ValueError(f"to_sklearn: this {type(ours).__name__} is not fitted yet")
    from .sklearn import SKLEARN_ACTIVATIONS
    if ours.activation not in SKLEARN_ACTIVATIONS:
        raise ValueError(f"to_sklearn: scikit-learn's MLPs have no activation {ours.activation!r} (they have "
                         f"{', '.join(SKLEARN_ACTIVATIONS)}); to_onnx or to_torch carry it")
    if getattr(ours, "class_weight", None) is not None:
        warnings.warn("to_sklearn: scikit-learn's MLPClassifier has no class_weight; the estimator it returns "
                      "predicts as this one, but fits (partial_fit, warm starts) without class weights",
                      UserWarning, stacklevel=2)
    theirs = getattr(sk, type(ours).__name__)
    estimator = theirs(**{k: v for k, v in ours.get_params().items() if k in theirs._get_param_names()})
    for name in FITTED:
        if hasattr(ours, name):
            setattr(estimator, name, copy.deepcopy(getattr(ours, name)))
    if hasattr(ours, "out_activation_") and ours.solver != "lbfgs":
        _rescale_losses(estimator, 1 / ours._loss_scale())
    optimizer = getattr(ours, "_optimizer", None)
    if optimizer is None:
        return estimator
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer
    params = estimator.coefs_ + estimator.intercepts_
    stopping = ours._stopping
    rate = ours._learning_rate * (stopping.state[LR_SCALE] if stopping is not None else 1.0)
    arch = ours._net._arch
    if ours.solver == "sgd":
        sk_optimizer = SGDOptimizer(params, ours.learning_rate_init, ours.learning_rate, ours.momentum,
                                    ours.nesterovs_momentum, ours.power_t)
        sk_optimizer.velocities = _layers(arch, optimizer.slots[0])
    else:
        sk_optimizer = AdamOptimizer(params, ours.learning_rate_init, ours.beta_1, ours.beta_2, ours.epsilon)
        sk_optimizer.ms, sk_optimizer.vs = _layers(arch, optimizer.slots[0]), _layers(arch, optimizer.slots[1])
        sk_optimizer.t = int(optimizer.count[0])
    sk_optimizer.learning_rate = float(rate)
    estimator._optimizer = sk_optimizer
    estimator._no_improvement_count = int(stopping.state[BAD_COUNT]) if stopping is not None else 0
    return estimator


def _rescale_losses(estimator, scale):
    """loss_curve_, loss_ and best_loss_ times `scale`: a multi-output regressor's squared error is
    n_outputs_ times scikit-learn's in fastmlp (its sum over the outputs; see fastmlp.sklearn)."""
    if scale == 1:
        return
    if getattr(estimator, "loss_curve_", None) is not None:
        estimator.loss_curve_ = [value * scale for value in estimator.loss_curve_]
    for name in ("loss_", "best_loss_"):
        if getattr(estimator, name, None) is not None:
            setattr(estimator, name, getattr(estimator, name) * scale)


def _layers(arch, flat):
    """A flat vector in theta's layout as scikit-learn's per-layer list: weights, then biases (copies)."""
    weights, biases = arch.split(flat)
    return [a.copy() for a in weights + biases]
