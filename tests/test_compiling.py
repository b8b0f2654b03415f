"""The status line shown while Numba compiles, and only then; what the on-disk cache of
compiled kernels is keyed on."""

import os
import pathlib
import pickle
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from numba import njit

from fastrnn import cells, compiling, optim
from fastrnn.kernels import caching
from fastrnn.spec import Weights


def test_a_compilation_is_announced_once_with_its_duration():
    @njit
    def kernel(x):
        return x + 1

    said = []
    with compiling.announce(said.append, "float64"):
        kernel(np.float64(1))
        kernel(np.int64(1))  # a second compilation in the same call: still one status line
    assert len(said) == 2, said
    assert said[0].startswith("compiling kernels for float64 (first run only")
    assert said[1].startswith("compiled in ") and said[1].endswith(" s")


def test_nothing_is_said_when_nothing_compiles():
    @njit
    def kernel(x):
        return x * 2

    kernel(1.0)
    said = []
    with compiling.announce(said.append, "float64"):
        assert kernel(2.0) == 4.0
    assert said == []


_PROBE = """
import numpy as np
from fastrnn.kernels import vmath
vmath._exp64(np.float64(1.0))
print(vmath._exp64.stats.cache_hits and "loaded" or "compiled")
"""


def probe(code, env, cwd, timeout):
    """The last word ``code`` prints, run in a Python process of its own."""
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[-1]


def test_an_edit_to_any_kernel_source_recompiles_every_kernel(tmp_path):
    """A kernel is loaded from the cache until a file it may inline or read constants from
    changes (kernels/caching.py), not only its own file; other files do not matter."""
    package = tmp_path / "fastrnn"
    shutil.copytree(caching.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("NUMBA_DISABLE_JIT", None)

    def run():
        return probe(_PROBE, env, tmp_path, 300)

    assert run() == "compiled"
    assert run() == "loaded"
    with open(package / "train.py", "a") as f:     # not a kernel source
        f.write("\n# an edit\n")
    assert run() == "loaded"
    with open(package / "kernels" / "tiles.py", "a") as f:   # vmath.py itself is unchanged
        f.write("\n# an edit\n")
    assert run() == "compiled"
    assert run() == "loaded"


_GATED = """
import numpy as np
from fastrnn import CharRNN, compiling
said = []
with compiling.announce(said.append, "float32"):
    for cell in ("lstm", "gru"):
        model = CharRNN(5, hidden_size=8, seq_length=4, dtype="float32", cell=cell,
                        num_layers=2, dropout=0.1, optimizer="adam", threads=1)
        model.train(np.arange(40) % 5, 1)
        model.evaluate(np.arange(9) % 5)
print(said and "compiled" or "loaded")
"""


def test_the_named_tuples_kernels_take_pickle_by_reference():
    """Numba's cache index pickles a kernel's signature: a named tuple class in it must be
    found again by its module and name (every cell's Layer, the weights, every optimizer's
    state), or each process unpickles a class of its own and the cache never matches."""
    classes = [cell.Layer for cell in cells.CELLS.values()] + [Weights] + \
              [optimizer.State for optimizer in optim.OPTIMIZERS.values()]
    for cls in classes:
        assert pickle.loads(pickle.dumps(cls)) is cls, cls.__name__


def test_the_gated_cells_kernels_load_from_the_cache(tmp_path):
    """A second run of an LSTM and a GRU (training, evaluation) compiles nothing: their kernels
    take the cells' Layer named tuples, which the cache index must pickle by reference (by
    value, each process would unpickle a class of its own, and no key would match)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("NUMBA_DISABLE_JIT", None)

    def run():
        return probe(_GATED, env, caching.PACKAGE.parent, 600)

    assert run() == "compiled"
    assert run() == "loaded"


def test_only_this_packages_functions_are_keyed_on_its_sources(tmp_path):
    assert caching.keyed(caching.PACKAGE / "kernels" / "batch.py")
    assert caching.keyed(pathlib.Path(__file__))
    assert not caching.keyed(tmp_path / "elsewhere.py")
    assert not caching.keyed(pathlib.Path(np.__file__))


def test_a_damaged_cache_file_is_compiled_again_with_a_note(tmp_path):
    """A truncated cache file (a disk that filled, a copy cut short) was a traceback, in this
    run and every later one: now its kernel compiles again, its index is rewritten, and the
    next run loads it."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("NUMBA_DISABLE_JIT", None)

    def run():
        done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                              text=True, timeout=300, cwd=caching.PACKAGE.parent)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        return done.stdout.split()[-1], done.stderr

    assert run()[0] == "compiled"
    files = sorted((tmp_path / "cache").rglob("vmath._exp64-*.nb[ic]"))
    assert files
    for path in files:
        with open(path, "r+b") as f:
            f.truncate(10)
    said, err = run()
    assert said == "compiled"
    assert "fastrnn: note: a compiled kernel in the cache could not be read (" in err, err
    assert err.rstrip().endswith("compiling it again"), err
    assert run() == ("loaded", "")


@njit(cache=True)
def _cached_square(x):
    return x * x


def test_cache_trouble_is_a_note_never_a_failure(monkeypatch, capsys):
    """A cache index that cannot be read and a cache that cannot be written (a full disk):
    the kernel compiles and runs, with a line saying each, once."""
    from numba.core import caching as numba_caching

    def unreadable(*args, **kwargs):
        raise pickle.UnpicklingError("pickle data was truncated")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(numba_caching.IndexDataCacheFile, "load", unreadable)
    monkeypatch.setattr(numba_caching.IndexDataCacheFile, "save", full)
    monkeypatch.setattr(caching, "_noted", set())
    assert _cached_square(3.0) == 9.0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2, err
    assert err[0].startswith("fastrnn: note: a compiled kernel in the cache could not be read (")
    assert err[0].endswith("UnpicklingError: pickle data was truncated): compiling it again")
    assert err[1].startswith("fastrnn: note: compiled kernels could not be saved in the cache (")
    assert err[1].endswith("[Errno 28] No space left on device): they will be compiled again "
                           "in the next run")


def test_a_cache_note_that_cannot_be_written_is_dropped(monkeypatch):
    """(it failed the import it was about: a read-only install with stderr on a full disk)"""
    class Full:
        def write(self, text):
            raise OSError(28, "No space left on device")

        def flush(self):
            pass

    monkeypatch.setattr(caching, "_noted", set())
    monkeypatch.setattr(sys, "stderr", Full())
    caching.note("process", "a note")
    monkeypatch.setattr(sys, "stderr", None)  # (pythonw, or closed)
    caching.note("read", "a note")


def test_without_a_writable_cache_directory_the_kernels_compile_for_the_run(tmp_path):
    """A read-only install with no writable home and no NUMBA_CACHE_DIR was a traceback ('no
    locator available'): the kernels are cached in a private directory of the process."""
    package = tmp_path / "site" / "fastrnn"
    shutil.copytree(caching.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    for folder in [package, *(p for p in package.rglob("*") if p.is_dir())]:
        (folder / "__pycache__").write_text("")  # (a file: no cache folder there, even for root)
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")  # (nor under the home directory)
    env = {**os.environ, "PYTHONPATH": str(package.parent), "HOME": str(blocked),
           "XDG_CACHE_HOME": str(blocked), "NUMBA_CACHE_DIR": ""}
    env.pop("NUMBA_DISABLE_JIT", None)
    done = subprocess.run([sys.executable, "-c", _PROBE + "from fastrnn.kernels import caching\n"
                           "print(caching.ProcessCacheLocator.directory)"], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    said, directory = done.stdout.split()[-2:]
    assert said == "compiled" and directory.startswith(tempfile.gettempdir())
    assert not os.path.exists(directory)  # (removed at exit, by this process only:)
    assert caching.ProcessCacheLocator.owner is None or \
        caching.ProcessCacheLocator.owner == os.getpid()
    assert done.stderr.startswith("fastrnn: note: no writable directory for the compiled "
                                  "kernels' cache"), done.stderr
