"""``backend="cuda"``: the backend interface (``base.py``) on an NVIDIA GPU (numba-cuda).

Host arrays in, host arrays out, like every backend; parameters are read by name from the
model's ``spec.Weights``, and on the device they are the same named views into one flat
device buffer. Within one call everything stays on the
device: ``train`` copies the parameters, optimizer state and hidden states over once, runs all
its chunks there (one fused clip + optimizer launch per chunk over a single flat buffer holding
all five parameters) and copies them back once. The model and the command line call ``train``
with many chunks at a time, so the copies are amortised; the drop-in ``lossFun``/``adagrad``
pay them on every call.

Two paths: the one-layer tanh cell (min-char-rnn's model) without dropout runs the planned
recurrence kernels of ``kernels/cuda.py`` ("persistent", "tiled", "step"); every other model
(the lstm and gru cells, any cell with several layers, dropout masks between layers) runs the
generic, layer-major path of ``kernels/cuda_cells.py`` (``_Generic``): per layer the input
term for the whole chunk, then per step one product and one fused element-wise cell kernel;
backward mirrors it, with the weight gradients as whole-chunk products. Both share the output
layer, softmax, gradient sums and the fused clip + optimizer update.

Runs in Numba's CUDA simulator when ``NUMBA_ENABLE_CUDASIM=1`` is set before numba is imported
(correct but very slow: for tests with tiny sizes).
"""

import functools
from typing import NamedTuple

import numpy as np
from numba import config, cuda

from .. import cells, reference
from ..cells import gru, rnn
from ..config import CLIP, EVAL_CALL_STEPS, EVAL_STEPS, FLOAT_DTYPES
from ..kernels import cuda as ck
from ..kernels import cuda_cells


def available():
    """(True, "") if a GPU (or the simulator) can run the kernels, else (False, why)."""
    try:
        if cuda.is_available():
            return True, ""
        return False, "numba-cuda found no usable NVIDIA GPU and driver"
    except Exception as e:  # a broken driver installation
        return False, f"numba-cuda cannot use the GPU ({e})"


def _kernels(dtype, tile=None):
    """The kernel family for this dtype, its products of ``tile`` x ``tile`` threads (TILE)."""
    return ck.kernels(dtype, ck.TILE if tile is None else tile, ck.WORK, ck.MAX_H)


def _grid1(n):
    return max(1, min((n + ck.BLOCK - 1) // ck.BLOCK, 4096)), ck.BLOCK


def _grid2(n0, n1):
    """A 2-D grid over (n0, n1) in blocks of BLOCK threads, whole warps along n0 (which the
    kernels index consecutively in memory)."""
    across = min(ck.WARP, ck.BLOCK)
    down = max(1, ck.BLOCK // across)
    return ((n0 + across - 1) // across, (n1 + down - 1) // down), (across, down)


def _stream_threads(H):
    """Threads of the one-block sampling kernel: a row each (whole warps), up to STREAM_BLOCK."""
    return min(ck.STREAM_BLOCK, (H + 31) // 32 * 32)


@functools.cache
def _multiprocessors():
    """The GPU's streaming multiprocessors (1 in the simulator, which has no such count)."""
    return getattr(cuda.get_current_device(), "MULTIPROCESSOR_COUNT", 1)


# ---------------------------------------------------------------- the recurrence's plan


class Hardware(NamedTuple):
    """What the plan's cost model needs to know of a GPU (per multiprocessor where it says)."""
    multiprocessors: int
    clock_hz: float
    fma_per_clock: dict        # {itemsize: FMA lanes per clock per multiprocessor}
    l2_bytes_per_s: float      # L2 -> multiprocessors, all together
    barrier_s: float           # one grid-wide barrier of a cooperative kernel
    launch_s: float            # host time of one numba-cuda launch with ~5 array arguments


# An NVIDIA H200 (H100 SXM's SMs and clock). Measured on one (benchmarks/cuda_microbench.py,
# RESULTS.md): 132 multiprocessors, 1.98 GHz, a launch 23 us + ~3 us per array argument.
# Datasheet leads: 128 float32 / 64 float64 FMA lanes per clock per multiprocessor; L2 about
# 5.5 TB/s. The barrier's cost is a lead too (a few microseconds), to be measured.
H200 = Hardware(132, 1.98e9, {4: 128, 8: 64}, 5.5e12, 3e-6, 38e-6)

INSTRUCTIONS_PER_FMA = 2.0  # the inner loops' bound (tests/test_cuda_compile.py)


class Plan(NamedTuple):
    """How one chunk's recurrence runs: ``form``; "persistent": ``rows`` rows per block,
    ``group`` threads a row, ``lanes`` weights per thread; "tiled"/"step": product blocks of
    ``tile`` x ``tile`` threads; ``blocks`` launched."""
    form: str
    blocks: int
    rows: int = 0
    group: int = 0
    lanes: int = 0
    tile: int = 0


def persistent_shape(B, H, multiprocessors, coresident):
    """(group, rows, blocks) of the "persistent" form: ``group`` threads per row (a warp, or
    16 or 8 threads where a warp a row needs more threads than the device holds), ``rows``
    rows per block, B * ceil(H / rows) blocks, all resident at once. For each group size in
    turn: the fewest rows whose blocks fit one per multiprocessor, else the most rows (fewest
    blocks) that are all co-resident (``coresident(threads, group)``: how many blocks of that
    many threads the device holds at once). None where nothing fits, or where H needs more
    than MAX_PER_LANE weights per thread."""
    def resident(blocks, threads, group):  # a multiprocessor holds at most 32 blocks and
        return (blocks <= multiprocessors * min(32, 2048 // threads)  # 2048 threads; checked
                and blocks <= coresident(threads, group))  # first: hopeless sizes compile nothing
    for group in (ck.WARP, ck.WARP // 2, ck.WARP // 4):
        if group < 1 or ck.per_lane(H, group) is None:
            continue
        # whole warps a block: a group's shuffles name all the lanes of its warp
        sizes = [rows for rows in (1, 2, 4, 8, 16, 32, 64, 128)
                 if ck.LANES <= rows * group <= 1024]
        for rows in sizes:
            blocks = B * -(-H // rows)
            if blocks <= multiprocessors and resident(blocks, group * rows, group):
                return group, rows, blocks
        for rows in reversed(sizes):
            blocks = B * -(-H // rows)
            if resident(blocks, group * rows, group):
                return group, rows, blocks
    return None


def product_tile(M, N, multiprocessors):
    """Threads a side of a product block with an (M, N) result: TILE (16: 64 x 64 outputs a
    block), or half that where TILE would leave more than half the multiprocessors idle. Each
    thread keeps WORK x WORK = 16 outputs either way: the fewest instructions per FMA (the old
    fallback to fewer outputs a thread cost 9 and 21 instructions per FMA; measured on an
    H200 at the 128 x 1024 step product, even 4 outputs a thread beat 16 when 16 left
    multiprocessors idle: 185 against 307 us)."""
    if ck.TILE > 1 and _tiles(M, N, ck.TILE * ck.WORK) * 2 < multiprocessors:
        return ck.TILE // 2
    return ck.TILE


def _tiles(M, N, side):
    return ((M + side - 1) // side) * ((N + side - 1) // side)


def step_seconds(plan, B, H, itemsize, hw):
    """The cost model: seconds per recurrence step (forward; the backward step is the same
    work) of ``plan`` on ``hw``, the largest of (a) the busiest multiprocessor's arithmetic,
    B*H^2 FMAs shared over the blocks in use at INSTRUCTIONS_PER_FMA instructions each,
    (b) the step's L2 traffic ("persistent": each block reads h; "tiled"/"step": each row of
    tiles reads Whh and each column of tiles reads h) and (c) the host's launch ("step"),
    plus a grid-wide barrier for the cooperative forms."""
    busy = min(plan.blocks, hw.multiprocessors)
    lanes = hw.fma_per_clock[itemsize] / INSTRUCTIONS_PER_FMA
    arithmetic = B * H * H / busy / lanes / hw.clock_hz
    if plan.form == "persistent":
        traffic = plan.blocks * H * itemsize
    else:
        side = plan.tile * ck.WORK
        traffic = (-(-B // side) * H * H + -(-H // side) * B * H) * itemsize
    gpu = max(arithmetic, traffic / hw.l2_bytes_per_s)
    if plan.form == "step":
        return max(gpu, hw.launch_s)
    return gpu + hw.barrier_s


def plan(B, H, itemsize, asked, multiprocessors, coresident, cooperative=True, hw=H200):
    """The recurrence's Plan for B streams of H units: the form ``asked`` for ("persistent",
    "tiled", "step"), or for "auto" the one with the least modelled time per step
    (``step_seconds`` on ``hw``) among those that fit. ``coresident(form, threads, variant)``
    (variant: (lanes, group) for "persistent", the tile for "tiled") gives how many blocks of a cooperative kernel can be resident at once; ``cooperative``:
    whether the device can launch cooperative kernels at all. A clear error where the form
    asked for cannot run."""
    options = {}
    shape = persistent_shape(B, H, multiprocessors, lambda threads, group: coresident(
        "persistent", threads, (ck.per_lane(H, group), group)))
    if shape is not None and cooperative:
        group, rows, blocks = shape
        options["persistent"] = Plan("persistent", blocks, rows=rows, group=group,
                                     lanes=ck.per_lane(H, group))
    tile = product_tile(B, H, multiprocessors)
    count = _tiles(B, H, tile * ck.WORK)
    if cooperative:
        blocks = min(count, coresident("tiled", tile * tile, tile))
        if blocks >= 1:
            options["tiled"] = Plan("tiled", blocks, tile=tile)
    options["step"] = Plan("step", count, tile=tile)
    if asked != "auto":
        if asked not in options:
            raise ValueError(
                f"the {asked!r} CUDA recurrence cannot run {B} stream(s) of {H} hidden units "
                f"here ({multiprocessors} multiprocessors; " +
                ("no cooperative launch on this device" if not cooperative else
                 "its blocks cannot all be resident at once" if asked == "persistent" else
                 "unknown form") + "); use 'auto'")
        return options[asked]
    return min(options.values(), key=lambda p: step_seconds(p, B, H, itemsize, hw))


def _recurrence_plan(direction, B, H, dtype, args):
    """The Plan this device runs for one direction ("forward" or "back") of B streams of H
    units (``RECURRENCE``: the form asked for); ``args(form)``: the arguments that direction's
    kernel of that form is launched with, for the co-residency query (the driver counts the
    registers and shared memory of the kernel actually compiled for them)."""
    typed = {}  # the arguments' types, once a form

    def coresident(form, threads, n):
        if config.ENABLE_CUDASIM:
            return 1  # the simulator runs a cooperative grid of one block
        K = ck.persistent_kernels(dtype, *n) if form == "persistent" else _kernels(dtype, n)
        kernel = K["recurrence_back_" + form if direction == "back" else "recurrence_" + form]
        if form not in typed:
            typed[form] = tuple(kernel.typeof_pyval(a) for a in args(form))
        return _max_blocks(kernel, typed[form], threads)
    return plan(B, H, np.dtype(dtype).itemsize, ck.RECURRENCE, _multiprocessors(), coresident,
                _cooperative())


@functools.cache
def _max_blocks(kernel, types, threads):
    """Blocks of ``threads`` threads of ``kernel`` (compiled for ``types``) that the device
    can hold at once: the bound on a cooperative grid."""
    return kernel.compile(types).max_cooperative_grid_blocks(threads)


@functools.cache
def _cooperative():
    """Whether this device launches cooperative kernels (the simulator: yes, one block)."""
    return bool(getattr(cuda.get_current_device(), "COOPERATIVE_LAUNCH", 1))


def _product(name, dtype, M, N):
    """Product kernel ``name`` with an (M, N) result, configured for launch: one block per
    (tile*WORK)^2 outputs (``product_tile``)."""
    tile = product_tile(M, N, _multiprocessors())
    side = tile * ck.WORK
    grid = ((N + side - 1) // side, (M + side - 1) // side)
    return _kernels(dtype, tile)[name][grid, (tile, tile)]


def _matmul(A, ta, B, tb, C):
    """C = (A.T if ta else A) @ (B.T if tb else B) on the device."""
    _product("matmul", C.dtype, *C.shape)(A, ta, B, tb, C)


def _to_device(w):
    """Weights on the device: (flat device buffer, device Weights of named views into it)."""
    spec = reference.spec_of(w)
    flat = cuda.to_device(np.concatenate([a.reshape(-1) for a in spec.arrays(w)]))
    return flat, spec.view(flat)


def _to_host(flat, w):
    """Copy a flat device buffer back into the host Weights ``w``, tensor by tensor."""
    spec = reference.spec_of(w)
    for dst, src in zip(spec.arrays(w), spec.arrays(spec.view(flat.copy_to_host()))):
        dst[...] = src


def _by_character(inputs, V):
    """For chunks of inputs (n, rows), each row r = t*B + b: (order, offsets), int32, such that
    order[k, offsets[k, c]:offsets[k, c+1]] lists chunk k's rows whose input is c, ascending:
    what ``grad_xh`` sums over (a scatter-add by character without atomics)."""
    n = inputs.shape[0]
    order = np.argsort(inputs, axis=1, kind="stable").astype(np.int32)
    counts = np.bincount((np.arange(n)[:, None] * V + inputs).ravel(), minlength=n * V)
    offsets = np.zeros((n, V + 1), np.int32)
    np.cumsum(counts.reshape(n, V), axis=1, out=offsets[:, 1:])
    return order, offsets


class _Chunk:
    """Device buffers for chunks of up to T steps of B streams."""

    def __init__(self, T, B, H, V, dtype):
        self.hs = cuda.device_array((T + 1, B, H), dtype)
        self.ps = cuda.device_array((T, B, V), dtype)
        self.dys = cuda.device_array((T, B, V), dtype)
        self.dhout = cuda.device_array((T, B, H), dtype)
        self.draws = cuda.device_array((T, B, H), dtype)
        self.step_losses = cuda.device_array(T * B, np.float64)
        self.step_sums = cuda.device_array(T, np.float64)
        self.segments = cuda.device_array(ck.SEGMENTS * max(H, V), dtype)


def _forward(K, x, y, h, P, c, losses, n):
    """Forward over one chunk (x, y: (T, B) on the device, h: (B, H)); ``c.hs`` and ``c.ps``
    hold its activations and probabilities, losses[n] its summed loss."""
    (T, B), H, V = x.shape, P.layers[0].Whh.shape[0], P.Why.shape[0]
    rows = T * B
    hs = c.hs[:T + 1]
    K["copy_state"][_grid1(B * H)](h, hs)
    layer = P.layers[0]
    _recurrence("forward", hs.dtype, B, H, T,
                lambda form, p, t0, t1: (x, layer.Wxh, layer.Whh, layer.bh, hs)
                + ((p.rows,) if form == "persistent" else ()) + (t0, t1))
    z = c.ps[:T].reshape(rows, V)
    _matmul(hs[1:].reshape(rows, H), False, P.Why, True, z)
    K["softmax_rows"][rows, ck.BLOCK](z, P.by, y.reshape(rows), z, c.step_losses[:rows])
    K["add_losses"][1, ck.BLOCK](c.step_losses[:rows], B, c.step_sums, losses, n)


def _gradients(K, x, y, order, offsets, P, G, c):
    """Unclipped gradients of the chunk whose forward pass is in ``c``; (order, offsets): the
    chunk's inputs sorted by character (``_by_character``)."""
    (T, B), H, V = x.shape, P.layers[0].Whh.shape[0], P.Why.shape[0]
    rows = T * B
    dys = c.dys[:T].reshape(rows, V)
    K["output_delta"][_grid1(rows * V)](c.ps[:T].reshape(rows, V), y.reshape(rows), dys)
    dhout, draws = c.dhout[:T], c.draws[:T]
    _matmul(dys, False, P.Why, False, dhout.reshape(rows, H))
    Whh = P.layers[0].Whh
    _recurrence("back", dhout.dtype, B, H, T,
                lambda form, p, t_hi, t_lo: (c.hs, dhout, Whh, draws)
                + ((p.rows,) if form == "persistent" else ()) + (t_hi, t_lo))
    draws = draws.reshape(rows, H)
    _matmul(draws, True, c.hs[:T].reshape(rows, H), False, G.layers[0].Whh)
    _column_sums(K, draws, c.segments, G.layers[0].bh)
    _matmul(dys, True, c.hs[1:T + 1].reshape(rows, H), False, G.Why)
    _column_sums(K, dys, c.segments, G.by)
    K["grad_xh"][_grid2(H, V)](order, offsets, draws, G.layers[0].Wxh)


def _recurrence(direction, dtype, B, H, T, arguments):
    """Run one chunk's recurrence ("forward": steps 0..T-1; "back": T-1 down to 0) in the
    form the plan picks; ``arguments(form, plan, a, b)``: the kernel's arguments for steps
    [a, b) forward or b <= t < a backward."""
    probe = Plan("persistent", 1, rows=1)
    p = _recurrence_plan(direction, B, H, dtype,
                         lambda form: arguments(form, probe, *_ends(direction, T)))
    name = "recurrence_back_" if direction == "back" else "recurrence_"
    if p.form == "step":
        kernel = _kernels(dtype, p.tile)[name + "step"][p.blocks, (p.tile, p.tile)]
        for t in (range(T - 1, -1, -1) if direction == "back" else range(T)):
            kernel(t, *arguments("step", p, 0, 0)[:-2])
        return
    if p.form == "persistent":
        kernel = ck.persistent_kernels(dtype, p.lanes, p.group)[name + "persistent"]
        kernel = kernel[p.blocks, p.group * p.rows]
    else:
        kernel = _kernels(dtype, p.tile)[name + "tiled"][p.blocks, (p.tile, p.tile)]
    for a, b in _step_ranges(direction, T):
        kernel(*arguments(p.form, p, a, b))


def _ends(direction, T):
    return (T, 0) if direction == "back" else (0, T)


def _step_ranges(direction, T):
    """The step ranges of the cooperative launches: all T steps in one (the grid-wide barrier
    separates them), or one launch per step where STEPWISE asks for it. Forward ranges are
    (t0, t1) upwards, backward ones (t_hi, t_lo) downwards."""
    if not ck.STEPWISE:
        return [_ends(direction, T)]
    if direction == "back":
        return [(t + 1, t) for t in range(T - 1, -1, -1)]
    return [(t, t + 1) for t in range(T)]


def _column_sums(K, A, segments, out):
    """out = A summed over its rows: row segments in parallel, then the segments (both in
    order, so the result does not depend on the launch)."""
    N, S = A.shape[1], ck.SEGMENTS
    part = segments[:S * N].reshape(S, N)
    K["segment_sums"][_grid2(N, part.shape[0])](A, part)
    K["column_sums"][_grid1(N)](part, out)


def _two_states(states):
    """The ``optimize`` kernel's two state buffers: an optimizer with one state (all but Adam)
    passes it twice (the second is then unused)."""
    return states[0], states[-1]


# ---------------------------------------------------------------- the generic path
# Every model but the one-layer tanh cell without dropout: any cell, any number of layers,
# dropout masks between layers (kernels/cuda_cells.py describes the layer-major design).


def _one_layer_rnn(w, masks):
    """Whether the planned one-layer tanh-cell kernels above run this model (no masks given);
    every other model runs the generic path."""
    return masks is None and len(w.layers) == 1 and isinstance(w.layers[0], rnn.Layer)


class _Model(NamedTuple):
    """What the generic path needs to know of a model."""
    cell: object        # the cell module
    L: int              # layers
    S: int              # state vectors a layer carries (cell.STATES)
    G: int              # gates: rows of Wxh and Whh per unit
    A: int              # values saved per unit and step for backward (cuda_cells.ACTS)
    H: int
    V: int
    dtype: np.dtype
    K: dict             # kernels.cuda's kernels (products, softmax, sums, optimizer)
    C: dict             # cuda_cells' kernels for this cell


def _model(w):
    """The generic path's _Model of weights ``w``; ValueError for what it cannot run."""
    cell = cells.get_by_layer(w.layers[0])
    dtype = np.dtype(w.Why.dtype)
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"the cuda backend runs float32 or float64 weights, not {dtype}")
    V, H = w.Why.shape
    return _Model(cell, len(w.layers), len(cell.STATES), cell.GATES, cuda_cells.ACTS[cell.NAME],
                  H, V, dtype, _kernels(dtype), cuda_cells.kernels(dtype, cell.NAME))


def _check_state(m, state, B):
    """ValueError unless state is (L, S, B, H) for model m."""
    expected = (m.L, m.S, B, m.H)
    if tuple(state.shape) != expected:
        raise ValueError(f"state has shape {tuple(state.shape)}, expected {expected} (layers, "
                         f"the {m.cell.NAME} cell's {m.S} state vector(s), streams, hidden size)")


def _device_masks(m, masks, shape):
    """Dropout masks on the device in the model's dtype (None for none, or for one layer,
    which has nothing to drop between); ValueError unless they are ``shape``."""
    if masks is None:
        return None
    masks = np.asarray(masks)
    if tuple(masks.shape) != tuple(shape):
        raise ValueError(f"dropout masks have shape {tuple(masks.shape)}, expected "
                         f"{tuple(shape)} ([chunks,] layers - 1, steps, streams, hidden size)")
    if m.L == 1:
        return None
    return cuda.to_device(np.ascontiguousarray(masks, dtype=m.dtype))


def _view(a, *shape):
    """The C-contiguous device array ``a`` viewed as ``shape``, never copied (the simulator
    would copy a non-contiguous array silently where a GPU refuses)."""
    if not a.is_c_contiguous():
        raise AssertionError(f"a non-contiguous {a.shape} device array viewed as {shape}")
    return a.reshape(*shape)


class _Cells:
    """The generic path's device buffers for chunks of up to T steps of B streams; ``training``
    adds backward's."""

    def __init__(self, m, T, B, training=True):
        GH, dtype = m.G * m.H, m.dtype
        self.hs = cuda.device_array((m.L, m.S, T + 1, B, m.H), dtype)
        self.acts = cuda.device_array((m.L, T, B, m.A * m.H) if m.A else (m.L, 1, 1, 1), dtype)
        self.ax = cuda.device_array((T, B, GH), dtype)   # input terms; backward: d ax
        self.ah = cuda.device_array((T, B, GH), dtype)   # Whh h; backward: the gru's d ah
        self.xin = cuda.device_array((T, B, m.H), dtype)  # a layer's input, through dropout
        self.ps = cuda.device_array((T, B, m.V), dtype)
        self.step_losses = cuda.device_array(T * B, np.float64)
        self.step_sums = cuda.device_array(T, np.float64)
        if training:
            self.dys = cuda.device_array((T, B, m.V), dtype)
            self.dhout = cuda.device_array((T, B, m.H), dtype)  # d h from above, per layer
            self.drec = cuda.device_array((B, m.H), dtype)      # d h from the next step's product
            self.dcarry = cuda.device_array((B, m.H), dtype)    # lstm's dc, gru's direct dh z
            self.segments = cuda.device_array(ck.SEGMENTS * max(GH, m.V), dtype)


def _bhn(m, layer):
    """The gru's bhn for its kernels (others take the bias in its place and do not read it)."""
    return layer.bhn if m.cell is gru else layer.bh


def _layer_input(m, c, masks, l, T, B):
    """Layer l's (l >= 1) input over the chunk, (T*B, H): layer l-1's output h, times its
    dropout mask if any (then in c.xin)."""
    below = _view(c.hs[l - 1, 0, 1:T + 1], T * B, m.H)
    if masks is None:
        return below
    n = T * B * m.H
    m.C["multiply"][_grid1(n)](_view(below, n), _view(masks[l - 1, :T], n),
                               _view(c.xin[:T], n))
    return _view(c.xin[:T], T * B, m.H)


def _input_term(m, x, P, c, masks, l):
    """c.ax = Wxh x + bh over the chunk for layer l: a column gather for layer 0 (x: (T, B)
    ids), one product of the layer below's (masked) output above."""
    (T, B), GH = x.shape, m.G * m.H
    rows, layer = T * B, P.layers[l]
    ax = _view(c.ax[:T], rows, GH)
    if l == 0:
        m.C["gather_columns"][_grid1(rows * GH)](_view(x, rows), layer.Wxh, layer.bh, ax)
        return
    _matmul(_layer_input(m, c, masks, l, T, B), False, layer.Wxh, True, ax)
    m.C["add_bias"][_grid1(rows * GH)](ax, layer.bh)


def _layers_forward(m, x, P, c, masks):
    """The layer stack over one chunk (x: (T, B) ids on the device) from the state in
    c.hs[:, :, 0]: c.hs and c.acts filled, layer by layer; per step one product and one
    element-wise launch."""
    T, B = x.shape
    step_product = _product("matmul", m.dtype, B, m.G * m.H)  # configured once, not per step
    step_cell = m.C["cell_forward"][_grid1(B * m.H)]
    for l, layer in enumerate(P.layers):
        _input_term(m, x, P, c, masks, l)
        hs, acts, bhn = c.hs[l], c.acts[l], _bhn(m, layer)
        for t in range(T):
            step_product(hs[0, t], False, layer.Whh, True, c.ah[t])
            step_cell(c.ax, c.ah, bhn, hs, acts, t, 1, True)


def _cell_forward(m, x, y, P, c, losses, n, masks):
    """Forward over one chunk (x, y: (T, B) on the device; the state in c.hs[:, :, 0]):
    c.hs, c.acts, c.ps; losses[n] the chunk's summed loss."""
    T, B = x.shape
    rows = T * B
    _layers_forward(m, x, P, c, masks)
    z = _view(c.ps[:T], rows, m.V)
    _matmul(_view(c.hs[m.L - 1, 0, 1:T + 1], rows, m.H), False, P.Why, True, z)
    m.K["softmax_rows"][rows, ck.BLOCK](z, P.by, _view(y, rows), z, c.step_losses[:rows])
    m.K["add_losses"][1, ck.BLOCK](c.step_losses[:rows], B, c.step_sums, losses, n)


def _recompute(m, x, P, c, masks, l):
    """Layer l's saved gates (c.acts[l]) from the states in c.hs (``backward`` is given hs,
    not the gates): the input term, one product Whh h for all T steps, and the element-wise
    kernel over all steps at once, states left as they are."""
    if not m.A:
        return
    T, B = x.shape
    rows, GH, layer = T * B, m.G * m.H, P.layers[l]
    _input_term(m, x, P, c, masks, l)
    _matmul(_view(c.hs[l, 0, :T], rows, m.H), False, layer.Whh, True, _view(c.ah[:T], rows, GH))
    m.C["cell_forward"][_grid1(rows * m.H)](c.ax, c.ah, _bhn(m, layer), c.hs[l], c.acts[l], 0,
                                             T, False)


def _cell_gradients(m, x, y, order, offsets, P, G, c, masks, recompute):
    """Unclipped gradients into G of the chunk whose forward pass is in c ((order, offsets):
    the chunk's inputs by character, ``_by_character``); ``recompute``: c.acts must first be
    recomputed from c.hs. Top layer first; per layer the steps backwards (one element-wise
    launch and one product each), then its weight gradients and the gradient into the layer
    below as whole-chunk products."""
    T, B = x.shape
    rows, H, V, GH = T * B, m.H, m.V, m.G * m.H
    K, C = m.K, m.C
    dys = _view(c.dys[:T], rows, V)
    K["output_delta"][_grid1(rows * V)](_view(c.ps[:T], rows, V), _view(y, rows), dys)
    dhout = _view(c.dhout[:T], rows, H)
    top = _view(c.hs[m.L - 1, 0, 1:T + 1], rows, H)
    _matmul(dys, False, P.Why, False, dhout)
    _matmul(dys, True, top, False, G.Why)
    _column_sums(K, dys, c.segments, G.by)
    step_product = _product("matmul", m.dtype, B, H)
    step_cell = C["cell_backward"][_grid1(B * H)]
    dah = c.ah if m.cell is gru else c.ax  # the gru's Whh sees d ah, the others d a
    for l in reversed(range(m.L)):
        layer, grads, hs = P.layers[l], G.layers[l], c.hs[l]
        if recompute:
            _recompute(m, x, P, c, masks, l)
        for t in range(T - 1, -1, -1):
            step_cell(c.acts[l], hs, c.dhout, c.drec, c.dcarry, c.ax, dah, t, t == T - 1)
            if t > 0:  # nothing flows back out of the chunk
                step_product(dah[t], False, layer.Whh, False, c.drec)
        dax, dah2 = _view(c.ax[:T], rows, GH), _view(dah[:T], rows, GH)
        _matmul(dah2, True, _view(hs[0, :T], rows, H), False, grads.Whh)
        _column_sums(K, dax, c.segments, grads.bh)
        if m.cell is gru:
            _column_sums(K, dah2[:, 2 * H:], c.segments, grads.bhn)
        if l == 0:
            K["grad_xh"][_grid2(GH, V)](order, offsets, dax, grads.Wxh)
            continue
        _matmul(dax, True, _layer_input(m, c, masks, l, T, B), False, grads.Wxh)
        _matmul(dax, False, layer.Wxh, False, dhout)  # into the layer below's output...
        if masks is not None:                          # ...through its dropout mask
            n = rows * H
            C["multiply"][_grid1(n)](_view(dhout, n), _view(masks[l - 1, :T], n),
                                     _view(dhout, n))


def _walk(data, position, T, B, n):
    """The walk through the data for n chunks, decided on the host (``reference.train``):
    (position after, resets, every chunk's window of every stream step-major (n, T+1, B))."""
    piece = data.shape[0] // B
    starts, resets = [], []
    for _ in range(n):
        reset = reference.wraps(position, T, piece)
        if reset:
            position = 0
        starts.append(position)
        resets.append(reset)
        position += T
    index = (np.asarray(starts)[:, None, None] + np.arange(T + 1)[None, :, None]
             + (np.arange(B) * piece)[None, None, :])
    return position, resets, np.ascontiguousarray(data[index])


class _Reports:
    """``evaluate``'s calls of ``progress`` for a loop over chunks launched on the device:
    after the chunks of every EVAL_CALL_STEPS steps and after the last, each once the device
    has done them (a launch returns before its kernel has run)."""

    EVERY = max(1, EVAL_CALL_STEPS // EVAL_STEPS)

    def __init__(self, progress, chunks):
        self.progress, self.chunks, self.said = progress, chunks, 0

    def after(self, k, predicted):
        """Chunk k is launched; ``predicted``: characters predicted up to its end."""
        if self.progress is not None and ((k + 1) % self.EVERY == 0 or k + 1 == self.chunks):
            cuda.synchronize()
            self.progress(predicted - self.said)
            self.said = predicted


class _Generic:
    """The backend interface's methods for the generic path (CudaBackend dispatches here)."""

    @staticmethod
    def forward(w, x, y, state, masks):
        m = _model(w)
        B, T = x.shape
        _check_state(m, state, B)
        d_masks = _device_masks(m, masks, (m.L - 1, T, B, m.H))
        _, P = _to_device(w)
        c = _Cells(m, T, B, training=False)
        losses = cuda.device_array(1, np.float64)
        m.C["state_in"][_grid1(state.size)](
            cuda.to_device(np.ascontiguousarray(state, m.dtype)), c.hs)
        _cell_forward(m, cuda.to_device(np.ascontiguousarray(x.T)),
                      cuda.to_device(np.ascontiguousarray(y.T)), P, c, losses, 0, d_masks)
        hs = np.ascontiguousarray(c.hs.copy_to_host().transpose(0, 2, 1, 3, 4))
        return float(losses.copy_to_host()[0]), hs, c.ps.copy_to_host()

    @staticmethod
    def backward(w, x, y, hs, ps, g, masks):
        m = _model(w)
        B, T = x.shape
        shapes = {"hs": (hs.shape, (m.L, T + 1, m.S, B, m.H)), "ps": (ps.shape, (T, B, m.V))}
        for name, (got, expected) in shapes.items():
            if tuple(got) != expected:
                raise ValueError(f"{name} has shape {tuple(got)}, expected {expected} for this "
                                 f"chunk (forward's)")
        d_masks = _device_masks(m, masks, (m.L - 1, T, B, m.H))
        _, P = _to_device(w)
        flat, G = _to_device(g)
        c = _Cells(m, T, B)
        c.hs.copy_to_device(np.ascontiguousarray(np.asarray(hs).transpose(0, 2, 1, 3, 4),
                                                  m.dtype))
        c.ps.copy_to_device(np.ascontiguousarray(ps, m.dtype))
        xt = np.ascontiguousarray(x.T)
        order, offsets = _by_character(xt.reshape(1, -1), m.V)
        _cell_gradients(m, cuda.to_device(xt), cuda.to_device(np.ascontiguousarray(y.T)),
                        cuda.to_device(order[0]), cuda.to_device(offsets[0]), P, G, c, d_masks,
                        recompute=True)
        m.K["clip_all"][_grid1(flat.shape[0])](flat)
        _to_host(flat, g)

    @staticmethod
    def train(w, g, optimizer, states, data, position, state, learning_rate, T, step, losses,
              masks, clip):
        m = _model(w)
        B, n = state.shape[2], len(losses)
        _check_state(m, state, B)
        d_masks = _device_masks(m, masks, (n, m.L - 1, T, B, m.H))
        position, resets, host_windows = _walk(data, position, T, B, n)
        windows = cuda.to_device(host_windows)
        order, offsets = (cuda.to_device(a) for a in
                          _by_character(host_windows[:, :T].reshape(n, T * B), m.V))
        p_flat, P = _to_device(w)
        g_flat, G = _to_device(g)
        s_flats = [_to_device(s)[0] for s in states]
        d_state = cuda.to_device(np.ascontiguousarray(state))
        size = d_state.size
        d_losses = cuda.device_array(n, np.float64)
        c = _Cells(m, T, B)
        for k in range(n):
            if resets[k]:
                m.K["zero"][_grid1(size)](_view(d_state, size))
            m.C["state_in"][_grid1(size)](d_state, c.hs)
            x, y = windows[k, :T], windows[k, 1:]
            chunk_masks = None if d_masks is None else d_masks[k]
            _cell_forward(m, x, y, P, c, d_losses, k, chunk_masks)
            _cell_gradients(m, x, y, order[k], offsets[k], P, G, c, chunk_masks,
                            recompute=False)
            m.K["optimize"][_grid1(p_flat.shape[0])](p_flat, g_flat, *_two_states(s_flats),
                                                     optimizer.id, learning_rate, step + k + 1,
                                                     float(clip))
            m.C["state_out"][_grid1(size)](c.hs, T, d_state)
        _to_host(p_flat, w)
        _to_host(g_flat, g)
        for flat, s in zip(s_flats, states):
            _to_host(flat, s)
        state[...] = d_state.copy_to_host()
        losses[:] = d_losses.copy_to_host()
        return position

    @staticmethod
    def evaluate(w, data, state, progress=None):
        m = _model(w)
        _check_state(m, state, 1)
        n_pred = data.shape[0] - 1
        if n_pred <= 0:
            return 0.0
        T = min(EVAL_STEPS, n_pred)
        _, P = _to_device(w)
        d_data = cuda.to_device(np.ascontiguousarray(data).reshape(-1, 1))
        d_state = cuda.to_device(np.ascontiguousarray(state))
        size = d_state.size
        starts = list(range(0, n_pred, T))
        d_losses = cuda.device_array(len(starts), np.float64)
        c = _Cells(m, T, 1, training=False)
        m.C["state_in"][_grid1(size)](d_state, c.hs)
        reports = _Reports(progress, len(starts))
        for k, s in enumerate(starts):
            steps = min(T, n_pred - s)
            _cell_forward(m, d_data[s:s + steps], d_data[s + 1:s + steps + 1], P, c, d_losses,
                          k, None)
            m.C["advance"][_grid1(size)](c.hs, steps)
            reports.after(k, s + steps)
        m.C["state_out"][_grid1(size)](c.hs, 0, d_state)
        state[...] = d_state.copy_to_host()
        loss = 0.0
        for chunk_loss in d_losses.copy_to_host():  # summed in order, as the CPU kernel does
            loss += chunk_loss
        return loss

    @staticmethod
    def sample(w, state, seed_ix, uniforms, temperature, greedy, ixes, top_k, top_p):
        """One character at a time, all on the device: the layer stack over one step of one
        stream, the logits, then ``pick`` (one block) writes the id the next step reads."""
        m = _model(w)
        _check_state(m, state, 1)
        count = len(uniforms)
        if count == 0:
            return
        _, P = _to_device(w)
        c = _Cells(m, 1, 1, training=False)
        d_state = cuda.to_device(np.ascontiguousarray(state))
        size = d_state.size
        cur = cuda.to_device(np.array([seed_ix], np.int64))
        x = _view(cur, 1, 1)  # the input of the next step, written by pick
        d_uniforms = cuda.to_device(np.asarray(uniforms, np.float64))
        d_ixes = cuda.device_array(count, np.int64)
        p, cdf = cuda.device_array(m.V, m.dtype), cuda.device_array(m.V, np.float64)
        z = _view(c.ps[0], 1, m.V)
        pick = m.C["pick"][1, ck.BLOCK]
        advance = m.C["advance"][_grid1(size)]
        m.C["state_in"][_grid1(size)](d_state, c.hs)
        for n in range(count):
            _layers_forward(m, x, P, c, None)
            _matmul(c.hs[m.L - 1, 0, 1], False, P.Why, True, z)
            pick(z, P.by, temperature, greedy, int(top_k), float(top_p), d_uniforms, n, cur,
                 d_ixes, p, cdf)
            advance(c.hs, 1)
        m.C["state_out"][_grid1(size)](c.hs, 0, d_state)
        ixes[:count] = d_ixes.copy_to_host()
        state[...] = d_state.copy_to_host()


class CudaBackend:
    name = "cuda"
    call_chars = None  # each call copies the weights and optimizer state to the GPU and back

    def forward(self, w, x, y, state, masks=None):
        if not _one_layer_rnn(w, masks):
            return _Generic.forward(w, x, y, state, masks)
        (B, T), (V, H) = x.shape, w.Why.shape
        dtype = w.Why.dtype
        K = _kernels(dtype)
        _, P = _to_device(w)
        c = _Chunk(T, B, H, V, dtype)
        losses = cuda.device_array(1, np.float64)
        _forward(K, cuda.to_device(np.ascontiguousarray(x.T)),
                 cuda.to_device(np.ascontiguousarray(y.T)),
                 cuda.to_device(np.ascontiguousarray(state[0, 0])), P, c, losses, 0)
        hs = c.hs.copy_to_host()[None, :, None]  # (L, T+1, S, B, H): one layer, one vector
        return float(losses.copy_to_host()[0]), hs, c.ps.copy_to_host()

    def backward(self, w, x, y, hs, ps, g, masks=None):
        if not _one_layer_rnn(w, masks):
            return _Generic.backward(w, x, y, hs, ps, g, masks)
        (B, T), (V, H) = x.shape, w.Why.shape
        dtype = w.Why.dtype
        K = _kernels(dtype)
        _, P = _to_device(w)
        flat, G = _to_device(g)
        c = _Chunk(T, B, H, V, dtype)
        c.hs.copy_to_device(np.ascontiguousarray(hs[0, :, 0]))
        c.ps.copy_to_device(np.ascontiguousarray(ps))
        xt = np.ascontiguousarray(x.T)
        order, offsets = _by_character(xt.reshape(1, -1), V)
        _gradients(K, cuda.to_device(xt), cuda.to_device(np.ascontiguousarray(y.T)),
                   cuda.to_device(order[0]), cuda.to_device(offsets[0]), P, G, c)
        K["clip_all"][_grid1(flat.shape[0])](flat)
        _to_host(flat, g)

    @staticmethod
    def values_fit(flats, squares):  # (host arrays: NumPy's passes)
        return reference.values_fit(flats, squares)

    def update(self, optimizer, w, g, states, learning_rate, step, clip):
        K = _kernels(w.dtype)
        dw, dg = cuda.to_device(w), cuda.to_device(g)
        ds = [cuda.to_device(s) for s in states]
        K["optimize"][_grid1(w.shape[0])](dw, dg, *_two_states(ds), optimizer.id, learning_rate,
                                          step, float(clip))
        dw.copy_to_host(w)
        if clip:
            dg.copy_to_host(g)
        for host, dev in zip(states, ds):
            dev.copy_to_host(host)

    def sample(self, w, state, seed_ix, uniforms, temperature, greedy, ixes, top_k=0, top_p=1.0):
        if not _one_layer_rnn(w, None):
            return _Generic.sample(w, state, seed_ix, uniforms, temperature, greedy, ixes, top_k,
                                   top_p)
        V, H = w.Why.shape
        h = state[0, 0, 0]
        if H > ck.MAX_H:  # the one-block sampling kernel keeps h in shared memory
            from . import get_backend
            return get_backend("numba").sample(w, state, seed_ix, uniforms, temperature, greedy,
                                               ixes, top_k, top_p)
        K = _kernels(h.dtype)
        layer = w.layers[0]
        weights = [cuda.to_device(np.ascontiguousarray(a))
                   for a in (layer.Wxh, layer.Whh.T, w.Why.T, layer.bh, w.by)]
        d_h = cuda.to_device(h)
        d_uniforms = cuda.to_device(np.asarray(uniforms, np.float64))
        d_ixes = cuda.device_array(len(uniforms), np.int64)
        K["sample"][1, _stream_threads(H)](d_h, seed_ix, d_uniforms, *weights, temperature,
                                            greedy, int(top_k), float(top_p), d_ixes,
                                            cuda.device_array(V, h.dtype),
                                            cuda.device_array(V, np.float64))
        ixes[:len(uniforms)] = d_ixes.copy_to_host()
        d_h.copy_to_host(h)

    def train(self, w, g, optimizer, states, data, position, state, learning_rate, seq_length,
              step, losses, threads, masks=None, clip=CLIP):
        """B = state.shape[2] streams over len(losses) chunks; everything stays on the device
        for the whole call."""
        if not _one_layer_rnn(w, masks):
            return _Generic.train(w, g, optimizer, states, data, position, state, learning_rate,
                                  seq_length, step, losses, masks, clip)
        h = state[0, 0]
        V, H = w.Why.shape
        B, T, n = h.shape[0], seq_length, len(losses)
        # the walk through the data, decided on the host; every chunk's window of every
        # stream, step-major: (n, T+1, B)
        position, resets, host_windows = _walk(data, position, T, B, n)
        windows = cuda.to_device(host_windows)
        order, offsets = (cuda.to_device(a) for a in
                          _by_character(host_windows[:, :T].reshape(n, T * B), V))
        K = _kernels(h.dtype)
        p_flat, P = _to_device(w)
        g_flat, G = _to_device(g)
        s_flats = [_to_device(s)[0] for s in states]
        d_h = cuda.to_device(np.ascontiguousarray(h))
        d_losses = cuda.device_array(n, np.float64)
        c = _Chunk(T, B, H, V, h.dtype)
        for k in range(n):
            if resets[k]:
                K["zero"][_grid1(B * H)](d_h.reshape(B * H))
            x, y = windows[k, :T], windows[k, 1:]
            _forward(K, x, y, d_h, P, c, d_losses, k)
            _gradients(K, x, y, order[k], offsets[k], P, G, c)
            K["optimize"][_grid1(p_flat.shape[0])](p_flat, g_flat, *_two_states(s_flats),
                                                   optimizer.id, learning_rate, step + k + 1,
                                                   float(clip))
            d_h.copy_to_device(c.hs[T])
        _to_host(p_flat, w)
        _to_host(g_flat, g)
        for flat, s in zip(s_flats, states):
            _to_host(flat, s)
        h[...] = d_h.copy_to_host()
        losses[:] = d_losses.copy_to_host()
        return position

    def evaluate(self, w, data, state, threads=1, progress=None):
        if state.shape[2] != 1:
            raise ValueError(f"the cuda backend evaluates one stream, not {state.shape[2]}; "
                             f"use streams=1 (--val-streams 1)")
        if not _one_layer_rnn(w, None):
            return _Generic.evaluate(w, data, state, progress)
        V, H = w.Why.shape
        h = state[0, 0, 0]
        n_pred = data.shape[0] - 1
        if n_pred <= 0:
            return 0.0
        L = min(EVAL_STEPS, n_pred)
        K = _kernels(h.dtype)
        _, P = _to_device(w)
        d_data = cuda.to_device(np.ascontiguousarray(data).reshape(-1, 1))
        d_h = cuda.to_device(h.reshape(1, -1))
        starts = list(range(0, n_pred, L))
        d_losses = cuda.device_array(len(starts), np.float64)
        c = _Chunk(L, 1, H, V, h.dtype)
        reports = _Reports(progress, len(starts))
        for k, s in enumerate(starts):
            m = min(L, n_pred - s)
            _forward(K, d_data[s:s + m], d_data[s + 1:s + m + 1], d_h, P, c, d_losses, k)
            d_h.copy_to_device(c.hs[m])
            reports.after(k, s + m)
        h[:] = d_h.copy_to_host()[0]
        loss = 0.0
        for chunk_loss in d_losses.copy_to_host():  # summed in order, as the CPU kernel does
            loss += chunk_loss
        return loss


def load():
    ok, why = available()
    if not ok:
        raise ValueError(f"backend 'cuda' is not usable here: {why} (NUMBA_ENABLE_CUDASIM=1 runs "
                         f"it in Numba's slow CUDA simulator)")
    return CudaBackend()
