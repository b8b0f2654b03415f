"""Every CUDA kernel compiles to PTX for a Hopper GPU (sm_90), without a GPU.

The simulator (``tests_cuda/``) runs the kernels as Python, so it cannot catch what only the
real compiler sees: typing errors, unsupported constructs, a shared array too large for a
block. ``cuda.compile_ptx`` runs numba-cuda's real compiler (NVVM from the ``cu13`` extra) for
the argument types the backend launches the kernels with. Device functions are compiled for
the current device's compute capability; with no device, the test names sm_90 for them.
"""

from types import SimpleNamespace

import re

import numpy as np
import pytest
from numba import boolean, float32, float64, int32, int64, uint8

from fastrnn.backends import cuda as cb
from fastrnn.kernels import cuda as ck

WORK = ck.WORK  # the launch configuration a GPU runs (with ck.TILE)


def signatures(f):
    """Each kernel's argument types, as ``fastrnn.backends.cuda`` launches it (ids here as
    uint8)."""
    a1, a2, a3 = f[::1], f[:, ::1], f[:, :, ::1]
    ids2, ids1 = uint8[:, ::1], uint8[::1]
    f64 = float64[::1]
    return dict(
        matmul=(a2, boolean, a2, boolean, a2),
        recurrence=(ids2, a2, a2, a2, a1, a3, boolean),
        recurrence_step=(int64, ids2, a2, a2, a1, a3),
        recurrence_back=(a3, a3, a2, a3, boolean),
        recurrence_back_step=(int64, a3, a3, a2, a3),
        recurrence_persistent=(ids2, a2, a2, a1, a3, int64, int64, int64),
        recurrence_back_persistent=(a3, a3, a2, a3, int64, int64, int64),
        copy_state=(a2, a3),
        transpose=(a2, a2),
        softmax_rows=(a2, a1, ids1, a2, f64),
        add_losses=(f64, int64, f64, f64, int64),
        segment_sums=(a2, a2),
        output_delta=(a2, ids1, a2),
        column_sums=(a2, a1),
        grad_xh=(int32[::1], int32[::1], a2, a2),
        clip_all=(a1,),
        optimize=(a1, a1, a1, a1, int64, float64, int64, boolean),
        zero=(a1,),
        sample=(a1, int64, f64, a2, a2, a2, a1, a1, float64, boolean, int64[::1], a1, f64),
    )


PRODUCTS = ("matmul", "recurrence_step", "recurrence_back_step")  # the kernels WORK shapes


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("work", sorted({WORK, 1}, reverse=True))
def test_every_kernel_compiles_for_sm90(dtype, work, monkeypatch):
    """Every kernel at the default launch configuration; the products also with the smallest
    tiles, which ``fastrnn.backends.cuda._product`` falls back to on small grids. The kernels
    are the backend's own (``_kernels``), so the test compiles what it launches."""
    from numba import cuda
    from numba.cuda import dispatcher
    monkeypatch.setattr(dispatcher, "get_current_device",
                        lambda: SimpleNamespace(compute_capability=(9, 0)))
    nb = {np.float32: float32, np.float64: float64}[dtype]
    kernels = cb._kernels(dtype, work)
    sigs = signatures(nb)
    assert set(sigs) == set(kernels), "a kernel without a signature here is not checked"
    for name, kernel in kernels.items():
        if work != WORK and name not in PRODUCTS:
            continue
        ptx, _ = cuda.compile_ptx(kernel.py_func, sigs[name], cc=(9, 0))
        assert ".entry" in ptx, name
        shared = sum(int(n) for n in re.findall(r"\.shared\s.*\[(\d+)\];", ptx))
        assert shared <= 48 * 1024, f"{name}: {shared} bytes of static shared memory"
        # the products' per-thread accumulators must live in registers, not local memory
        assert ".local" not in ptx, f"{name} uses local memory"
