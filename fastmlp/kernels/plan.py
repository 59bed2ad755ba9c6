"""How a batch is cut into chunks of rows and groups of chunks (for forward on a few rows through
wide layers, groups of columns), and a pass over all of theta into parts (flat_parts).

The cut depends only on the shapes and the dtype, never on a thread count, so every result is
bitwise identical with 1 or many threads, run after run, on any BLAS kernel. Each group (a contiguous
share of the batch) runs on one of fastmlp's threads with its own scratch and its own gradient
buffer; the buffers are summed in group order. Inside fastmlp's kernels BLAS runs on one thread
(blas.one_blas_thread), so that a product's bits depend on its shape alone: the construction does
not rely on how one BLAS kernel blocks or shares its work (OpenBLAS's Haswell and SkylakeX kernels
cut an inner dimension differently with 1 and 2 threads).
"""

import numba as nb

from .fastmath import STRICT

LANES = 16                     # fused chunks hold a multiple of this many samples (64 bytes of float32)
MAX_GROUPS = 64                # most gradient buffers summed per step (fused path)
GROUP_BUFFER_BYTES = 32 << 20  # and at most this much memory for them (both paths)
LAYER_CHUNK_ENTRIES = 1 << 20  # a layered chunk's activations: rows x (sum of widths), at most this
LAYER_MAX_ROWS = 1024          # and at most this many rows (see layers_plan)
LAYER_MAX_GROUPS = 8           # most groups of the layered path (a power of two, see layers_groups)
GROUP_MIN_MACS = 550_000       # a layered group's least work in multiply-adds ...
GROUP_MIN_ROWS = 64            # ... and rows (see layers_groups) ...
FORWARD_MIN_ROWS = 8           # ... or, for forward alone, this many rows
COLUMN_MIN_BYTES = 256 << 10   # fewer rows: a layer's least weight bytes for forward to cut its columns
COLUMN_GROUPS = 2              # ... into this many groups
MANY_GROUPS_MIN_MACS = 1 << 27 # ... and beyond two groups, each group's least multiply-adds
FLAT_MAX_PARTS = 8             # most parts of a pass over theta or its gradient (see flat_parts)
LINE_ENTRIES = 8               # parts of them start on a multiple of this many entries (64 bytes of float64)


@nb.njit(**STRICT)
def fused_plan(N, D, H, O, itemsize):
    """(block, n_chunks, n_groups) of the fused path: block samples per chunk, so that a chunk's hidden
    layer (H x block) stays in L2 cache; at most MAX_GROUPS gradient buffers within GROUP_BUFFER_BYTES."""
    block = min(512, max(LANES, (262144 // H) // LANES * LANES))
    n_chunks = (N + block - 1) // block
    n_params = D * H + H + H * O + O
    n_groups = min(n_chunks, MAX_GROUPS, max(1, GROUP_BUFFER_BYTES // (n_params * itemsize)))
    return block, n_chunks, n_groups


@nb.njit(**STRICT)
def layers_plan(N, width_total):
    """(block, n_chunks) of the layered path for a group of N rows: chunks of rows whose activations
    (block x the sum of the layer widths) hold at most LAYER_CHUNK_ENTRIES numbers (8 MB of float64),
    and at most LAYER_MAX_ROWS rows. Longer chunks make longer products: 1,008 rows against 240 took
    the step at (4096, 784, 512, 512, 10) from 56 to 52 ms in float32."""
    block = max(LANES, LAYER_CHUNK_ENTRIES // width_total // LANES * LANES)
    block = min(block, LAYER_MAX_ROWS, N)
    return block, (N + block - 1) // block


@nb.njit(**STRICT)
def group_rows(g, n_groups, n_chunks, block, N):
    """Rows [start, stop) of group g: a contiguous run of whole chunks."""
    start = (g * n_chunks // n_groups) * block
    stop = min(((g + 1) * n_chunks // n_groups) * block, N)
    return start, stop


@nb.njit(**STRICT)
def layers_groups(N, sizes, max_groups, itemsize, min_rows=GROUP_MIN_ROWS):
    """How many groups the layered path splits a batch of N rows into, from the shapes alone: 2 when
    each has at least min_rows rows and GROUP_MIN_MACS multiply-adds, and twice as many while
    each still has MANY_GROUPS_MIN_MACS; a power of two (so that they share 2, 4 or 8 threads evenly),
    at most max_groups (1 where BLAS's threads cannot be held to one, see kernels.spec_of), and more
    than 2 only while their gradient buffers stay within GROUP_BUFFER_BYTES.

    Below two groups' work one chunk stepping in place (layers.step_in_place) is faster than the
    fork, the join and the buffers: measured at (N, 64, 128, 10) float64 on a 2-core Xeon, in place
    against two groups, 53 against 59 us at N = 64, 85 against 99 at 96, 114 against 91 at 128.
    Groups beyond the cores cost buffers and shorter products: on a 2-core AMD EPYC, float64, 4 groups
    against 2 took (256, 784, 256, 128, 10) from 3.1 to 5.1 ms, and 8 against 2 (1024, 20, 64, 64,
    64, 1) from 0.73 to 0.81 ms; from 2^27 multiply-adds a group, the fork and the buffers are noise.
    forward alone (min_rows FORWARD_MIN_ROWS) has no gradient buffers to sum: two groups paid from 8
    rows at (784, 256, 128, 10) on that EPYC, float64, 32 rows in 221 us against 387 in one group,
    64 in 528 against 716 (float32: 161 against 263, 249 against 399)."""
    macs = 0
    n_params = 0
    for l in range(1, sizes.size):
        macs += sizes[l - 1] * sizes[l]
        n_params += sizes[l - 1] * sizes[l] + sizes[l]
    min_rows = max(min_rows, (GROUP_MIN_MACS + macs - 1) // macs)
    if max_groups < 2 or N < 2 * min_rows:
        return 1
    groups = 2
    while (2 * groups <= max_groups and N * macs >= 2 * groups * MANY_GROUPS_MIN_MACS
           and 2 * groups * n_params * itemsize <= GROUP_BUFFER_BYTES):
        groups *= 2
    return groups


@nb.njit(**STRICT)
def column_groups(N, fan_in, fan_out, max_groups, itemsize):
    """How many groups forward cuts one layer's columns into for a batch too small to cut into rows
    (fewer than 2 FORWARD_MIN_ROWS): COLUMN_GROUPS when the layer's weights (fan_in x fan_out) take
    COLUMN_MIN_BYTES, else 1. From the shapes alone, as every cut (see layers_groups). A few rows
    through wide layers are bound by reading the weights, and in two groups each thread reads half of
    them; a small layer's product costs less than the fork (and waking the second thread). Each layer
    is decided on its own: a network's small layers run on one thread between its cut ones. Measured on
    a 2-core AMD EPYC (SkylakeX kernels), forward on one row (one_row_gemm's loops), us, no layer cut
    against each layer of at least 256 KB cut: (784, 256, 128, 10) float64 38.5 against 31.9, float32
    20.3 against 17.0; (784, 1024, 10) float64 102 against 62, float32 50 against 37; (784, 128, 10)
    float64 17.2 against 14.2; (200, 400, 10) float64 16.4 against 15.3, float32 11.4 against 12.7
    (the one loss). On 8 rows (BLAS's products), (784, 256, 128, 10) float64 118 against 48, float32
    106 against 30; cutting only layers of 512 KB, (200, 400, 10) float32 took 19.8 us against 16.5."""
    if max_groups < 2 or N >= 2 * FORWARD_MIN_ROWS or fan_in * fan_out * itemsize < COLUMN_MIN_BYTES:
        return 1
    return COLUMN_GROUPS


@nb.njit(**STRICT)
def cuts_columns(N, sizes, max_groups, itemsize):
    """Whether forward cuts the columns of any of the network's layers (column_groups)."""
    for l in range(1, sizes.size):
        if column_groups(N, sizes[l - 1], sizes[l], max_groups, itemsize) > 1:
            return True
    return False


@nb.njit(inline="always", **STRICT)
def flat_parts(n, least):
    """How many parts a pass over a flat vector of n entries (theta, its gradient, an optimizer's state)
    is cut into: up to FLAT_MAX_PARTS of at least `least` entries each (1 below two), from n alone.
    Numba's threads share the parts out; an entry's result does not depend on its part, and a sum's
    parts are added in order, so the bits do not depend on the threads."""
    return max(1, min(FLAT_MAX_PARTS, n // least))


@nb.njit(inline="always", **STRICT)
def part_start(p, parts, n):
    """Where part p of `parts` of n entries starts (on a LINE_ENTRIES boundary; part `parts` ends at n)."""
    return n if p == parts else p * n // parts // LINE_ENTRIES * LINE_ENTRIES
