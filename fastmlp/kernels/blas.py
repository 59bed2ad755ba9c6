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
from numba import types
from numba.np.linalg import ensure_blas

from .fastmath import STRICT

ensure_blas()      # numba_xxgemm needs scipy's BLAS; this says so at import rather than at a call


# numba_xxgemm(kind, transa, transb, m, n, k, alpha*, A*, lda, B*, ldb, beta*, C*, ldc): kind 'd'
# (float64) or 's' (float32) picks dgemm or sgemm; the pointers are untyped, so one signature serves both.
xxgemm = types.ExternalFunction("numba_xxgemm", types.intc(
    types.char, types.char, types.char, types.intp, types.intp, types.intp,
    types.voidptr, types.voidptr, types.intp, types.voidptr, types.intp, types.voidptr, types.voidptr,
    types.intp))
NO, YES = ord("N"), ord("T")


INNER_BLOCK = 256    # the longest inner dimension handed to one BLAS call


@nb.njit(**STRICT)
def gemm(transpose_a, transpose_b, A, B, C, alpha, beta, scalars):
    """C = alpha op(A) @ op(B) + beta C in place (beta 0 or 1), for C-contiguous A, B, C. scalars: a
    (2,) array of C's dtype that BLAS reads alpha and beta from (BLAS takes them by pointer).

    The inner dimension goes to BLAS in pieces of at most INNER_BLOCK, accumulated in order (beta 1
    after the first): OpenBLAS cuts a longer one into blocks that depend on its thread count (measured:
    other bits with 1 and 2 threads from 976 with its Zen kernel and from 496 with its SkylakeX one, for
    a 784-wide input layer too), so that every product's bits are the same for any thread count."""
    rows, cols = C.shape
    inner = A.shape[0] if transpose_a else A.shape[1]
    lda, ldb = A.shape[1], B.shape[1]
    flat_a, flat_b = A.reshape(A.size), B.reshape(B.size)
    scalars[0] = alpha
    alpha_ptr = scalars[0:1].ctypes
    beta_ptr = scalars[1:2].ctypes
    ta = YES if transpose_a else NO
    tb = YES if transpose_b else NO
    kind = ord("d") if C.itemsize == 8 else ord("s")
    for k0 in range(0, max(inner, 1), INNER_BLOCK):
        scalars[1] = beta if k0 == 0 else 1
        piece = min(INNER_BLOCK, inner - k0)
        a_at = k0 * lda if transpose_a else k0          # where op(A)'s columns k0.. start
        b_at = k0 if transpose_b else k0 * ldb          # where op(B)'s rows k0.. start
        xxgemm(kind, tb, ta, cols, rows, piece, alpha_ptr, flat_b[b_at:].ctypes, ldb, flat_a[a_at:].ctypes,
               lda, beta_ptr, C.ctypes, C.shape[1])


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
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            get = getattr(library, f"{prefix}_get_num_threads", None)
            set_ = getattr(library, f"{prefix}_set_num_threads", None)
            if get is not None and set_ is not None:
                get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
                return get, set_
    return None


ONE_THREAD = {"lock": threading.Lock(), "holders": 0, "before": None}


@contextlib.contextmanager
def one_blas_thread():
    """BLAS on one thread for the duration: the layered path's parallel groups call it side by side,
    and OpenBLAS's own threads, started from two callers at once, stalled each other (a 256-row step at
    (10, 64, 64, 1) took 6.7 ms instead of 0.14 ms). The count is global: the first of overlapping
    holders (fits in several Python threads) saves it and the last restores it."""
    functions = openblas_thread_functions()
    if functions is None:
        yield
        return
    get, set_ = functions
    with ONE_THREAD["lock"]:
        if ONE_THREAD["holders"] == 0:
            ONE_THREAD["before"] = get()
            set_(1)
        ONE_THREAD["holders"] += 1
    try:
        yield
    finally:
        with ONE_THREAD["lock"]:
            ONE_THREAD["holders"] -= 1
            if ONE_THREAD["holders"] == 0:
                set_(ONE_THREAD["before"])
