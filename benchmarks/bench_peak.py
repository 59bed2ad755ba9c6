"""This machine's limits, measured in the same run as the rest: the yardstick of `fraction_of_peak`.

- peak_gemm: a square matrix product through NumPy's BLAS (n = 2048 float64, 3072 float32), with the
  threads the run uses; gflops = 2 n^3 / median. Every row's fraction_of_peak is its gflops over this
  row's, for its dtype.
- peak_sigmoid: the kernels' vectorised sigmoid (fastmlp.kernels.fastmath) over 2**22 elements on one
  thread; its gflops column holds G sigmoids per second.
"""

import numba as nb
import numpy as np
import pytest

from bench_fastmlp import Case, blas_kernel, describe
from fastmlp.kernels.fastmath import FAST, sigmoid

GEMM_SIZES = {"float64": 2048, "float32": 3072}
SIGMOID_ELEMENTS = 1 << 22


@nb.njit(**FAST)
def sigmoid_all(z, out):
    for i in range(z.size):
        out[i] = sigmoid(z[i])


def _skip_if_disabled(config):
    if config.getoption("benchmark_disable", False):
        pytest.skip("peak measurements are benchmarks, not tests")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_peak_gemm(benchmark, request, dtype):
    _skip_if_disabled(request.config)
    n = GEMM_SIZES[dtype]
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(n, n)).astype(dtype), rng.normal(size=(n, n)).astype(dtype)
    C = np.empty((n, n), dtype)
    describe(benchmark, "peak_gemm", "blas", dtype, Case(n, (n, n)))
    benchmark.extra_info.update(flops=2 * n**3, blas=blas_kernel())
    benchmark.pedantic(np.matmul, args=(A, B), kwargs=dict(out=C), rounds=10, warmup_rounds=2)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_peak_sigmoid(benchmark, request, dtype):
    _skip_if_disabled(request.config)
    z = np.random.default_rng(0).normal(scale=5, size=SIGMOID_ELEMENTS).astype(dtype)
    out = np.empty_like(z)
    sigmoid_all(z[:8], out[:8])
    describe(benchmark, "peak_sigmoid", "numba", dtype, Case(SIGMOID_ELEMENTS, (1, 1)))
    benchmark.extra_info.update(flops=SIGMOID_ELEMENTS, threads=1)
    benchmark.pedantic(sigmoid_all, args=(z, out), rounds=10, warmup_rounds=1)
