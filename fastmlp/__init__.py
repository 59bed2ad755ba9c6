"""fastmlp: the article "One LEGO at a Time" network, exact in NumPy and fast in Numba."""

from . import datasets
from .datasets import one_hot
from .export import from_torch, to_onnx, to_torch
from .network import MLP, load
from .optimizers import SGD, Adam, Momentum
from .training import DivergenceError, History


def warmup(dtypes=("float64", "float32"), sparse=True):
    """Compile every Numba kernel now (or load it from the on-disk cache), those for scipy.sparse X too
    unless sparse=False; returns seconds per dtype."""
    from .kernels import warmup as compile_kernels
    return compile_kernels(dtypes, sparse)


def __getattr__(name):
    """fastmlp.MLPClassifier and fastmlp.MLPRegressor, from fastmlp.sklearn (needs scikit-learn), loaded
    on first use so that `import fastmlp` does not import scikit-learn."""
    if name in ("MLPClassifier", "MLPRegressor"):
        from . import sklearn
        return getattr(sklearn, name)
    raise AttributeError(f"module 'fastmlp' has no attribute {name!r}")


__all__ = ["MLP", "load", "one_hot", "datasets", "DivergenceError", "History", "warmup", "SGD", "Momentum",
           "Adam", "MLPClassifier", "MLPRegressor", "to_onnx", "to_torch", "from_torch"]
__version__ = "0.1.0"
