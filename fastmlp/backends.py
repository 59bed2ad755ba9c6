"""The table from a backend's name to the module that implements it.

Both modules offer the same functions with the same signatures (forward, loss, loss_and_gradients,
step), so the network asks nothing of a backend beyond this lookup. Modules load on first use, so
`import fastmlp` does not import numba.
"""

import importlib

BACKENDS = {"numpy": "fastmlp.reference", "numba": "fastmlp.kernels"}


def get_backend(name):
    """The module implementing backend `name` (a key of BACKENDS)."""
    return importlib.import_module(BACKENDS[name])
