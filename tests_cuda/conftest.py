"""The CUDA backend's tests: on a real GPU, or in Numba's CUDA simulator.

Run in their own pytest process, because the simulator must be chosen before numba is
imported: ``NUMBA_ENABLE_CUDASIM=1 pytest tests_cuda`` (``tests/test_cuda_simulator.py`` does
this as part of the plain ``pytest`` run). On a machine with an NVIDIA GPU, ``pytest
tests_cuda`` runs them on the GPU. The sizes are tiny because the simulator runs every thread
in Python; a few threads per block make the kernels' striding and multi-block paths run.
"""

import os

import pytest

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def pytest_collection_modifyitems(config, items):
    try:
        from fastrnn import cuda_backend
        ok, why = cuda_backend.available()
    except ImportError as e:
        ok, why = False, f"numba-cuda is not installed ({e})"
    if not ok:
        skip = pytest.mark.skip(reason=f"no CUDA device and not in the simulator: {why}")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    """Four threads per block in the simulator (so H, V > 4 exercise the striding loops)."""
    if SIMULATOR:
        from fastrnn.kernels import cuda as ck
        monkeypatch.setattr(ck, "BLOCK", 4)
