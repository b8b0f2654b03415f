"""The CUDA backend's tests: on a real GPU, or in Numba's CUDA simulator.

Run in their own pytest process, because the simulator must be chosen before numba is
imported: ``NUMBA_ENABLE_CUDASIM=1 pytest tests_cuda`` (``tests/test_cuda_simulator.py`` does
this as part of the plain ``pytest`` run). On a machine with an NVIDIA GPU, ``pytest
tests_cuda`` runs them on the GPU. The sizes are tiny because the simulator runs every thread
in Python; a few threads per block make the kernels' striding and multi-block paths run.
"""

import os
import sys
import threading

import numpy as np
import pytest

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def pytest_configure(config):
    if SIMULATOR:  # the simulator runs a block's threads as Python threads: let them switch
        sys.setswitchinterval(1e-5)  # often, or every syncthreads waits ~5 ms per thread
        _make_shared_arrays_thread_safe()
        _refuse_launches_a_gpu_refuses()


def _make_shared_arrays_thread_safe():
    """numba-cuda 0.30's simulator creates a shared array on the first call from its source
    line with an unlocked check-then-set, so two threads of a block can each create one and no
    longer share it (seen as rare wrong results under load). The same lookup, under a lock."""
    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support
    if not hasattr(kernelapi.FakeCUDAShared(0), "_allocations"):
        return  # another simulator: leave it alone
    lock = threading.Lock()
    original = kernelapi.FakeCUDAShared.array

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory; an error
            return original(self, shape, dtype, alignment)
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)  # the simulator's own key
        with lock:
            found = self._allocations.get(key)
            if found is None:
                found = self._allocations[key] = np.empty(shape, dtype)
        return found

    kernelapi.FakeCUDAShared.array = array


def _refuse_launches_a_gpu_refuses():
    """The simulator runs any grid and block; a GPU refuses a grid of more than 65,535 blocks
    in y or z (2**31 - 1 in x) and a block of more than 1,024 threads (64 in z): launches
    past those limits fail here as they would there."""
    from numba.cuda.simulator import kernel
    original = kernel.FakeCUDAKernel.__getitem__

    def configure(self, configuration):
        configured = original(self, configuration)
        grid, block = tuple(self.grid_dim), tuple(self.block_dim)
        if grid[0] > 2**31 - 1 or max(grid[1:]) > 65535 or min(grid) < 1 \
                or block[0] * block[1] * block[2] > 1024 or block[2] > 64 or min(block) < 1:
            raise ValueError(f"{self.fn.__name__}: a GPU refuses the grid {grid} of blocks "
                             f"{block}")
        return configured

    kernel.FakeCUDAKernel.__getitem__ = configure


def pytest_collection_modifyitems(config, items):
    try:
        from fastrnn.backends import cuda as cuda_backend
        ok, why = cuda_backend.available()
    except ImportError as e:
        ok, why = False, f"numba-cuda is not installed ({e})"
    if not ok:
        skip = pytest.mark.skip(reason=f"no CUDA device and not in the simulator: {why}")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    """In the simulator, four threads per block, 2 x 2 threads of 2 x 2 outputs per product
    block, 3 row segments and 4 lanes a "persistent" row, so that H, V > 4 exercise the
    striding loops, the products' multi-tile paths, several weights per lane and segments of
    several rows."""
    if SIMULATOR:
        from fastrnn.kernels import cuda as ck
        monkeypatch.setattr(ck, "BLOCK", 4)
        monkeypatch.setattr(ck, "STREAM_BLOCK", 4)
        monkeypatch.setattr(ck, "TILE", 2)
        monkeypatch.setattr(ck, "WORK", 2)
        monkeypatch.setattr(ck, "SEGMENTS", 3)
        monkeypatch.setattr(ck, "WARP", 4)
        monkeypatch.setattr(ck, "LANES", 4)


@pytest.fixture(params=["persistent", "persistent-stepwise", "persistent-half", "tiled",
                        "step"])
def recurrence(request, monkeypatch):
    """Each form of the recurrence (see fastrnn.kernels.cuda.RECURRENCE). On a GPU each runs
    as planned. The simulator runs the blocks of a launch one after another and has one block
    in a cooperative grid, so there: "persistent" gets one block per stream (streams are
    independent, so running them in turn is exact) and runs whole chunks; "persistent-
    stepwise" gets three blocks per stream, one step per launch, so that the several-block
    arithmetic is checked; "tiled" is one block looping over every tile, whole chunks;
    "step" one launch per step. "persistent-half" gives each row half a warp's threads (the
    plan's choice where a warp a row does not fit), so that partial-warp sums run."""
    from fastrnn.backends import cuda as cb
    from fastrnn.kernels import cuda as ck
    form = request.param.split("-")[0]
    monkeypatch.setattr(ck, "RECURRENCE", form)
    if SIMULATOR and form == "persistent":
        per_stream = 3 if request.param == "persistent-stepwise" else 1
        def shape(B, H, multiprocessors, coresident):
            rows = -(-H // per_stream)
            return ck.WARP, rows, B * -(-H // rows)
        monkeypatch.setattr(cb, "persistent_shape", shape)
    if request.param == "persistent-stepwise":
        monkeypatch.setattr(ck, "STEPWISE", True)
    if request.param == "persistent-half":
        monkeypatch.setattr(ck, "WARP", ck.WARP // 2)
    return request.param
