"""Runs tests_cuda/ in Numba's CUDA simulator, in its own pytest process.

The simulator must be switched on before numba is first imported, which has long happened in
this process; hence the subprocess. On a machine with a GPU, run ``pytest tests_cuda`` as well
to test the kernels on the device.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_cuda_backend_in_the_simulator():
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           str(ROOT / "tests_cuda")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1200)
    report = done.stdout[-6000:] + done.stderr[-3000:]
    assert done.returncode == 0, report
    assert " passed" in done.stdout, report
    # only the real-GPU sizes may be skipped, never the backend itself
    assert "no CUDA device" not in done.stdout, report
