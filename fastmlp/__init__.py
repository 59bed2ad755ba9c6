"""fastmlp: the article "One LEGO at a Time" network, exact in NumPy and fast in Numba."""

from . import datasets
from .datasets import one_hot
from .network import MLP, load
from .training import DivergenceError, History


def warmup(dtypes=("float64", "float32")):
    """Compile every Numba kernel now (or load it from the on-disk cache); returns seconds per dtype."""
    from .kernels import warmup as compile_kernels
    return compile_kernels(dtypes)


__all__ = ["MLP", "load", "one_hot", "datasets", "DivergenceError", "History", "warmup"]
__version__ = "0.1.0"
