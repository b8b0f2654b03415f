"""Runs tests_cuda/ in Numba's CUDA simulator, in its own pytest process.

The simulator must be switched on before numba is first imported, which has long happened in
this process; hence the subprocess. It is started as soon as collection is done
(``tests/conftest.py``) so that it runs on the second core beside the rest of the suite, and
this test, moved to the end, collects its result. On a machine with a GPU, run
``pytest tests_cuda`` as well to test the kernels on the device.
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_run = None  # (process, output file), once started


def have_numba_cuda():
    return importlib.util.find_spec("numba.cuda") is not None


def start():
    """Start the simulator's pytest process (once); its output goes to a temporary file."""
    global _run
    if _run is None:
        env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(ROOT)}
        output = tempfile.TemporaryFile("w+")
        process = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-rs", "-p",
                                    "no:cacheprovider", str(ROOT / "tests_cuda")], cwd=ROOT,
                                   env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
        _run = (process, output)
    return _run


def stop():
    """End the process if the session ends before its test collected it (-x, Ctrl-C)."""
    if _run is not None and _run[0].poll() is None:
        _run[0].kill()
        _run[0].wait()


def test_cuda_backend_in_the_simulator():
    if not have_numba_cuda():
        pytest.skip("numba-cuda is not installed")
    process, output = start()
    returncode = process.wait(timeout=1200)
    output.seek(0)
    printed = output.read()
    report = printed[-9000:]
    assert returncode == 0, report
    assert " passed" in printed, report
    # only the real-GPU sizes may be skipped, never the backend itself
    assert "no CUDA device" not in printed, report
