"""Numba's on-disk cache, keyed on every source file a kernel is compiled from.

Numba keys a cached kernel on its own file only. fastrnn's kernels inline kernels of other
files (``config.INLINE``: ``tiles.pack`` into ``batch.load_layer``, ``vmath`` and
``scalar`` into everything) and bake in constants of ``config.py``, so after an edit to
``tiles.py`` alone, ``batch.py``'s kernels would load from the cache with the old code inlined:
tests would pass, and runs be timed, on code that is no longer there. Here the key of every
kernel and test kernel of this package also holds a digest of ``SOURCES``, the files whose code
or constants the kernels compile, so that a change to any of them compiles them all again,
once: an edit in a checkout, or a new version installed over an old one whose cache files
are still there (Numba's own key is the file's content, so an unchanged batch.py would
otherwise keep its old machine code).

Imported by ``kernels/__init__.py``, before any kernel is defined: Numba picks a function's
cache locator when the function is decorated.
"""

import hashlib
import pathlib
import warnings

from numba.core import caching

PACKAGE = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ("kernels/*.py", "cells/*.py", "config.py", "optim.py")   # relative to PACKAGE
# the functions keyed so: the package's, and in a checkout its tests' and benchmarks'
SCOPES = (PACKAGE, PACKAGE.parent / "tests", PACKAGE.parent / "benchmarks")


def digest(paths):
    """A digest of the files' paths in the package and their contents."""
    h = hashlib.sha256()
    for name in sorted(path.relative_to(PACKAGE).as_posix() for path in paths):
        h.update(name.encode())
        h.update(hashlib.sha256((PACKAGE / name).read_bytes()).digest())
    return h.hexdigest()


DIGEST = digest(path for pattern in SOURCES for path in PACKAGE.glob(pattern))


def keyed(py_file):
    """Whether a function defined in ``py_file`` is cached under ``DIGEST``."""
    path = pathlib.Path(py_file).resolve()
    return any(path.is_relative_to(scope) for scope in SCOPES)


def _keyed_locator(base):
    """``base`` (a Numba cache locator) with ``DIGEST`` added to its source stamp, for this
    package's functions only (others are left to Numba's own locators)."""

    class Locator(base):
        def get_source_stamp(self):
            return (super().get_source_stamp(), DIGEST)

        @classmethod
        def from_function(cls, py_func, py_file):
            if not keyed(py_file):
                return None
            return super().from_function(py_func, py_file)

    Locator.__name__ = Locator.__qualname__ = f"FastrnnSources{base.__name__.lstrip('_')}"
    return Locator


def _install():
    # Numba's locator list is not public API: newer versions name the classes without the
    # underscore of earlier ones; one that has neither keeps Numba's own keys, with a warning
    def find(name):
        return getattr(caching, name, None) or getattr(caching, "_" + name, None)

    impl = find("CacheImpl")
    bases = [find(name) for name in ("UserProvidedCacheLocator", "InTreeCacheLocator",
                                     "UserWideCacheLocator")]
    if not isinstance(getattr(impl, "_locator_classes", None), list) or None in bases:
        warnings.warn("fastrnn: this Numba's cache locators are unknown to fastrnn, so cached "
                      "kernels are keyed on their own file only; after editing a kernel file, "
                      "delete the __pycache__ folders under fastrnn/")
        return ()
    ours = [_keyed_locator(base) for base in bases]
    impl._locator_classes[:0] = ours   # tried first, in Numba's own order
    return tuple(ours)


LOCATORS = _install()
