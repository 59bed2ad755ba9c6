"""Dropout masks from a counter-based generator: every entry a pure function of (seed, step, layer, row,
unit), so that both backends draw the same masks, whatever the thread count or the cut of a batch into
chunks, and a run can be replayed.

Inverted dropout: during training, hidden unit j of row i in layer l is kept with probability 1 - p_l
and then scaled by 1 / (1 - p_l), else set to 0:

    h_l = f(z_l) * mask_l            mask_l[i, j] = 1 / (1 - p_l) if bits(i, j) >= p_l 2**32 else 0
    dLoss_dz_l = dLoss_dh_l * f'(z_l) * mask_l

bits(i, j) = fmix32(key_i + j * 0x9E3779B9, xor'd with the key's high word): murmur3's 32-bit
finaliser, with key_i = splitmix64 chained over (seed, step, layer, row); row is the row's place in its
batch, step the fit's 0-based step. Prediction (forward, predict, score) never drops.

The functions are register_jitable: plain NumPy functions on uint64 arrays (the reference calls them
so), and compiled into the kernels from this same source (fastmlp.kernels.layers).
"""

from typing import NamedTuple

import numpy as np
from numba.extending import register_jitable

U64 = np.uint64
GOLDEN_64, MIX_1, MIX_2 = U64(0x9E3779B97F4A7C15), U64(0xBF58476D1CE4E5B9), U64(0x94D049BB133111EB)
GOLDEN_32, FMIX_1, FMIX_2, LOW_32 = U64(0x9E3779B9), U64(0x85EBCA6B), U64(0xC2B2AE35), U64(0xFFFFFFFF)


class Dropout(NamedTuple):
    """What one training step drops: rates (one per hidden layer, each in [0, 1)), the run's seed
    (an integer in [0, 2**32)) and the step."""
    rates: tuple
    seed: int
    step: int = 0


@register_jitable
def splitmix64(x):
    """splitmix64's output of state x: a bijection of 64-bit words that mixes every bit."""
    z = x + GOLDEN_64
    z = (z ^ (z >> U64(30))) * MIX_1
    z = (z ^ (z >> U64(27))) * MIX_2
    return z ^ (z >> U64(31))


@register_jitable
def row_key(seed, step, layer, row):
    """The 64-bit key of one row's mask in one layer at one step (uint64 arguments)."""
    return splitmix64(splitmix64(splitmix64(splitmix64(seed) ^ step) ^ layer) ^ row)


@register_jitable
def unit_bits(key, unit):
    """32 random bits (in a uint64) for `unit` of the row whose key is `key`: murmur3's fmix32."""
    h = ((key & LOW_32) + unit * GOLDEN_32) & LOW_32 ^ (key >> U64(32))
    h ^= h >> U64(16)
    h = (h * FMIX_1) & LOW_32
    h ^= h >> U64(13)
    h = (h * FMIX_2) & LOW_32
    return h ^ (h >> U64(16))


@register_jitable
def threshold(rate):
    """The least bits a kept unit has: rate * 2**32 (rounded down), so that P(kept) = 1 - rate."""
    return U64(rate * 4294967296.0)


def mask(dropout, layer, n_rows, width, dtype):
    """mask_l (n_rows, width) of hidden layer `layer` (1-based) for a batch of n_rows rows: 0 or
    1 / (1 - p) in `dtype`."""
    rate = dropout.rates[layer - 1]
    with np.errstate(over="ignore"):
        rows = np.arange(n_rows, dtype=U64)
        keys = row_key(np.full(n_rows, dropout.seed, U64), U64(dropout.step), U64(layer), rows)
        bits = unit_bits(keys[:, None], np.arange(width, dtype=U64)[None, :])
    return np.where(bits >= threshold(rate), dtype(1 / (1 - rate)), dtype(0))
