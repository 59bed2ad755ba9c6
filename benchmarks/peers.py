"""The frameworks users would pick instead of fastmlp, computing the benchmark's networks: PyTorch, JAX
and scikit-learn (pip install -e '.[peers]').

Each peer offers the backends' forward(arch, theta, X) and step(arch, theta, X, Y, lr, reg, penalty)
(one l2 gradient-descent step in place on the flat theta of fastmlp.architecture, returning the loss
before it) and, where the framework has one, train_loop(arch, theta, X, Y, lrs, reg) (len(lrs) steps
on a fixed batch). They are written the way each framework's users write them: PyTorch eager with
autograd; JAX jit-compiled functions of the flat parameters, the loop under lax.scan; scikit-learn a
partial_fit of its MLP (plain SGD, the batch whole) on its own parameter lists. `setup(...)` hands the
benchmark a prepared call, so that converting arrays is not timed.
"""

import importlib.util

import numpy as np


def available(name):
    """None if the peer can run here, else why not."""
    module = {"torch": "torch", "jax": "jax", "sklearn": "sklearn"}[name]
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed (pip install -e '.[peers]')"
    return None


def cannot_express(name, arch, operation):
    """Why peer `name` cannot compute (arch, operation), or None if it can."""
    if name == "sklearn":
        if operation == "train_loop":
            return "scikit-learn has no multi-step loop on a fixed batch apart from its fit"
        if (arch.output, arch.loss) not in {("softmax", "cross_entropy"), ("identity", "mse")}:
            return (f"scikit-learn's MLPs pair softmax with log-loss (MLPClassifier, 3+ classes) and identity "
                    f"with squared error (MLPRegressor), not {arch.output} with {arch.loss}")
        if len(set(arch.activations)) > 1 or not arch.bias:
            return "scikit-learn's MLPs have one activation for every layer, and biases"
    return None


# -- PyTorch: eager tensors with autograd ---------------------------------------------------------------------

def torch_parameters(arch, theta):
    import torch
    weights, biases = arch.split(theta)
    return [torch.tensor(np.array(p), requires_grad=True) for p in weights + biases]


def torch_forward(arch, params, X):
    """(z_L, h_L): the output layer's pre-activation and output."""
    import torch
    L = arch.n_layers
    act = {"identity": lambda z: z, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
           "softmax": lambda z: torch.softmax(z, 1)}
    h = X
    for l, (W, b) in enumerate(zip(params[:L], params[L:])):
        z = h @ W + b
        h = act[arch.activations[l] if l < L - 1 else arch.output](z)
    return z, h


def torch_loss(arch, params, X, Y, reg):
    import torch.nn.functional as F
    z, out = torch_forward(arch, params, X)
    N = X.shape[0]
    if arch.loss == "cross_entropy" and arch.output == "softmax":
        data = -(Y * F.log_softmax(z, dim=1)).sum() / N
    elif arch.loss == "cross_entropy":
        data = F.binary_cross_entropy_with_logits(z, Y, reduction="sum") / N
    else:
        data = ((Y - out) ** 2).sum() / (2 * N)
    return data + reg / N * sum((W * W).sum() for W in params[:arch.n_layers]) / 2


def torch_setup(arch, theta, X, Y, lr, reg):
    """(forward, step, read): forward() -> output; step() one eager SGD step; read() -> flat theta."""
    import torch
    params = torch_parameters(arch, theta)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

    def forward():
        with torch.no_grad():
            return torch_forward(arch, params, Xt)[1]

    def step():
        loss = torch_loss(arch, params, Xt, Yt, reg)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
                p.grad = None
        return loss

    def read():
        return np.concatenate([p.detach().numpy().ravel() for p in params])

    return forward, step, read


# -- JAX: jit-compiled functions of the flat parameters -------------------------------------------------------

def jax_enable():
    import jax
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    return jax


def jax_functions(arch):
    """(forward(theta, X) -> (z_L, h_L), loss(theta, X, Y, reg)) in jax.numpy, theta the flat vector."""
    jax = jax_enable()
    jnp = jax.numpy
    act = {"identity": lambda z: z, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu,
           "softmax": lambda z: jax.nn.softmax(z, axis=1)}

    def forward(theta, X):
        weights, biases = arch.split(theta)
        h = X
        for l, (W, b) in enumerate(zip(weights, biases)):
            z = h @ W + b
            h = act[arch.activations[l] if l < arch.n_layers - 1 else arch.output](z)
        return z, h

    def loss(theta, X, Y, reg):
        z, out = forward(theta, X)
        N = X.shape[0]
        if arch.loss == "cross_entropy" and arch.output == "softmax":
            data = -(Y * jax.nn.log_softmax(z, axis=1)).sum() / N
        elif arch.loss == "cross_entropy":
            data = (jnp.maximum(z, 0) - z * Y + jnp.log1p(jnp.exp(-jnp.abs(z)))).sum() / N
        else:
            data = ((Y - out) ** 2).sum() / (2 * N)
        return data + reg / N * sum((W * W).sum() for W in arch.split(theta)[0]) / 2

    return forward, loss


def jax_setup(arch, theta, X, Y, lr, reg):
    jax = jax_enable()
    network, loss = jax_functions(arch)
    n = arch.n_trained
    value_and_grad = jax.value_and_grad(loss)
    forward = jax.jit(lambda theta, X: network(theta, X)[1])

    @jax.jit
    def step(theta, X, Y):
        value, grad = value_and_grad(theta, X, Y, reg)
        return theta.at[:n].add(-lr * grad[:n]), value

    state = {"theta": jax.device_put(theta), "X": jax.device_put(X), "Y": jax.device_put(Y)}

    def run_forward():
        return forward(state["theta"], state["X"]).block_until_ready()

    def run_step():
        state["theta"], value = step(state["theta"], state["X"], state["Y"])
        return value.block_until_ready()

    return run_forward, run_step, lambda: np.asarray(state["theta"])


def jax_train_loop(arch, steps, lr, reg):
    """A jitted function (theta, X, Y) -> theta after `steps` SGD steps on (X, Y), the loop under lax.scan."""
    jax = jax_enable()
    loss = jax_functions(arch)[1]
    grad = jax.grad(lambda theta, X, Y: loss(theta, X, Y, reg))
    n = arch.n_trained

    @jax.jit
    def run(theta, X, Y):
        def body(theta, _):
            return theta.at[:n].add(-lr * grad(theta, X, Y)[:n]), None
        return jax.lax.scan(body, theta, None, length=steps)[0]

    return run


# -- scikit-learn: partial_fit of its MLP, plain SGD on the whole batch ----------------------------------

SKLEARN_ACTIVATIONS = {"identity": "identity", "sigmoid": "logistic", "tanh": "tanh", "relu": "relu"}


def sklearn_setup(arch, theta, X, Y, lr, reg):
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    classify = arch.output == "softmax"
    Estimator = MLPClassifier if classify else MLPRegressor
    hidden = arch.sizes[1:-1]
    estimator = Estimator(hidden_layer_sizes=hidden, activation=SKLEARN_ACTIVATIONS[(arch.activations or ("relu",))[0]],
                          solver="sgd", alpha=reg, batch_size=len(X), learning_rate_init=lr, momentum=0.0,
                          shuffle=False, random_state=0)
    target = np.argmax(Y, axis=1) if classify else (Y[:, 0] if Y.shape[1] == 1 else Y)
    kwargs = {"classes": np.arange(Y.shape[1])} if classify else {}
    estimator.partial_fit(X, target, **kwargs)              # builds its layers; then theta's values
    weights, biases = arch.split(theta)
    estimator.coefs_ = [W.copy() for W in weights]
    estimator.intercepts_ = [b.copy() for b in biases]
    del estimator._optimizer                                 # a fresh SGD optimizer on the new arrays

    def forward():
        return estimator.predict_proba(X) if classify else estimator.predict(X)

    def step():
        return estimator.partial_fit(X, target)

    def read():
        return np.concatenate([p.ravel() for p in estimator.coefs_ + estimator.intercepts_])

    return forward, step, read


SETUPS = {"torch": torch_setup, "jax": jax_setup, "sklearn": sklearn_setup}
