"""Memory: scratch aligned to cache lines, padding to whole vectors, and arrays borrowed without
reference counting."""

import numba as nb
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .fastmath import STRICT


@intrinsic
def borrowed(typingctx, x):
    """x (an array, or a tuple of them, nested) without reference counting: the same data, with no
    owner (meminfo) attached, as numba.carray makes. Numba counts references to every array a
    function is handed or slices, with atomic instructions (tens of cycles each, and a barrier);
    at the article's size that cost more than the arithmetic. Whoever borrows must keep the owner
    alive for as long as the borrowed arrays are used (train_loop_compiled: its caller does)."""
    def strip(context, builder, typ, value):
        if isinstance(typ, types.Array):
            array = context.make_array(typ)(context, builder, value)
            array.meminfo = cgutils.get_null_value(array.meminfo.type)
            array.parent = cgutils.get_null_value(array.parent.type)
            return array._getvalue()
        if isinstance(typ, types.BaseTuple):
            for k, item_type in enumerate(typ):
                item = strip(context, builder, item_type, builder.extract_value(value, k))
                value = builder.insert_value(value, item, k)
        return value

    def codegen(context, builder, signature, args):
        return strip(context, builder, signature.args[0], args[0])
    return x(x), codegen


@nb.njit(**STRICT)
def padded(n, itemsize):
    """n rounded up to whole 64-byte vectors of itemsize-byte floats (8 float64, 16 float32): loops
    that long have no scalar remainder to run."""
    lanes = 64 // itemsize
    return (n + lanes - 1) // lanes * lanes


@nb.njit(**STRICT)
def aligned_empty(shape, dtype):
    """np.empty(shape, dtype) starting on a 64-byte boundary. Numba's own arrays start on 32-byte
    boundaries, so every AVX-512 load and store of a row would straddle two cache lines; rows of
    `block` (a multiple of LANES) elements then all start aligned."""
    size = 1
    for n in shape:
        size *= n
    buffer = np.empty(size + 64, dtype)
    skip = (-buffer.ctypes.data % 64) // buffer.itemsize
    return buffer[skip:skip + size].reshape(shape)

