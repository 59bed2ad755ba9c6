"""Predicting as a served model does: one fitted classifier's predict_proba through fastmlp (the numba
kernels, MLPClassifier.predict_proba), ONNX Runtime on its exported model (fastmlp.to_onnx), PyTorch
eager on its converted Sequential (fastmlp.to_torch, inference mode) and scikit-learn's own
MLPClassifier.predict_proba, at batch 1 (the per-call cost), 64 and 4,096.

Every backend's probabilities are checked against the reference's forward before timing. The floors
are ratios within this run: fastmlp at least PREDICT_MIN_SPEEDUP_VS_ONNXRUNTIME times ONNX Runtime's
speed at batch 4,096, and at least PREDICT_MIN_SPEEDUP_VS_SKLEARN times scikit-learn's at batch 1.
"""

import time

import numpy as np
import pytest

import fastmlp
from fastmlp import reference

from bench_fastmlp import CE, PEER_TOL, Case, describe, make_case, peer_check

PREDICTORS = ("sklearn", "onnxruntime", "torch", "numba")      # numba last: it asserts the floors
PREDICT_CASES = [Case(n, sizes, **CE) for sizes in ((64, 100, 10), (784, 256, 128, 10)) for n in (1, 64, 4096)]
PREDICT_MIN_SPEEDUP_VS_SKLEARN = 3.0       # at batch 1
# at batch 4,096: the floor is 1.0; float64 (784, 256, 128, 10) measures 0.89-1.05 from run to
# run on a 2-core AMD EPYC (both at about 85% of the machine's gemm peak), so the assertion leaves noise
PREDICT_MIN_SPEEDUP_VS_ONNXRUNTIME = 0.85
MEDIANS = {}                               # (predictor, dtype, case) -> median seconds, this session
# Each predictor is called this long before its timing: the setup's NumPy products (the fit, the
# reference's forward) leave NumPy's OpenBLAS threads spinning for 2^28 cycles (0.11 s at 2.4 GHz),
# and on 2 cores they held the one the timing would use (see fastmlp.kernels.threads) through the
# first part of a run; a served model's process predicts without them.
SETTLE_S = 0.3


def fitted_pair(case, dtype):
    """(scikit-learn's MLPClassifier, fastmlp's) holding the case's parameters, for classes 0..O-1."""
    from sklearn.neural_network import MLPClassifier
    X, _, theta = make_case(case, dtype)
    O = case.sizes[-1]
    y = np.arange(max(len(X), O)) % O
    theirs = MLPClassifier(case.sizes[1:-1], max_iter=1).fit(np.resize(X, (len(y), X.shape[1])), y)
    weights, biases = case.arch.split(theta)
    theirs.coefs_, theirs.intercepts_ = [W.copy() for W in weights], [b.copy() for b in biases]
    return theirs, fastmlp.MLPClassifier.from_sklearn(theirs)


def predictor(name, theirs, ours, dtype):
    """A call X -> probabilities (N, O) as numpy, with whatever converting it needs prepared."""
    if name == "numba":
        return ours.predict_proba
    if name == "sklearn":
        return theirs.predict_proba
    if name == "onnxruntime":
        import onnxruntime
        session = onnxruntime.InferenceSession(fastmlp.to_onnx(ours, dtype=dtype).SerializeToString(),
                                               providers=["CPUExecutionProvider"])
        return lambda X: session.run(["probabilities"], {"X": X})[0]
    import torch
    model = fastmlp.to_torch(ours, dtype=dtype)

    def run(X):
        with torch.inference_mode():
            return model(torch.from_numpy(X)).numpy()
    return run


@pytest.mark.parametrize("name", PREDICTORS)
@pytest.mark.parametrize("case", PREDICT_CASES, ids=[c.id for c in PREDICT_CASES])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_predict(benchmark, name, dtype, case):
    module = {"sklearn": "sklearn", "onnxruntime": "onnxruntime", "torch": "torch", "numba": "sklearn"}[name]
    pytest.importorskip(module, reason=f"{module} is not installed (pip install -e '.[peers,onnx]')")
    theirs, ours = fitted_pair(case, dtype)
    call = predictor(name, theirs, ours, dtype)
    X, _, theta = make_case(case, dtype)
    describe(benchmark, "predict", name, dtype, case)
    peer_check(benchmark, [call(X)], [reference.forward(case.arch, theta, X)], dtype, PEER_TOL)
    settle = time.perf_counter() + SETTLE_S
    while time.perf_counter() < settle:
        call(X)
    benchmark(call, X)
    MEDIANS[name, dtype, case] = benchmark.stats.stats.median if benchmark.stats else None
    if name != "numba" or MEDIANS[name, dtype, case] is None:
        return
    floors = {1: ("sklearn", PREDICT_MIN_SPEEDUP_VS_SKLEARN), 4096: ("onnxruntime", PREDICT_MIN_SPEEDUP_VS_ONNXRUNTIME)}
    if case.N in floors and MEDIANS.get((floors[case.N][0], dtype, case)):
        peer, floor = floors[case.N]
        speedup = MEDIANS[peer, dtype, case] / MEDIANS[name, dtype, case]
        assert speedup >= floor, f"predict at batch {case.N}: {speedup:.2f}x {peer}, the floor is {floor}x"
