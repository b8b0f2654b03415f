"""Runs tests_cuda/ in Numba's CUDA simulator, in its own pytest process.

The simulator must be switched on before numba is first imported, which has long happened in
this process; hence the subprocess. It takes minutes and runs on one core, so it is started as
soon as pytest knows it is selected (``tests/conftest.py``: ``pytest_collection_finish``) and
runs beside the other tests; the test below waits for it. On a machine with a GPU, run
``pytest tests_cuda`` as well to test the kernels on the device.
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 1200  # seconds, from the process's start
_run = {}       # the process, the file that takes its output and its start time, once started


def start():
    """Start the simulator's pytest process (once; not without numba-cuda)."""
    if _run or importlib.util.find_spec("numba.cuda") is None:
        return
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(ROOT)}
    output = tempfile.TemporaryFile("w+")  # a file, not a pipe: no pipe buffer to fill and block
    _run["output"] = output
    _run["started"] = time.monotonic()
    _run["process"] = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         str(ROOT / "tests_cuda")], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
        text=True)


def stop():
    """End the process if it still runs (a session stopped early), and close its output."""
    if _run:
        _run["process"].kill()
        _run["process"].wait()
        _run["output"].close()
        _run.clear()


def test_cuda_backend_in_the_simulator():
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    start()
    process, output = _run["process"], _run["output"]
    try:
        returncode = process.wait(timeout=max(0.0, _run["started"] + TIMEOUT - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the simulator's tests ran past {TIMEOUT} s")
    output.seek(0)
    text = output.read()
    report = text[-9000:]
    assert returncode == 0, report
    assert " passed" in text, report
    # only the real-GPU sizes may be skipped, never the backend itself
    assert "no CUDA device" not in text, report
