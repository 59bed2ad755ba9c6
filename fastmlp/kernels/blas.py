"""Matrix products through BLAS from inside compiled code, with transposes and accumulation.

Numba's np.dot allocates its result on every call (and `G += np.dot(...)` a second temporary). This
calls the same BLAS (scipy's, through numba's own numba_xxgemm helper, which numba resolves when it
loads a cached function) as

    C = alpha op(A) @ op(B) + beta C      op(M) = M or M.T;  beta 0 (overwrite) or 1 (accumulate)

on C-contiguous row-major 2-D arrays (row slices of them included). BLAS is column-major, where a
row-major M is M.T, so it computes C.T = op(B).T @ op(A).T.
"""

import contextlib
import ctypes
import functools
import threading

import numba as nb
import numpy as np
from numba import types
from numba.np.linalg import ensure_blas

from .fastmath import FAST, STRICT

ensure_blas()      # numba_xxgemm needs scipy's BLAS; this says so at import rather than at a call


# numba_xxgemm(kind, transa, transb, m, n, k, alpha*, A*, lda, B*, ldb, beta*, C*, ldc): kind 'd'
# (float64) or 's' (float32) picks dgemm or sgemm; the pointers are untyped, so one signature serves both.
xxgemm = types.ExternalFunction("numba_xxgemm", types.intc(
    types.char, types.char, types.char, types.intp, types.intp, types.intp,
    types.voidptr, types.voidptr, types.intp, types.voidptr, types.intp, types.voidptr, types.voidptr,
    types.intp))
NO, YES = ord("N"), ord("T")


@nb.njit(**STRICT)
def gemm(transpose_a, transpose_b, A, B, C, alpha, beta, scalars):
    """C = alpha op(A) @ op(B) + beta C in place (beta 0 or 1), for row-major A, B, C whose rows are
    contiguous (C-contiguous arrays, or column slices of them). scalars: a (2,) array of C's dtype that
    BLAS reads alpha and beta from (BLAS takes them by pointer).

    The kernels call this with BLAS held to one thread (one_blas_thread), where its blocking, and so
    every bit of C, follows from the shapes alone; with several threads OpenBLAS cuts a long inner
    dimension at points that depend on its thread count and its kernel. Products with one column or
    an inner dimension of 1 do not reach BLAS (narrow_gemm), nor does one row times B (one_row_gemm)."""
    rows, cols = C.shape
    inner = A.shape[0] if transpose_a else A.shape[1]
    if cols == 1 or inner == 1:
        narrow_gemm(transpose_a, transpose_b, A, B, C, alpha, beta)
        return
    if rows == 1 and not (transpose_a or transpose_b):
        one_row_gemm(A, B, C, alpha, beta, 0, cols)
        return
    scalars[0] = alpha
    scalars[1] = beta
    xxgemm(ord("d") if C.itemsize == 8 else ord("s"), YES if transpose_b else NO, YES if transpose_a else NO,
           cols, rows, inner, scalars[0:1].ctypes, B.ctypes, B.strides[0] // B.itemsize, A.ctypes,
           A.strides[0] // A.itemsize, scalars[1:2].ctypes, C.ctypes, C.strides[0] // C.itemsize)


@nb.njit(**FAST)
def narrow_gemm(transpose_a, transpose_b, A, B, C, alpha, beta):
    """gemm where C has one column or the inner dimension is 1, as a one-output layer's products are
    (its forward, its weight gradient, the delta it sends back), in plain loops: BLAS packs its
    operands whatever the shape, and here that costs more than the work. Float32, one thread, BLAS
    against these loops, us (2-core AMD EPYC, OpenBLAS's Haswell kernels): (200, 64) @ (64, 1) 4.9
    against 2.0, (64, 200) @ (200, 1) 9.2 against 1.7, (200, 1) @ (1, 64) 4.0 against 1.6; at 4096
    rows and 512 units 810 against 228, 2,885 against 394, 720 against 517 (float64 alike).

        one column   C[:, 0] = alpha op(A) @ v + beta C[:, 0]    v = op(B)[:, 0]: row dots, or with
                                                                 op(A) = A.T rows of A added, scaled
        inner 1      C = alpha u w.T + beta C                    u = op(A)[:, 0], w = op(B)[0, :]

    Every sum runs in a fixed order (vectorised by the compiler, the same for any thread count)."""
    rows, cols = C.shape
    a, b = C.dtype.type(alpha), C.dtype.type(beta)
    if cols == 1:
        v = np.ascontiguousarray(B[0, :] if transpose_b else B[:, 0])     # (a copy of a column)
        if transpose_a:                              # C[j] = alpha sum_i A[i, j] v[i] + beta C[j]
            for j in range(rows):
                C[j, 0] = b * C[j, 0] if beta != 0 else 0
            for i in range(v.size):
                s = a * v[i]
                for j in range(rows):
                    C[j, 0] += s * A[i, j]
        else:                                        # C[i] = alpha A[i, :] . v + beta C[i]
            for i in range(rows):
                total = C.dtype.type(0)
                for k in range(v.size):
                    total += A[i, k] * v[k]
                C[i, 0] = a * total + (b * C[i, 0] if beta != 0 else 0)
        return
    u = A[0, :] if transpose_a else A[:, 0]
    w = np.ascontiguousarray(B[:, 0] if transpose_b else B[0, :])
    for i in range(rows):
        s = a * u[i]
        for j in range(cols):
            C[i, j] = s * w[j] + (b * C[i, j] if beta != 0 else 0)


@nb.njit(**STRICT)
def one_row_gemm(A, B, C, alpha, beta, c0, c1):
    """Columns [c0, c1) of C (1, m) = alpha A @ B + beta C for A (1, k), B (k, m): a layer's forward
    product on one row, as a served model predicts. BLAS packs B (the whole weight matrix) first; these
    loops read it once, four rows of B to each pass over C (which stays in cache):

        C[0, j] = beta C[0, j] + sum_i (alpha A[0, i]) B[i, j]        i in order, four at a time

    B and C whole (C-contiguous, not column slices: the compiler vectorises the loop over j only where
    it knows a row's numbers are adjacent). One thread, us, BLAS against these loops (2-core AMD EPYC,
    SkylakeX kernels): (784, 256) float64 28.4 against 22.7, float32 10.2 against 10.0; (784, 1024)
    float64 197 against 88, float32 116 against 40; (256, 128) float64 3.9 against 3.4."""
    k, a, b = B.shape[0], C.dtype.type(alpha), C.dtype.type(beta)
    c = C[0, c0:c1]                          # (row slices: loops from 0, which need no wraparound check)
    for j in range(c.size):
        c[j] = b * c[j] if beta != 0 else 0
    i = 0
    while i + 4 <= k:
        a0, a1, a2, a3 = a * A[0, i], a * A[0, i + 1], a * A[0, i + 2], a * A[0, i + 3]
        b0, b1, b2, b3 = B[i, c0:c1], B[i + 1, c0:c1], B[i + 2, c0:c1], B[i + 3, c0:c1]
        for j in range(c.size):
            c[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j]
        i += 4
    while i < k:
        s, row = a * A[0, i], B[i, c0:c1]
        for j in range(c.size):
            c[j] += s * row[j]
        i += 1


# -- BLAS's own threads, from Python ---------------------------------------------------------------------

@functools.cache
def openblas_thread_functions():
    """(get, set) of the number of threads of the OpenBLAS that scipy's BLAS, and so gemm above, runs;
    None where it cannot be found (another BLAS, or no /proc/self/maps). numpy's own OpenBLAS (under
    numpy.libs) is a different library and is left alone."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
    except OSError:
        return None
    for path in paths:
        if not path.startswith("/") or "numpy.libs" in path:
            continue
        try:
            library = ctypes.PyDLL(path)         # calls that keep the GIL: quicker, and these return at once
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            get = getattr(library, f"{prefix}_get_num_threads", None)
            set_ = getattr(library, f"{prefix}_set_num_threads", None)
            if get is not None and set_ is not None:
                get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
                return get, set_
    return None


class OneBlasThread:
    """A context in which BLAS runs on one thread: every kernel call that reaches gemm runs in it.

    Why: (1) bits: with one thread, OpenBLAS blocks a product by its shape and its kernel alone, so
    that fastmlp's own fixed partition (plan) decides every sum's order; (2) speed: fastmlp's groups
    call BLAS side by side from its threads, and OpenBLAS's own threads, started from two callers at
    once, stalled each other (a 256-row step at (10, 64, 64, 1) took 6.7 ms instead of 0.14 ms), nor
    do they wake, spin and take a core from the caller's NumPy afterwards. The count is global to
    that library (pthreads OpenBLAS has no per-thread count): the first of overlapping holders (fits
    in several Python threads) saves it and the last restores it, so scipy's own calls outside
    fastmlp keep their threads."""

    def __init__(self, get, set_):
        self.get, self.set = get, set_
        self.lock = threading.Lock()
        self.holders = 0
        self.before = 1

    def __enter__(self):
        with self.lock:
            if self.holders == 0:
                self.before = self.get()
                if self.before != 1:
                    self.set(1)
            self.holders += 1

    def __exit__(self, *exc_info):
        with self.lock:
            self.holders -= 1
            if self.holders == 0 and self.before != 1:
                self.set(self.before)


@functools.cache
def one_blas_thread():
    """The process's OneBlasThread, or a context that does nothing where BLAS's threads cannot be set
    (then kernels.spec_of does not split batches either, and BLAS threads itself)."""
    functions = openblas_thread_functions()
    return contextlib.nullcontext() if functions is None else OneBlasThread(*functions)
