"""fastmlp: the article "One LEGO at a Time" network, exact in NumPy and fast in Numba."""

from . import datasets
from .datasets import one_hot
from .network import MLP

__all__ = ["MLP", "datasets", "one_hot"]
__version__ = "0.1.0"
