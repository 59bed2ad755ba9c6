"""The table from a backend's name to the module that implements it.

Both modules offer the same functions with the same signatures (forward, loss, loss_and_gradients,
step), so the network asks nothing of a backend beyond this lookup. Modules load on first use, so
`import fastmlp` loads no kernel (it imports numba itself: fastmlp.dropout's counter-based generator
is shared with the kernels through numba's register_jitable).

The network checks the arrays it passes (shape, dtype, layout), and their values are finite, except
for backends in CHECKS_FINITE: their forward, loss, loss_and_gradients and step find NaN/inf in X and Y
in their own compiled pass (free there; a separate NumPy pass cost a sixth of a 32-row step) and raise
validation's ValueError before changing anything.
"""

import importlib

BACKENDS = {"numpy": "fastmlp.reference", "numba": "fastmlp.kernels"}
CHECKS_FINITE = {"numba"}


def get_backend(name):
    """The module implementing backend `name` (a key of BACKENDS)."""
    return importlib.import_module(BACKENDS[name])
