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
otherwise keep its old machine code). The digest also holds the ``SETTINGS``, environment
variables read at import that change a constant the kernels compile with.

The cache is a convenience, never a reason for a run to fail: for this package's functions a
cache file that cannot be read (truncated, corrupted) is compiled again and rewritten, one
that cannot be written (a full disk) is left unwritten, each with a one-line note on stderr;
and where no cache directory can be written at all (a read-only install, no writable home,
``NUMBA_CACHE_DIR`` unset) the kernels are cached in a private temporary directory for this
process only (``ProcessCacheLocator``), so they compile in every run, as a note says.

Imported by ``kernels/__init__.py``, before any kernel is defined: Numba picks a function's
cache locator when the function is decorated.
"""

import atexit
import hashlib
import os
import pathlib
import shutil
import sys
import tempfile
import warnings

from numba.core import caching

PACKAGE = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ("kernels/*.py", "cells/*.py", "config.py", "optim.py")   # relative to PACKAGE
# the functions keyed so: the package's, and in a checkout its tests' and benchmarks'
SCOPES = (PACKAGE, PACKAGE.parent / "tests", PACKAGE.parent / "benchmarks")


# the tile kernel's vector width (``tiles._host``): ``tiles.product`` checks its operands' panel
# width against a constant, which a cached kernel would keep from the run that compiled it
SETTINGS = ("FASTRNN_TILE_VECTOR",)


def digest(paths, settings=()):
    """A digest of the files' paths in the package and their contents, and of the
    environment variables ``settings`` (their values, or their absence)."""
    h = hashlib.sha256()
    for name in sorted(path.relative_to(PACKAGE).as_posix() for path in paths):
        h.update(name.encode())
        h.update(hashlib.sha256((PACKAGE / name).read_bytes()).digest())
    for name in settings:
        h.update(repr((name, os.environ.get(name))).encode())
    return h.hexdigest()


DIGEST = digest((path for pattern in SOURCES for path in PACKAGE.glob(pattern)), SETTINGS)


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


_noted = set()


def note(kind, message):
    """One line on stderr, once a process for each kind of cache trouble."""
    if kind not in _noted:
        _noted.add(kind)
        try:  # (a stderr that cannot be written must not fail what the note is about)
            print(f"fastrnn: note: {message}", file=sys.stderr, flush=True)
        except (OSError, ValueError, AttributeError):
            pass


# (private in Numba: with a version that renames them, there is no last resort)
_SourceFile = getattr(caching, "_SourceFileBackedLocatorMixin", object)
_Locator = getattr(caching, "_CacheLocator", object)


class ProcessCacheLocator(_SourceFile, _Locator):
    """The last resort, after Numba's own locators: a private temporary directory of this
    process (removed at exit), where no cache directory can be written."""

    directory = None  # made by the first function that needs it...
    owner = None      # ...in this process (a child made by fork leaves it to its parent)

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        if ProcessCacheLocator.directory is None:
            ProcessCacheLocator.directory = tempfile.mkdtemp(prefix="fastrnn-kernels-")
            ProcessCacheLocator.owner = os.getpid()
            atexit.register(ProcessCacheLocator.remove)
            note("process", "no writable directory for the compiled kernels' cache (the "
                            "package's folder, ~/.cache, NUMBA_CACHE_DIR): they are compiled in "
                            "every run; set NUMBA_CACHE_DIR to a writable directory to keep them")
        self._cache_path = os.path.join(ProcessCacheLocator.directory,
                                        self.get_suitable_cache_subpath(py_file))

    def get_cache_path(self):
        return self._cache_path

    @classmethod
    def remove(cls):
        """The directory and what is in it, by the process that made it."""
        if cls.directory is not None and cls.owner == os.getpid():
            shutil.rmtree(cls.directory, ignore_errors=True)


def _read_failed(cache, error):
    """A cached kernel that cannot be read: its index goes (a save rewrites it), and the
    kernel is compiled again."""
    index = getattr(cache._cache_file, "_index_path", None)
    note("read", f"a compiled kernel in the cache could not be read ({index}: "
                 f"{type(error).__name__}: {error}): compiling it again")
    try:
        os.unlink(index)
    except (OSError, TypeError):
        pass


def _write_failed(cache, error):
    why = error if isinstance(error, OSError) else f"{type(error).__name__}: {error}"
    note("write", f"compiled kernels could not be saved in the cache ({cache._cache_path}: "
                  f"{why}): they will be compiled again in the next run")


def _tolerant(method, failed):
    """Cache.load_overload or save_overload, which for this package's functions reports a
    failure (``failed``) and goes on as if nothing were cached (None)."""
    def call(self, *args, **kwargs):
        if not isinstance(self._impl.locator, LOCATORS):
            return method(self, *args, **kwargs)
        try:
            return method(self, *args, **kwargs)
        except Exception as e:  # (unpickling a damaged file raises almost anything)
            failed(self, e)
            return None

    call.__name__, call.__doc__ = method.__name__, method.__doc__
    return call


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
    last = ()
    if object not in (_SourceFile, _Locator):
        last = (_keyed_locator(ProcessCacheLocator),)
        impl._locator_classes.extend(last)  # tried when none of Numba's can write
    cache = caching.Cache
    cache.load_overload = _tolerant(cache.load_overload, _read_failed)
    cache.save_overload = _tolerant(cache.save_overload, _write_failed)
    return tuple(ours) + last


LOCATORS = _install()
