"""What every benchmark script prints first, and the argument types they share: the command
line that reproduces the run and the machine it ran on, so that a figure pasted anywhere says
where it came from."""

import argparse
import os
import platform
import shlex
import sys
from pathlib import Path

import numpy as np

from fastrnn import cli


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


positive = cli.positive_int  # an argparse type: an integer >= 1


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
