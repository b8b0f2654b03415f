"""The CUDA recurrence's plan (``fastrnn.backends.cuda.plan``), without a GPU.

The plan picks the form and launch shape of each chunk's recurrence from a description of the
device: its multiprocessors, how many blocks of a cooperative kernel it can hold at once, and
the cost model's rates (``Hardware``). Here the device is an H200 as measured
(132 multiprocessors); co-residency is counted from threads alone (at most 2048 threads and 32
blocks a multiprocessor; the real query also counts registers and shared memory).
"""

from types import SimpleNamespace

import numpy as np
import pytest

from fastrnn.backends import cuda as cb
from fastrnn.kernels import cuda as ck

SMS = cb.H200.multiprocessors


def h200(form, threads, variant):
    return SMS * min(32, 2048 // threads)


def h200_registers(form, threads, variant):
    """As if each thread needed 64 registers (65,536 a multiprocessor)."""
    return SMS * min(32, 1024 // threads)


def plan(B, H, itemsize=4, asked="auto", coresident=h200, cooperative=True):
    return cb.plan(B, H, itemsize, asked, SMS, coresident, cooperative)


def test_the_issue_sizes_get_the_forms_the_model_ranks_first():
    """One stream of 512 units: "persistent" (Whh in registers across 128 blocks, one per
    multiprocessor); 128 streams of 1024: "tiled" ("persistent" cannot hold 128 copies of a
    4 MB Whh; "step" pays a host launch per step)."""
    p = plan(1, 512)
    assert (p.form, p.group, p.rows, p.blocks, p.lanes) == ("persistent", 32, 4, 128, 16), p
    p = plan(128, 1024)
    assert (p.form, p.tile, p.blocks) == ("tiled", 8, 128), p
    for B, H in [(1, 512), (128, 1024)]:
        chosen = plan(B, H)
        for form in ("persistent", "tiled", "step"):
            try:
                other = plan(B, H, asked=form)
            except ValueError:
                continue
            assert (cb.step_seconds(chosen, B, H, 4, cb.H200)
                    <= cb.step_seconds(other, B, H, 4, cb.H200)), (B, H, form)


def test_the_size_that_failed_on_a_gpu_now_has_every_form():
    """B = 40, H = 150, float64 (tests_cuda's many-tiles test): the old "persistent" form
    needed 74 KB of shared memory a block and raised; its weights now live in registers."""
    for form in ("persistent", "tiled", "step"):
        p = plan(40, 150, itemsize=8, asked=form)
        assert p.form == form and p.blocks >= 1, p
    p = plan(40, 150, itemsize=8, asked="persistent")
    assert (p.group, p.rows, p.blocks) == (32, 32, 200), p
    # with the registers the kernel really needs a warp a row does not fit (seen on an H200):
    # 16 threads a row, 64 rows a block, 120 blocks of 1024 threads, one a multiprocessor
    p = plan(40, 150, itemsize=8, asked="persistent", coresident=h200_registers)
    assert (p.group, p.rows, p.blocks, p.lanes) == (16, 64, 120, 16), p


@pytest.mark.parametrize("B", [1, 2, 3, 16, 40, 128, 1000])
@pytest.mark.parametrize("H", [1, 5, 64, 150, 512, 1024, 2048, 4096])
def test_every_plan_fits_the_device(B, H):
    """Whatever the size, "auto" finds a form, and a cooperative plan never launches more
    blocks than can be resident at once (else the launch would fail or hang)."""
    for asked in ("auto", "persistent", "tiled", "step"):
        try:
            p = plan(B, H, asked=asked)
        except ValueError as e:
            assert asked == "persistent", e
            assert "cannot run" in str(e) and f"{B} stream" in str(e)
            continue
        if p.form == "persistent":
            assert p.rows * p.group <= 1024 and p.lanes == ck.per_lane(H, p.group)
            assert p.blocks == B * -(-H // p.rows) <= h200(p.form, p.group * p.rows, 0)
        elif p.form == "tiled":
            assert 1 <= p.blocks <= h200(p.form, p.tile * p.tile, 0)
        if H > ck.MAX_PER_LANE * ck.WARP:
            assert p.form != "persistent"


def test_without_cooperative_launch_only_the_step_form_runs():
    assert plan(1, 512, cooperative=False).form == "step"
    with pytest.raises(ValueError, match="no cooperative launch"):
        plan(1, 512, asked="tiled", cooperative=False)


def test_persistent_blocks_spread_over_the_multiprocessors_first(monkeypatch):
    """The fewest rows a block whose blocks fit one a multiprocessor (more blocks, less work
    each); past that, the most rows (fewest blocks) that are all co-resident; past that,
    fewer threads a row (more weights each)."""
    assert cb.persistent_shape(1, 64, SMS, lambda t, g: 10 ** 6) == (32, 1, 64)
    assert cb.persistent_shape(2, 512, SMS, lambda t, g: 10 ** 6) == (32, 8, 128)
    assert cb.persistent_shape(40, 150, SMS, lambda t, g: SMS * 2) == (32, 32, 200)
    assert cb.persistent_shape(40, 150, SMS, lambda t, g: 100) == (8, 128, 80)  # 8 a row
    assert cb.persistent_shape(40, 150, SMS, lambda t, g: 50) is None
    # blocks are whole warps: 16 threads a row take two rows a block, not one
    no_warp_rows = lambda t, g: 0 if g == ck.WARP else 10 ** 6  # noqa: E731
    assert cb.persistent_shape(1, 64, SMS, no_warp_rows) == (16, 2, 32)
    monkeypatch.setattr(ck, "WARP", 16)  # (tests_cuda's "persistent-half": the same blocks)
    assert cb.persistent_shape(1, 64, SMS, lambda t, g: 10 ** 6) == (16, 2, 32)


def test_product_blocks_shrink_only_when_large_ones_leave_half_the_device_idle():
    assert cb.product_tile(1024, 1024, SMS) == ck.TILE       # 256 blocks of 64 x 64
    assert cb.product_tile(128, 1024, SMS) == ck.TILE // 2   # 32 blocks would idle 100 SMs
    assert cb.product_tile(12800, 65, SMS) == ck.TILE


def test_the_cost_model_counts_what_each_form_moves():
    """Per step: "persistent" reads h once a block; "tiled" reads Whh once per row of tiles;
    "step" cannot beat a host launch."""
    B, H = 128, 1024
    tiled = plan(B, H, asked="tiled")
    side = tiled.tile * ck.WORK
    moved = (B // side * H * H + H // side * B * H) * 4
    assert cb.step_seconds(tiled, B, H, 4, cb.H200) == pytest.approx(
        max(B * H * H / tiled.blocks / (128 / cb.INSTRUCTIONS_PER_FMA) / cb.H200.clock_hz,
            moved / cb.H200.l2_bytes_per_s) + cb.H200.barrier_s)
    step = plan(1, 64, asked="step")
    assert cb.step_seconds(step, 1, 64, 4, cb.H200) == cb.H200.launch_s
    assert np.isfinite(cb.step_seconds(plan(1, 512), 1, 512, 4, cb.H200))


# ---------------------------------------------------------------- with the real registers


def registers(kernel, signature):
    """Registers a thread of ``kernel`` takes on sm_90, from linking its PTX with nvJitLink
    (ptxas inside; no GPU needed); None where nvJitLink is unavailable."""
    import glob
    import os
    import re
    from numba import cuda
    try:
        import nvidia.cu13
        from cuda.bindings import nvjitlink
    except ImportError:
        return None
    ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=(9, 0))
    options = ["-arch=sm_90", "-verbose"]
    handle = nvjitlink.create(len(options), options)
    try:  # (a kernel that no longer links fails the test: it is not a missing tool)
        nvjitlink.add_data(handle, nvjitlink.InputType.PTX, ptx.encode(), len(ptx), "kernel")
        devrt = glob.glob(os.path.join(list(nvidia.cu13.__path__)[0], "lib", "libcudadevrt.a"))
        if "cudaCGSynchronize" in ptx and devrt:  # the grid barrier lives there
            nvjitlink.add_file(handle, nvjitlink.InputType.LIBRARY, devrt[0])
        nvjitlink.complete(handle)
        log = bytearray(nvjitlink.get_info_log_size(handle))
        nvjitlink.get_info_log(handle, log)
    finally:
        nvjitlink.destroy(handle)
    used = re.findall(r"Used (\d+) registers", log.decode(errors="ignore"))
    return int(used[0]) if used else None


def resident_blocks(registers_per_thread, threads):
    """Blocks a Hopper multiprocessor holds: 65,536 registers (allocated per warp, in units of
    256), 2048 threads, 32 blocks; times 132 multiprocessors (an H200)."""
    warps = -(-threads // 32)
    per_warp = -(-registers_per_thread * 32 // 256) * 256
    return SMS * min(32, 2048 // threads, 65536 // (warps * per_warp))


@pytest.mark.parametrize("B, H, dtype, fits", [(1, 512, np.float32, True),
                                                (4, 150, np.float64, True),
                                                (40, 150, np.float64, False)])
def test_persistent_co_residency_from_the_real_registers(B, H, dtype, fits, monkeypatch):
    """The "persistent" kernels' registers, read from the compiled code, decide which sizes
    the form can hold (all its blocks resident at once). The sizes the GPU tests ask of it
    must fit; B = 40, H = 150 in float64 does not (the H200's own occupancy query said so:
    the form's first design assumed it would and failed there)."""
    from numba import float32, float64
    from numba.cuda import dispatcher
    from tests.test_cuda_compile import signatures
    monkeypatch.setattr(dispatcher, "get_current_device",  # no GPU: device code for sm_90
                        lambda: SimpleNamespace(compute_capability=(9, 0)))
    nb = {np.float32: float32, np.float64: float64}[dtype]
    sigs = signatures(nb)
    counts = {}

    def coresident(form, threads, variant):
        if form != "persistent":
            return h200(form, threads, variant)
        lanes, group = variant
        if (lanes, group) not in counts:
            kernels = ck.persistent_kernels(dtype, lanes, group)
            counts[variant] = [registers(k, sigs[name]) for name, k in kernels.items()]
        used = counts[variant]
        if None in used:
            pytest.skip("nvJitLink (numba-cuda's cu13 extra) is not installed")
        return resident_blocks(max(used), threads)

    if fits:
        p = cb.plan(B, H, np.dtype(dtype).itemsize, "persistent", SMS, coresident)
        assert p.blocks == B * -(-H // p.rows) <= coresident("persistent", p.group * p.rows,
                                                              (p.lanes, p.group))
    else:
        with pytest.raises(ValueError, match="cannot all be resident"):
            cb.plan(B, H, np.dtype(dtype).itemsize, "persistent", SMS, coresident)
