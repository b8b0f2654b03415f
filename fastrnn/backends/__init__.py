"""The backends, by name: ``"numba"`` (the default), ``"numpy"`` (the oracle) and ``"cuda"``.

Each is a module of this package whose ``load()`` returns an object with the methods of
``base.Backend``. A backend is imported only when asked for, so the package works where one
(numba-cuda, say) is missing. Adding one: a module here and a line in ``MODULES``.
"""

import functools
import importlib

from .base import Backend  # noqa: F401  (the typed interface)

MODULES = {"numba": ".numba", "numpy": ".numpy", "cuda": ".cuda"}
BACKENDS = tuple(MODULES)


def get_backend(name):
    """The backend called ``name``; a clear ValueError for an unknown or unavailable one."""
    if not isinstance(name, str) or name not in MODULES:
        raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    return _loaded(name)


@functools.cache
def _loaded(name):
    try:
        module = importlib.import_module(MODULES[name], __name__)
    except ImportError as e:
        raise ValueError(f"backend {name!r} needs a package that is not installed ({e}): "
                         f"pip install -e \".[{name}]\"") from None
    return module.load()
