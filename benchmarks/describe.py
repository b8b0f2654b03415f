"""What every benchmark script prints first, and the argument types they share: the command
line that reproduces the run and the machine it ran on, so that a figure pasted anywhere says
where it came from. Also the CUDA scripts' import of numba-cuda and fastrnn's CUDA modules,
after their arguments are parsed (``cuda_modules``).

Importing this module imports no fastrnn module (``positive`` does on its first call), so the
scripts that time another source tree's fastrnn (``batch_one.py``, ``dropin_overhead.py``) can
print the header without loading this tree's."""

import argparse
import importlib
import os
import platform
import shlex
import sys
from pathlib import Path

import numpy as np

# the standard corpus, read in place from ../shared beside the repository (never copied)
SHARED_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def cpu_name():
    """The CPU's model name (/proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(torch=None):
    """Python, NumPy and its BLAS, Numba (and PyTorch if given); the CPU, its cores and
    Numba's thread count."""
    import numba
    from threadpoolctl import threadpool_info
    blas = [f"{i.get('internal_api')} {i.get('version')}" for i in threadpool_info()
            if i.get("user_api") == "blas"]
    return (f"Python {platform.python_version()}, NumPy {np.__version__} "
            f"({', '.join(blas) or 'BLAS unknown'}), Numba {numba.__version__}"
            + (f", PyTorch {torch.__version__}" if torch is not None else "")
            + f"; {cpu_name()}, {os.cpu_count()} cores, "
              f"NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}")


def command(script, argv=None):
    """The command line that reruns ``script`` (``argv``: its arguments, default the
    process's)."""
    args = sys.argv[1:] if argv is None else list(argv)
    return shlex.join(["python", f"benchmarks/{Path(script).name}"] + args)


def header(script, argv=None, torch=None):
    """The two lines a run starts with: its command, and the machine."""
    return f"command: {command(script, argv)}\n{machine(torch)}"


def positive(text):
    """An argparse type: an integer >= 1 (``fastrnn.cli.positive_int``, its messages)."""
    from fastrnn import cli
    return cli.positive_int(text)


def sizes(names):
    """An argparse type: comma-separated integers >= 1, one per name in ``names`` ("B,H,T")."""
    parts = names.split(",")
    count = {2: "two", 3: "three"}.get(len(parts), str(len(parts)))
    listed = ", ".join(parts[:-1]) + " and " + parts[-1]

    def parse(text):
        try:
            values = tuple(int(v) for v in text.split(","))
        except ValueError:
            values = ()
        if len(values) != len(parts):
            raise argparse.ArgumentTypeError(f"a size is {names} ({count} integers), got "
                                             f"{text!r}")
        if min(values) < 1:
            raise argparse.ArgumentTypeError(f"{listed} must be >= 1, got {text!r}")
        return values
    return parse


CUDA_HINT = "NUMBA_ENABLE_CUDASIM=1 runs it in Numba's simulator, at tiny sizes"


def cuda_modules(script):
    """(numba.cuda, fastrnn.backends.cuda, fastrnn.kernels.cuda), imported now, or one line and
    exit status 1 naming what is missing: numba-cuda (numba's own deprecated ``numba.cuda``
    lacks what fastrnn's kernels use, so without numba-cuda they fail on import), or a GPU and
    driver (``backends.cuda.available()``). ``script``: the name the message starts with."""
    try:
        importlib.import_module("numba_cuda")
    except ImportError as e:
        raise SystemExit(f"{script} needs numba-cuda, which is not installed here ({e}): "
                         f'pip install -e ".[cuda]"') from None
    try:
        from numba import cuda
        from fastrnn.backends import cuda as backend
        from fastrnn.kernels import cuda as kernels
    except (ImportError, AttributeError) as e:  # a numba-cuda too old, or broken here
        raise SystemExit(f"{script}: fastrnn's CUDA modules cannot be imported with the "
                         f"numba-cuda here ({type(e).__name__}: {e}): "
                         f'pip install -e ".[cuda]"') from None
    ok, why = backend.available()
    if not ok:
        raise SystemExit(f"fastrnn's CUDA backend cannot run here: {why} ({CUDA_HINT})")
    return cuda, backend, kernels
