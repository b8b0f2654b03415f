"""numba-cuda kernels; each mirrors the function of the same name in ``fastrnn.reference``.

Imported only when ``backend="cuda"`` is asked for. A chunk is T steps of B streams (B = 1
for min-char-rnn): inputs ``x (T, B)``, activations ``hs (T+1, B, H)``, ``ps (T, B, V)``;
biases are 1-D. Everything that does not depend on the previous step is one matrix product
over all T*B (step, stream) rows; only the recurrence walks through time. One chunk is:

    recurrence          hs[t+1] = tanh(Wxh[:, x_t] + Whh hs[t] + bh), the one-hot input a
                        column gather, in one of three forms (``RECURRENCE``; which one runs
                        is decided by ``fastrnn.backends.cuda.plan`` from a model of the GPU):
                        "persistent" (few streams): one cooperative launch per chunk; a block
                        per (stream, group of ``rows`` rows), a group of 32, 16 or 8 threads
                        (lanes) per row, each holding its row's weights j = lane, lane +
                        group, ... in registers for the whole chunk; per step it reads h (H
                        values) and each group sums its partial dot products with warp
                        shuffles; a grid-wide barrier between steps;
                        "tiled" (many streams): one cooperative launch per chunk; per step a
                        tiled product over all streams (B x H) x (H x H) (Whh read from L2),
                        its epilogue the gather, bias and tanh; blocks loop over the tiles, so
                        any grid that is co-resident works; a grid-wide barrier between steps;
                        "step": the "tiled" step, one ordinary launch per step (the launch
                        boundary is the barrier): where a cooperative launch is unavailable
    matmul              tiled shared-memory product (TILE x TILE threads, WORK x WORK outputs
                        each, every output summed over k in order): logits = hs Why^T,
                        Why^T dy, dWhh = draws^T hs, dWhy = dy^T hs
    softmax_rows        one block per (step, stream): p = softmax(logits + by) and -log p[y]
    output_delta        dy = p - onehot(y)
    recurrence_back     draw[t] = (1 - h^2)(Why^T dy[t] + Whh^T draw[t+1]), in the same
                        three forms
    segment_sums,       dbh, dby: sums over all steps and streams, in a fixed order (segments
    column_sums         of rows in parallel, then the segments)
    grad_xh             dWxh[:, c]: the sum of draw over the (step, stream) rows whose input
                        is c, read through a per-chunk index sorted by character (no atomics,
                        so results are reproducible)
    optimize            one grid-stride kernel over all five parameters at once (they live
                        in one flat buffer): clip fused with an Adagrad, RMSprop or Adam update

Inner loops are written for the compiler: loop bounds that set how often an FMA runs are
compile-time constants (tile sizes, weights per lane), so the loops unroll, the per-thread
accumulators live in registers and the shared-memory addresses are a base plus a constant:
about one shared load per FMA or fewer (``tests/test_cuda_compile.py`` counts the PTX).

Sums run in a fixed order everywhere, so a run repeats bit for bit. Numba's simulator runs
blocks one after another and cannot check a grid-wide barrier: the cooperative kernels take
a range of steps, so that tests can launch them one step at a time (``STEPWISE``), and the
simulator's cooperative grid is one block. Formulas shared with the CPU kernels come from
``scalar.py``.

These kernels run the one-layer tanh cell; every other model (the lstm and gru cells, stacked
layers, dropout between them) runs the generic path's kernels in ``cuda_cells.py``, which use
``matmul``, ``softmax_rows``, the sums and ``optimize`` from here.
"""

import functools
import math

import numpy as np
from numba import config, cuda, float32, float64, int64, uint32

from ..config import (ADAGRAD_EPS, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, CLIP, RMSPROP_DECAY,
                      RMSPROP_EPS)
from ..optim import ADAGRAD, RMSPROP
from .scalar import (adagrad_memory, adagrad_weight, adam_corrections, adam_moment, adam_weight,
                     clip, draw, gradient, rmsprop_memory, rmsprop_weight, tanh_backward)

# Launch configuration, read at launch time (tests shrink BLOCK, STREAM_BLOCK, TILE and
# SEGMENTS so that the striding and multi-tile paths run in the simulator).
MAX_H = 2048            # most hidden units of the one-block sampling kernel
BLOCK = 128             # threads per block of the one-dimensional kernels
STREAM_BLOCK = 256      # most threads of the one-block sampling kernel
TILE = 16               # a product block is TILE x TILE threads...
WORK = 4                # ...each computing WORK x WORK outputs (4, or 2 for small outputs)
RECURRENCE = "auto"     # "persistent", "tiled", "step", or "auto": the plan's choice
SEGMENTS = 64           # row segments summed in parallel by the bias-gradient sums
WARP = 32               # the most threads per row of the "persistent" form: a warp
LANES = 32              # a hardware warp: blocks are whole warps (tests change WARP, not this)
MAX_PER_LANE = 64       # most weights per thread of the "persistent" form (H <= 2048); in
                        # float64, 64 a lane is 255 registers plus 144-160 bytes spilled (ptxas
                        # for sm_90, read in a review; the plan does not see it): never timed
STEPWISE = False        # launch the cooperative kernels one step at a time (tests)


def per_lane(H, group):
    """Weights per thread of the "persistent" form for H hidden units, ``group`` threads a
    row: ceil(H / group) rounded up to a power of two (a compile-time size; few variants get
    compiled); None above MAX_PER_LANE."""
    need = -(-H // group)
    size = 1
    while size < need:
        size *= 2
    return size if size <= MAX_PER_LANE else None


if config.ENABLE_CUDASIM:
    @cuda.jit(device=True)
    def coherent(a, index):
        return a[index]
else:
    coherent = cuda.ldcg  # a load that skips the (per-multiprocessor, incoherent) L1 cache


@functools.cache
def persistent_kernels(dtype, lanes, group):
    """The "persistent" recurrence kernels for float32 or float64, ``group`` threads (lanes) a
    row (32, 16 or 8: a warp or part of one), each holding ``lanes`` weights
    (``per_lane(H, group)``) in registers."""
    nb = {np.dtype(np.float32): float32, np.dtype(np.float64): float64}[np.dtype(dtype)]
    one = nb(1)
    padded = lanes * group  # h in shared memory, zero beyond H
    if group > 32 or group & (group - 1):
        raise ValueError(f"a row's threads must be a power of two within a warp, not {group}")

    if config.ENABLE_CUDASIM:  # no warp shuffles there: the same tree through shared memory
        @cuda.jit(device=True)
        def warp_sum(v):
            buf = cuda.shared.array(1024, float64)  # a block's threads
            tid = cuda.threadIdx.x
            lane = tid % group
            buf[tid] = v
            cuda.syncthreads()
            offset = group // 2
            while offset > 0:
                other = buf[tid + offset] if lane + offset < group else buf[tid]
                cuda.syncthreads()
                v += nb(other)
                buf[tid] = v
                cuda.syncthreads()
                offset //= 2
            return v
    else:
        @cuda.jit(device=True)
        def warp_sum(v):
            """The sum of v over a group's lanes (aligned within a warp), in a fixed tree
            order; lane 0 holds it. Every thread of the warp takes part in each shuffle."""
            offset = group // 2
            while offset > 0:
                v += cuda.shfl_down_sync(0xFFFFFFFF, v, offset)
                offset //= 2
            return v

    @cuda.jit(device=True)
    def setup(Whh, rows, transposed, w, v):
        """(stream b, this group's row i, its lane, whether i < H) of this block; w: this
        thread's weights, Whh[i, j] (Whh[j, i] if ``transposed``) for j = lane, lane + group,
        ...; v (the staged vector) zero beyond H. The lane is unsigned, so that v[lane + u
        group] is a base address plus a constant."""
        H = Whh.shape[0]
        groups = (H + rows - 1) // rows
        b, r = cuda.blockIdx.x // groups, cuda.blockIdx.x % groups
        k, lane = cuda.threadIdx.x // group, uint32(cuda.threadIdx.x % group)
        i = r * rows + k
        live = i < H
        for u in range(lanes):
            j = lane + u * group
            if live and j < H:
                w[u] = Whh[j, i] if transposed else Whh[i, j]
            else:
                w[u] = 0
        for j in range(H + cuda.threadIdx.x, padded, cuda.blockDim.x):
            v[j] = 0
        return b, i, lane, live

    @cuda.jit(device=True)
    def row_sum(w, v, src, t, b, lane):
        """The group's sum over j of w[j] src[t, b, j] (lane 0 holds it): src[t, b] staged
        into v (read past L1: other blocks wrote it), then one shared load and one FMA a
        weight, then the lanes' partial sums."""
        for j in range(cuda.threadIdx.x, src.shape[2], cuda.blockDim.x):
            v[j] = coherent(src, (t, b, j))
        cuda.syncthreads()
        acc = nb(0)
        for u in range(lanes):
            acc += w[u] * v[lane + uint32(u * group)]
        return warp_sum(acc)

    @cuda.jit
    def recurrence_persistent(x, Wxh, Whh, bh, hs, rows, t0, t1):
        """"persistent" recurrence, steps t0 <= t < t1 (hs[t0] given): block g computes rows
        [r rows, (r+1) rows) of stream b (g = b * groups + r), group k row i = r rows + k:
        hs[t+1, b, i] = tanh(Wxh[i, x[t, b]] + bh[i] + sum_j Whh[i, j] hs[t, b, j]), lane l
        summing j = l, l + group, ... from its registers, then the group's lanes in a fixed
        tree; a grid-wide barrier after each step."""
        h = cuda.shared.array(padded, nb)
        w = cuda.local.array(lanes, nb)
        grid = cuda.cg.this_grid()
        b, i, lane, live = setup(Whh, rows, False, w, h)
        for t in range(t0, t1):
            acc = row_sum(w, h, hs, t, b, lane)
            if live and lane == 0:
                hs[t + 1, b, i] = math.tanh(Wxh[i, x[t, b]] + bh[i] + acc)
            grid.sync()

    @cuda.jit
    def recurrence_back_persistent(hs, dhout, Whh, draws, rows, t_hi, t_lo):
        """"persistent" backward, steps t_hi - 1 down to t_lo: group k of block (b, r) computes
        draws[t, b, i] = (1 - hs[t+1, b, i]^2)(dhout[t, b, i] + sum_j draws[t+1, b, j]
        Whh[j, i]) for i = r rows + k, column i of Whh in its lanes' registers."""
        d = cuda.shared.array(padded, nb)
        w = cuda.local.array(lanes, nb)
        grid = cuda.cg.this_grid()
        b, i, lane, live = setup(Whh, rows, True, w, d)
        T = draws.shape[0]
        for t in range(t_hi - 1, t_lo - 1, -1):
            acc = nb(0)
            if t + 1 < T:  # nothing flows back into the chunk's last step
                acc = row_sum(w, d, draws, t + 1, b, lane)
            if live and lane == 0:
                draws[t, b, i] = tanh_backward(hs[t + 1, b, i], dhout[t, b, i] + acc, one)
            grid.sync()

    return dict(recurrence_persistent=recurrence_persistent,
                recurrence_back_persistent=recurrence_back_persistent)


@functools.cache
def kernels(dtype, tile, work, max_h):
    """The kernels for float32 or float64 arrays, products of ``tile`` x ``tile`` threads
    computing ``work`` x ``work`` outputs each, and a sampling block holding up to ``max_h``
    hidden units (shared-memory sizes and the loops they bound are compile-time constants)."""
    nb = {np.dtype(np.float32): float32, np.dtype(np.float64): float64}[np.dtype(dtype)]
    one = nb(1)
    side = tile * work  # rows and columns of C per product block; k advances by tile
    pitch = side + 1    # a shared tile's row length: +1 keeps the transposed stores free of
                        # bank conflicts (consecutive threads, consecutive k)
    size = tile * pitch  # a shared tile, stored flat: S[k * pitch + l]

    @cuda.jit(device=True)
    def fetch(X, k_major, K, L, start, k0, regs):
        """This thread's share of the next shared tile, into registers: regs[q] = element
        e = tid + q tile^2 of S, S[k, l] = X[k0 + k, start + l] if k_major (X stored (K, L)),
        else X[start + l, k0 + k] (X stored (L, K)); 0 outside K x L, so that the product's k
        loop always runs the whole tile. All ``work`` loads are issued before any is used (one
        memory latency, not ``work``), consecutive threads read consecutive addresses, and the
        reads skip L1 (the cooperative recurrences read rows other blocks wrote a step ago)."""
        tid = uint32(cuda.threadIdx.y * tile + cuda.threadIdx.x)
        for q in range(work):
            e = tid + uint32(q * tile * tile)
            if k_major:
                k, l = e // uint32(side), e % uint32(side)
                regs[q] = (coherent(X, (k0 + k, start + l))
                           if k0 + k < K and start + l < L else nb(0))
            else:
                l, k = e // uint32(tile), e % uint32(tile)
                regs[q] = (coherent(X, (start + l, k0 + k))
                           if k0 + k < K and start + l < L else nb(0))

    @cuda.jit(device=True)
    def store(k_major, S, regs):
        """S = the tile ``fetch`` brought into regs."""
        tid = uint32(cuda.threadIdx.y * tile + cuda.threadIdx.x)
        for q in range(work):
            e = tid + uint32(q * tile * tile)
            if k_major:
                S[(e // uint32(side)) * uint32(pitch) + e % uint32(side)] = regs[q]
            else:
                S[(e % uint32(tile)) * uint32(pitch) + e // uint32(tile)] = regs[q]

    @cuda.jit(device=True)
    def product_tile(A, ta, B, tb, M, N, K, row0, col0, As, Bs, acc):
        """acc[r, c] += sum over k < K, in order, of opA[row0 + ty + r tile, k] opB[k, col0 +
        tx + c tile], where opA = A.T if ta else A (M x K) and opB = B.T if tb else B (K x N).
        Tiles of opA and opB pass through shared memory, the next pair fetched into registers
        while the current one is multiplied; every thread of the block calls this. The k loop
        runs the whole tile (zero-padded) with unsigned 32-bit offsets, so the compiler unrolls
        it and addresses the shared tiles as a base plus a constant: per k, ``work`` loads of
        each operand into registers and work^2 FMAs."""
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        a = cuda.local.array(work, nb)
        b = cuda.local.array(work, nb)
        ra = cuda.local.array(work, nb)
        rb = cuda.local.array(work, nb)
        fetch(A, ta, K, M, row0, 0, ra)      # A is (K, M) if ta, else (M, K)
        fetch(B, not tb, K, N, col0, 0, rb)  # B is (N, K) if tb, else (K, N)
        for k0 in range(0, K, tile):
            store(ta, As, ra)
            store(not tb, Bs, rb)
            cuda.syncthreads()
            if k0 + tile < K:
                fetch(A, ta, K, M, row0, k0 + tile, ra)
                fetch(B, not tb, K, N, col0, k0 + tile, rb)
            k = uint32(0)
            while k < uint32(tile):
                for r in range(work):
                    a[r] = As[k * uint32(pitch) + uint32(ty + r * tile)]
                for c in range(work):
                    b[c] = Bs[k * uint32(pitch) + uint32(tx + c * tile)]
                for r in range(work):
                    for c in range(work):
                        acc[r, c] += a[r] * b[c]
                k += uint32(1)
            cuda.syncthreads()

    @cuda.jit
    def matmul(A, ta, B, tb, C):
        """C = opA opB (see product_tile); block (x, y) computes C's tile at (y side, x side)."""
        As = cuda.shared.array(size, nb)
        Bs = cuda.shared.array(size, nb)
        acc = cuda.local.array((work, work), nb)
        M, N = C.shape
        K = A.shape[0] if ta else A.shape[1]
        row0, col0 = cuda.blockIdx.y * side, cuda.blockIdx.x * side
        for r in range(work):
            for c in range(work):
                acc[r, c] = 0
        product_tile(A, ta, B, tb, M, N, K, row0, col0, As, Bs, acc)
        for r in range(work):
            m = row0 + cuda.threadIdx.y + r * tile
            for c in range(work):
                n = col0 + cuda.threadIdx.x + c * tile
                if m < M and n < N:
                    C[m, n] = acc[r, c]

    @cuda.jit(device=True)
    def tiles(Bn, H):
        """Output tiles of one recurrence step ((B, H) in side x side tiles), and across."""
        across = (H + side - 1) // side
        return ((Bn + side - 1) // side) * across, across

    @cuda.jit(device=True)
    def forward_tile(t, x, Wxh, Whh, bh, hs, g, across, As, Bs, acc):
        """Tile g of step t: hs[t+1, b, i] = tanh(Wxh[i, x[t, b]] + bh[i] + sum_j Whh[i, j]
        hs[t, b, j]) for the tile's (b, i)."""
        Bn, H = hs.shape[1], hs.shape[2]
        row0, col0 = (g // across) * side, (g % across) * side
        for r in range(work):
            b = row0 + cuda.threadIdx.y + r * tile
            for c in range(work):
                i = col0 + cuda.threadIdx.x + c * tile
                acc[r, c] = Wxh[i, x[t, b]] + bh[i] if b < Bn and i < H else 0
        product_tile(hs[t], False, Whh, True, Bn, H, H, row0, col0, As, Bs, acc)
        for r in range(work):
            b = row0 + cuda.threadIdx.y + r * tile
            for c in range(work):
                i = col0 + cuda.threadIdx.x + c * tile
                if b < Bn and i < H:
                    hs[t + 1, b, i] = math.tanh(acc[r, c])

    @cuda.jit(device=True)
    def backward_tile(t, hs, dhout, Whh, draws, g, across, As, Bs, acc):
        """Tile g of step t (backward): draws[t, b, i] = (1 - hs[t+1, b, i]^2) (dhout[t, b, i]
        + sum_j draws[t+1, b, j] Whh[j, i])."""
        Bn, H = draws.shape[1], draws.shape[2]
        row0, col0 = (g // across) * side, (g % across) * side
        for r in range(work):
            for c in range(work):
                acc[r, c] = 0
        last = t + 1 == draws.shape[0]  # nothing flows back into the chunk's last step
        product_tile(draws[t if last else t + 1], False, Whh, False, Bn, H, 0 if last else H,
                     row0, col0, As, Bs, acc)
        for r in range(work):
            b = row0 + cuda.threadIdx.y + r * tile
            for c in range(work):
                i = col0 + cuda.threadIdx.x + c * tile
                if b < Bn and i < H:
                    draws[t, b, i] = tanh_backward(hs[t + 1, b, i], dhout[t, b, i] + acc[r, c],
                                                   one)

    @cuda.jit
    def recurrence_tiled(x, Wxh, Whh, bh, hs, t0, t1):
        """"tiled" recurrence, steps t0 <= t < t1 in one cooperative launch: the blocks share
        out the step's tiles (block k: tiles k, k + grid, ...), then a grid-wide barrier."""
        As = cuda.shared.array(size, nb)
        Bs = cuda.shared.array(size, nb)
        acc = cuda.local.array((work, work), nb)
        grid = cuda.cg.this_grid()
        count, across = tiles(hs.shape[1], hs.shape[2])
        for t in range(t0, t1):
            for g in range(cuda.blockIdx.x, count, cuda.gridDim.x):
                forward_tile(t, x, Wxh, Whh, bh, hs, g, across, As, Bs, acc)
            grid.sync()

    @cuda.jit
    def recurrence_back_tiled(hs, dhout, Whh, draws, t_hi, t_lo):
        """"tiled" backward, steps t_hi - 1 down to t_lo in one cooperative launch."""
        As = cuda.shared.array(size, nb)
        Bs = cuda.shared.array(size, nb)
        acc = cuda.local.array((work, work), nb)
        grid = cuda.cg.this_grid()
        count, across = tiles(draws.shape[1], draws.shape[2])
        for t in range(t_hi - 1, t_lo - 1, -1):
            for g in range(cuda.blockIdx.x, count, cuda.gridDim.x):
                backward_tile(t, hs, dhout, Whh, draws, g, across, As, Bs, acc)
            grid.sync()

    @cuda.jit
    def recurrence_step(t, x, Wxh, Whh, bh, hs):
        """"step" recurrence: step t alone, one ordinary launch (block g: tile g)."""
        As = cuda.shared.array(size, nb)
        Bs = cuda.shared.array(size, nb)
        acc = cuda.local.array((work, work), nb)
        count, across = tiles(hs.shape[1], hs.shape[2])
        for g in range(cuda.blockIdx.x, count, cuda.gridDim.x):
            forward_tile(t, x, Wxh, Whh, bh, hs, g, across, As, Bs, acc)

    @cuda.jit
    def recurrence_back_step(t, hs, dhout, Whh, draws):
        """"step" backward: step t alone, one ordinary launch."""
        As = cuda.shared.array(size, nb)
        Bs = cuda.shared.array(size, nb)
        acc = cuda.local.array((work, work), nb)
        count, across = tiles(draws.shape[1], draws.shape[2])
        for g in range(cuda.blockIdx.x, count, cuda.gridDim.x):
            backward_tile(t, hs, dhout, Whh, draws, g, across, As, Bs, acc)

    @cuda.jit
    def copy_state(hprev, hs):
        """hs[0] = hprev (the "step" recurrence's starting state)."""
        B, H = hprev.shape
        for k in range(cuda.grid(1), B * H, cuda.gridsize(1)):
            hs[0, k // H, k % H] = hprev[k // H, k % H]

    @cuda.jit
    def softmax_rows(z, by, y, ps, step_losses):
        """Row r = t*B + b (block r): ps[r] = softmax(z[r] + by); step_losses[r] = -log
        ps[r, y[r]], computed from the logits (max + log(sum of exp) - the target's, as the
        CPU kernels do: finite where the probability underflows to 0). z may be ps itself
        (the logits are overwritten by the probabilities)."""
        stat = cuda.shared.array(3, float64)
        r = cuda.blockIdx.x
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        V = ps.shape[1]
        for v in range(tid, V, nt):
            ps[r, v] = z[r, v] + by[v]
        cuda.syncthreads()
        if tid == 0:
            m = ps[r, 0]
            for v in range(1, V):
                m = max(m, ps[r, v])
            stat[0] = m
            stat[2] = ps[r, y[r]]  # the target's logit
        cuda.syncthreads()
        m = nb(stat[0])
        for v in range(tid, V, nt):
            ps[r, v] = math.exp(ps[r, v] - m)
        cuda.syncthreads()
        if tid == 0:
            total = nb(0)
            for v in range(V):
                total += ps[r, v]
            stat[1] = total
        cuda.syncthreads()
        inv = one / nb(stat[1])
        for v in range(tid, V, nt):
            ps[r, v] *= inv
        cuda.syncthreads()
        if tid == 0:
            step_losses[r] = stat[0] + math.log(stat[1]) - stat[2]

    @cuda.jit
    def add_losses(step_losses, streams, partial, losses, n):
        """losses[n] = the sum of step_losses (rows r = t*streams + b), in a fixed order: each
        step's streams summed by one thread into partial[t], then the steps by thread 0."""
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        steps = step_losses.shape[0] // streams
        for t in range(tid, steps, nt):
            acc = 0.0
            for b in range(streams):
                acc += step_losses[t * streams + b]
            partial[t] = acc
        cuda.syncthreads()  # (also makes the block's global writes visible to thread 0)
        if tid == 0:
            total = 0.0
            for t in range(steps):
                total += partial[t]
            losses[n] = total

    @cuda.jit
    def output_delta(ps, y, dys):
        """dys[r] = ps[r] - onehot(y[r]) over rows r = t*B + b."""
        V = ps.shape[1]
        for k in range(cuda.grid(1), ps.shape[0] * V, cuda.gridsize(1)):
            r, v = k // V, k % V
            dys[r, v] = ps[r, v] - (one if v == y[r] else nb(0))

    @cuda.jit
    def segment_sums(A, partial):
        """partial[s, n] = the sum of A[r, n] over the rows r of segment s (rows split into
        partial.shape[0] contiguous segments), rows in order; one thread per (n, s)."""
        n, seg = cuda.grid(2)
        rows, S = A.shape[0], partial.shape[0]
        if n < A.shape[1] and seg < S:
            size = (rows + S - 1) // S
            acc = nb(0)
            for r in range(seg * size, min(rows, (seg + 1) * size)):
                acc += A[r, n]
            partial[seg, n] = acc

    @cuda.jit
    def column_sums(A, out):
        """out[n] = sum of A[:, n], rows in order."""
        n = cuda.grid(1)
        if n < A.shape[1]:
            acc = nb(0)
            for r in range(A.shape[0]):
                acc += A[r, n]
            out[n] = acc

    @cuda.jit
    def grad_xh(order, offsets, draws, dWxh):
        """dWxh[i, c] = sum of draws[r, i] over the rows r whose input is c: order[offsets[c]:
        offsets[c+1]], ascending (a stable sort of the inputs by character)."""
        i, c = cuda.grid(2)
        H, V = dWxh.shape
        if i < H and c < V:
            acc = nb(0)
            for e in range(offsets[c], offsets[c + 1]):
                acc += draws[order[e], i]
            dWxh[i, c] = acc

    @cuda.jit
    def clip_all(g):
        """g <- clip(g, -5, 5) over a flat buffer (a NaN kept)."""
        bound = nb(CLIP)
        for k in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
            g[k] = clip(g[k], bound)

    @cuda.jit
    def optimize(w, g, s1, s2, kind, lr, step, grad_clip):
        """Flat buffers: g clipped to [-grad_clip, grad_clip] in place (unless grad_clip is
        0), then one Adagrad, RMSprop or Adam update (kind: the scalar.py ids)."""
        lr_, bound = nb(lr), nb(grad_clip)
        clip_first = grad_clip > 0
        corrections = adam_corrections(lr, max(step, 1))  # used by Adam only
        step_size, root_correction = nb(corrections[0]), nb(corrections[1])
        for k in range(cuda.grid(1), w.shape[0], cuda.gridsize(1)):
            gk = gradient(g, k, clip_first, bound)
            if kind == ADAGRAD:
                mk = adagrad_memory(s1[k], gk)
                s1[k] = mk
                w[k] = adagrad_weight(w[k], gk, mk, lr_, nb(ADAGRAD_EPS))
            elif kind == RMSPROP:
                mk = rmsprop_memory(s1[k], gk, nb(RMSPROP_DECAY), nb(1.0 - RMSPROP_DECAY))
                s1[k] = mk
                w[k] = rmsprop_weight(w[k], gk, mk, lr_, nb(RMSPROP_EPS))
            else:
                mk = adam_moment(s1[k], gk, nb(ADAM_BETA1), nb(1.0 - ADAM_BETA1))
                vk = adam_moment(s2[k], gk * gk, nb(ADAM_BETA2), nb(1.0 - ADAM_BETA2))
                s1[k] = mk
                s2[k] = vk
                w[k] = adam_weight(w[k], mk, vk, step_size, root_correction, nb(ADAM_EPS))

    @cuda.jit
    def zero(a):
        for k in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
            a[k] = 0

    @cuda.jit
    def sample(h, seed_ix, uniforms, Wxh, WhhT, WhyT, bh, by, temperature, greedy, top_k, top_p,
               ixes, p, cdf):
        """reference.sample in one block: ixes[n] for each uniform; h advanced in place. Whh
        and Why arrive transposed, so that a warp's loads are coalesced. Top-k / top-p as
        reference.truncate, by thread 0 (cdf doubling as its marks)."""
        hc = cuda.shared.array(max_h, nb)
        hn = cuda.shared.array(max_h, nb)
        cur = cuda.shared.array(1, int64)
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        H, V = WhyT.shape
        tau = nb(temperature)
        for i in range(tid, H, nt):
            hc[i] = h[i]
        if tid == 0:
            cur[0] = seed_ix
        cuda.syncthreads()
        for n in range(uniforms.shape[0]):
            x = cur[0]
            for i in range(tid, H, nt):
                a = Wxh[i, x] + bh[i]
                for j in range(H):
                    a += WhhT[j, i] * hc[j]
                hn[i] = math.tanh(a)
            cuda.syncthreads()
            for i in range(tid, H, nt):
                hc[i] = hn[i]
            cuda.syncthreads()
            for v in range(tid, V, nt):
                z = by[v]
                for j in range(H):
                    z += WhyT[j, v] * hc[j]
                p[v] = z
            cuda.syncthreads()
            if tid == 0:
                ix = draw(p, tau, greedy, top_k, top_p, uniforms[n], cdf, one)
                ixes[n] = ix
                cur[0] = ix
            cuda.syncthreads()
        for i in range(tid, H, nt):
            h[i] = hc[i]

    return dict(matmul=matmul, recurrence_tiled=recurrence_tiled,
                recurrence_back_tiled=recurrence_back_tiled, recurrence_step=recurrence_step,
                recurrence_back_step=recurrence_back_step, copy_state=copy_state,
                softmax_rows=softmax_rows, add_losses=add_losses, output_delta=output_delta,
                segment_sums=segment_sums, column_sums=column_sums, grad_xh=grad_xh,
                clip_all=clip_all, optimize=optimize, zero=zero, sample=sample)
