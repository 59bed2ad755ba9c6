"""Numba's on-disk cache of fastmlp's kernels, stamped with all of fastmlp's sources.

Numba stamps a cached function with a hash of its own file alone, but the machine code it keeps holds
every function that one calls or inlines from other files: after an edit to kernels/optimizers.py the
training loop of the unchanged kernels/loop.py came from the cache with the old update rule, and an
upgrade of fastmlp that leaves the package's __pycache__ behind would do the same. The locators here
are Numba's own (NUMBA_CACHE_DIR, the package's __pycache__, the user's cache folder, in Numba's order)
for fastmlp's files only, whose stamp adds a hash of every source file of the package: any change to
fastmlp compiles its kernels afresh.
"""

import functools
import hashlib
import pathlib

from numba.core import caching

PACKAGE = pathlib.Path(__file__).resolve().parents[1]


@functools.cache
def sources_hash(package=PACKAGE):
    """sha256 of every .py file under `package` (its relative path and bytes), in path order."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


class PackageStamp:
    """Mixed into a Numba cache locator: it serves fastmlp's files only, stamped with sources_hash too."""

    @classmethod
    def from_function(cls, py_func, py_file):
        if not pathlib.Path(py_file).resolve().is_relative_to(PACKAGE):
            return None
        return super().from_function(py_func, py_file)

    def get_source_stamp(self):
        return super().get_source_stamp(), sources_hash()


LOCATORS = [type(f"Package{base.__name__}", (PackageStamp, base), {})
            for base in (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator,
                         caching.UserWideCacheLocator)]


def install_locators():
    """Put LOCATORS before Numba's own, once: every kernel decorated afterwards caches through them
    (kernels/__init__ calls this before it imports a module that compiles)."""
    classes = caching.CacheImpl._locator_classes
    if not any(issubclass(locator, PackageStamp) for locator in classes):
        classes[:0] = LOCATORS
