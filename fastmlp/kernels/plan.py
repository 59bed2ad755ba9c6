"""How a batch is cut into chunks of rows and groups of chunks.

The cut depends only on the shapes and the dtype, never on the thread count, so every result is
bitwise identical with 1 or many threads, run after run. Each group (a contiguous run of chunks)
accumulates its own gradient buffer; the buffers are summed in group order.
"""

import numba as nb

from .fastmath import STRICT

LANES = 16                     # fused chunks hold a multiple of this many samples (64 bytes of float32)
MAX_GROUPS = 64                # most gradient buffers summed per step
GROUP_BUFFER_BYTES = 32 << 20  # and at most this much memory for them
LAYER_CHUNK_ENTRIES = 1 << 20  # a layered chunk's activations: rows x (sum of widths), at most this
LAYER_MAX_ROWS = 1024          # and at most this many rows (see layers_plan)
SPLIT_MIN_MACS = 1_100_000     # layered batches of at least this many multiply-adds run as groups ...
SPLIT_MAX_MACS = 65536         # ... when a row costs at most this many (see layers_groups)


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
    """(block, n_chunks) of the layered path: chunks of rows whose activations (block x the sum of the
    layer widths) hold at most LAYER_CHUNK_ENTRIES numbers (8 MB of float64), and at most
    LAYER_MAX_ROWS rows; one group, since BLAS threads itself. Longer chunks make longer products:
    1,008 rows against 240 took the step at (4096, 784, 512, 512, 10) from 56 to 52 ms in float32. A
    chunk's rows are the inner dimension of its gradient products (dW = h.T @ dz), which blas.gemm
    hands to BLAS in pieces of its INNER_BLOCK rows, so their bits do not depend on the thread count."""
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
def layers_groups(N, sizes, max_groups):
    """How many groups (1, or max_groups when BLAS's threads can be limited) the layered path splits a
    batch of N rows into, each with its own gradient buffer, summed in group order: max_groups from
    split_rows(sizes) rows on."""
    return max_groups if N >= split_rows(sizes) else 1


@nb.njit(**STRICT)
def split_rows(sizes):
    """The fewest rows of a batch that the layered path runs as groups (a huge number: never).
    Products of a narrow network on a small batch are too small for BLAS to thread well; groups of rows
    on the threads, each calling BLAS on one thread (blas.one_blas_thread), run them side by side.
    Below SPLIT_MIN_MACS multiply-adds per batch one chunk stepping in place (layers.step_in_place)
    is faster than the fork, the join and the groups' gradient buffers: measured at (N, 64, 128, 10)
    float64 on a 2-core Xeon, in place against groups, 53 against 59 us at N = 64, 85 against 99 at 96,
    even at 112, 114 against 91 at 128 (float32: 27 against 51 at 64, even at 128). Wide layers (more
    than SPLIT_MAX_MACS multiply-adds per row) keep BLAS's own threads."""
    macs = 0
    for l in range(1, sizes.size):
        macs += sizes[l - 1] * sizes[l]
    if macs > SPLIT_MAX_MACS:
        return 1 << 62
    return max(2 * LANES, (SPLIT_MIN_MACS + macs - 1) // macs)
