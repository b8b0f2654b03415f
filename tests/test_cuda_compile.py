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

TILES = (ck.TILE, ck.TILE // 2)  # the product blocks a GPU runs (backends.cuda.product_tile)


def signatures(f):
    """Each kernel's argument types, as ``fastrnn.backends.cuda`` launches it (ids here as
    uint8)."""
    a1, a2, a3 = f[::1], f[:, ::1], f[:, :, ::1]
    ids2, ids1 = uint8[:, ::1], uint8[::1]
    f64 = float64[::1]
    return dict(
        matmul=(a2, boolean, a2, boolean, a2),
        recurrence_tiled=(ids2, a2, a2, a1, a3, int64, int64),
        recurrence_back_tiled=(a3, a3, a2, a3, int64, int64),
        recurrence_step=(int64, ids2, a2, a2, a1, a3),
        recurrence_back_step=(int64, a3, a3, a2, a3),
        recurrence_persistent=(ids2, a2, a2, a1, a3, int64, int64, int64),
        recurrence_back_persistent=(a3, a3, a2, a3, int64, int64, int64),
        copy_state=(a2, a3),
        softmax_rows=(a2, a1, ids1, a2, f64),
        add_losses=(f64, int64, f64, f64, int64),
        segment_sums=(a2, a2),
        output_delta=(a2, ids1, a2),
        column_sums=(a2, a1),
        grad_xh=(int32[::1], int32[::1], a2, a2),
        clip_all=(a1,),
        optimize=(a1, a1, a1, a1, int64, float64, int64, float64),
        zero=(a1,),
        sample=(a1, int64, f64, a2, a2, a2, a1, a1, float64, boolean, int64, float64, int64[::1],
                a1, f64),
    )


# the kernels whose inner loops are the products (WORK shapes them) and the recurrences
PRODUCTS = ("matmul", "recurrence_tiled", "recurrence_back_tiled", "recurrence_step",
            "recurrence_back_step")
PERSISTENT = ("recurrence_persistent", "recurrence_back_persistent")


@pytest.fixture
def sm90(monkeypatch):
    """Device functions compile for the current device's compute capability: with no device,
    name sm_90 for them."""
    from numba.cuda import dispatcher
    monkeypatch.setattr(dispatcher, "get_current_device",
                        lambda: SimpleNamespace(compute_capability=(9, 0)))


def ptx_of(kernel, signature):
    from numba import cuda
    ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=(9, 0))
    return ptx


def kernel_sets(dtype, tile):
    """{name: kernel} as the backend launches them: the products' family at ``tile`` and the
    "persistent" kernels at each register budget (weights per thread) H can ask for with a
    warp a row, and at the largest budget with 16 and 8 threads a row."""
    kernels = dict(cb._kernels(dtype, tile))
    variants = [(1 << n, ck.WARP) for n in range(ck.MAX_PER_LANE.bit_length())]
    variants += [(ck.MAX_PER_LANE, ck.WARP // 2), (ck.MAX_PER_LANE, ck.WARP // 4)]
    for lanes, group in variants:
        for name, kernel in ck.persistent_kernels(dtype, lanes, group).items():
            kernels[f"{name}/{lanes}x{group}"] = kernel
    return kernels


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tile", TILES)
def test_every_kernel_compiles_for_sm90(dtype, tile, sm90):
    """Every kernel at the default launch configuration, the products at both block sizes
    ``fastrnn.backends.cuda.product_tile`` picks, the "persistent" kernels at every register
    budget; the kernels are the backend's own, so the test compiles what it launches."""
    nb = {np.float32: float32, np.float64: float64}[dtype]
    sigs = signatures(nb)
    kernels = kernel_sets(dtype, tile)
    assert {name.split("/")[0] for name in kernels} == set(sigs), \
        "a kernel without a signature here is not checked"
    for name, kernel in kernels.items():
        base = name.split("/")[0]
        if tile != ck.TILE and base not in PRODUCTS:
            continue
        ptx = ptx_of(kernel, sigs[base])
        assert ".entry" in ptx, name
        shared = sum(int(n) for n in re.findall(r"\.shared\s.*\[(\d+)\];", ptx))
        assert shared <= 48 * 1024, f"{name}: {shared} bytes of static shared memory"
        # per-thread accumulators and weights must live in registers, not local memory
        assert ".local" not in ptx, f"{name} uses local memory"


def hot_block(ptx):
    """(instructions, FMAs) of a kernel's inner loop, read from its PTX: the basic block
    (straight-line code between labels and branches) with shared-memory loads holding the
    most FMAs (not, say, tanh's polynomial), counted from its
    first FMA or shared-memory load to its last FMA, plus, where the block is a loop (it ends
    by branching back to its own label), the loop control after that. For the products that
    is the unrolled k loop; for the "persistent" kernels, the dot product from registers (the
    warp's shuffle reduction after it runs once per row and step, not per FMA)."""
    best = (0, 0)
    label, block = None, []
    for line in ptx.splitlines() + ["$end:"]:
        line = line.strip()
        if not line or line.startswith(("//", ".", "{", "}")):
            continue
        starts = re.match(r"^(\$\w+):$", line)
        ends = re.search(r"\bbra(?:\.uni)?\s+(\$\w+);|\bret;", line)
        if not starts:
            block.append(line)
        if starts or ends:
            fma = [i for i, op in enumerate(block) if re.match(r"(@%p\d+\s+)?fma\.rn\.f", op)]
            if len(fma) > best[1] and any(op.startswith("ld.shared") for op in block):
                first = min(i for i, op in enumerate(block)
                            if i == fma[0] or op.startswith("ld.shared"))
                loops = bool(ends and ends.group(1) and ends.group(1) == label)
                last = len(block) - 1 if loops else fma[-1]
                best = (last - first + 1, len(fma))
            block = []
            label = starts.group(1) if starts else None
    return best


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inner_loops_issue_at_most_two_instructions_per_fma(dtype, sm90):
    """The hot loops, read from the PTX numba-cuda's real compiler makes for sm_90 (see
    ``hot_block``): at most two instructions per FMA, i.e. no index arithmetic beside the FMA
    and its shared-memory operand loads, for every product and recurrence kernel at both
    product block sizes and every "persistent" register budget. (Before: 21 per FMA with one
    output a thread, 9 with 4, 2.75 with 16.)"""
    nb = {np.float32: float32, np.float64: float64}[dtype]
    sigs = signatures(nb)
    ratios = {}
    for tile in TILES:
        kernels = kernel_sets(dtype, tile)
        for name in kernels:
            base = name.split("/")[0]
            if base in PRODUCTS or (base in PERSISTENT and tile == ck.TILE):
                instructions, fmas = hot_block(ptx_of(kernels[name], sigs[base]))
                assert fmas >= (ck.WORK * ck.WORK if base in PRODUCTS else 1), (name, fmas)
                ratios[f"{name} tile={tile}"] = instructions / fmas
    worst = max(ratios, key=ratios.get)
    assert ratios[worst] <= 2.0, {k: round(v, 2) for k, v in ratios.items()}


def test_the_fused_clip_feeds_the_update(sm90):
    """numba-cuda 0.30.4 miscompiled ``gi = clip(gi, bound); g[i] = gi; return gi`` under
    ``inline="always"``: the clipped value was stored but the unclipped one returned, so the
    GPU's training updates used unclipped gradients (found on an H200; the simulator, which
    runs Python, cannot see it). In the PTX of a kernel using ``scalar.gradient``, the value
    the update squares must be the clipped one written back to the gradient."""
    from numba import cuda
    from fastrnn.kernels.scalar import gradient

    def kernel(g, out, clip_first):
        gk = gradient(g, 0, clip_first, 5.0)
        out[0] = gk * gk

    ptx, _ = cuda.compile_ptx(kernel, (float64[::1], float64[::1], boolean), cc=(9, 0))
    assert clipped_store(ptx, "f64") in squares(ptx, "f64"), ptx
    # and in the optimizers' own kernel: Adagrad's m + g g squares the clipped gradient
    ptx = ptx_of(dict(cb._kernels(np.float64, ck.TILE))["optimize"],
                 signatures(float64)["optimize"])
    assert clipped_store(ptx, "f64") in squares(ptx, "f64"), ptx


def _register(real):
    """A PTX register of floats of type ``real`` ("f32" or "f64")."""
    return r"%fd\d+" if real == "f64" else r"%f\d+"


def clipped_store(ptx, real):
    """(r, r) for the register r that the first store after the clip's first comparison
    (``g > bound``) writes back to the gradient; None if the PTX has neither."""
    compared = re.search(rf"setp\.gt\.{real}\s", ptx)
    stored = compared and re.search(rf"st\.global\.{real}\s+\[%rd\d+\],\s*({_register(real)});",
                                    ptx[compared.end():])
    return stored and (stored.group(1), stored.group(1))


def squares(ptx, real):
    """The operand pairs of the PTX's products (and fused multiply-adds) of type ``real``."""
    r = _register(real)
    return re.findall(rf"(?:mul|fma\.rn)\.{real}\s+{r},\s*({r}),\s*({r})[,;]", ptx)


@pytest.mark.parametrize("f", [float32, float64], ids=str)
@pytest.mark.parametrize("name", ["clip_all", "optimize"])
def test_the_gpu_clip_keeps_a_nan(sm90, name, f):
    """A GPU's ``min`` and ``max`` of floats are ``fmin`` and ``fmax`` (``min.f32``,
    ``max.f64``...), which return the other operand for a NaN: a clip written with them turns a
    diverging run's NaN gradient into -C, where the CPU kernels and the oracle keep the NaN.
    The simulator runs Python's ``min``/``max``, which keep it: only the PTX shows it. (And the
    clip is there: clip_all compares with 5 and -5; optimize updates with what it clipped.)"""
    dtype, real = (np.float32, "f32") if f is float32 else (np.float64, "f64")
    ptx = ptx_of(dict(cb._kernels(dtype, ck.TILE))[name], signatures(f)[name])
    assert not re.search(r"\b(min|max)\.f(32|64)\s", ptx), ptx
    if name == "clip_all":
        five, minus = ("0f40A00000", "0fC0A00000") if real == "f32" else \
            ("0d4014000000000000", "0dC014000000000000")
        for compare, bound in (("gt", five), ("lt", minus)):
            assert re.search(rf"setp\.{compare}\.{real}\s+%p\d+, {_register(real)}, {bound};",
                             ptx), ptx
    else:
        assert clipped_store(ptx, real) in squares(ptx, real), ptx


def cell_signatures(f):
    """The generic path's kernels (``fastrnn.kernels.cuda_cells``) with the argument types
    ``fastrnn.backends.cuda`` launches them with: ids uint8 (training data) and int64 (the
    sampled id), hs (S, T+1, B, H) per layer and (L, S, T+1, B, H) whole."""
    a1, a2, a3, a4, a5 = f[::1], f[:, ::1], f[:, :, ::1], f[:, :, :, ::1], f[:, :, :, :, ::1]
    f64 = float64[::1]
    return dict(
        cell_forward=[(a3, a3, a1, a4, a3, int64, int64, boolean)],
        cell_backward=[(a3, a4, a3, a2, a2, a3, a3, int64, boolean)],
        gather_columns=[(uint8[::1], a2, a1, a2), (int64[::1], a2, a1, a2)],
        add_bias=[(a2, a1)],
        multiply=[(a1, a1, a1)],
        state_in=[(a4, a5)],
        state_out=[(a5, int64, a4)],
        advance=[(a5, int64)],
        pick=[(a2, a1, float64, boolean, int64, float64, f64, int64, int64[::1], int64[::1], a1,
               f64)],
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_generic_paths_kernels_compile_for_sm90(dtype, sm90):
    """The LSTM / GRU / stacked-layer kernels: the element-wise cell kernels of every cell, the
    others once (the same code for every cell), and the bias sum over the GRU's strided d hn
    columns (the one kernel of kernels/cuda.py the generic path launches on a new layout)."""
    from fastrnn.kernels import cuda_cells
    nb = {np.float32: float32, np.float64: float64}[dtype]
    sigs = cell_signatures(nb)
    every = {}
    for cell in cuda_cells.ACTS:
        kernels = cuda_cells.kernels(dtype, cell)
        assert set(kernels) == set(sigs), "a kernel without a signature here is not checked"
        for name, kernel in kernels.items():
            if name.startswith("cell_") or cell == "rnn":
                every[f"{name}/{cell}"] = (kernel, sigs[name])
    every["segment_sums/strided"] = (cb._kernels(dtype)["segment_sums"], [(nb[:, :], nb[:, ::1])])
    for name, (kernel, signatures_) in every.items():
        for signature in signatures_:
            ptx = ptx_of(kernel, signature)
            assert ".entry" in ptx, name
            assert ".local" not in ptx, f"{name} uses local memory"
