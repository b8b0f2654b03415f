"""numba-cuda kernels; each mirrors the function of the same name in ``fastrnn.reference``.

Imported only when ``backend="cuda"`` is asked for. A chunk is T steps of B streams (B = 1
for min-char-rnn): inputs ``x (T, B)``, activations ``hs (T+1, B, H)``, ``ps (T, B, V)``;
biases are 1-D. Everything that does not depend on the previous step is one matrix product
over all T*B (step, stream) rows; only the recurrence walks through time. One chunk is:

    recurrence          hs[t+1] = tanh(Wxh[:, x_t] + Whh hs[t] + bh), the one-hot input a
                        column gather, in one of three forms (``RECURRENCE``):
                        "stream": one block per stream, the time loop inside the kernel, the
                        stream's h in shared memory across all steps, and Whh too while it
                        fits (H <= 109 in float32, 77 in float64), else read from global
                        memory through its transpose so that a warp's loads are coalesced
                        (limit ``MAX_H``);
                        "step": one launch per step of a tiled product over all streams
                        (B x H) x (H x H), its epilogue the gather, bias and tanh; the launch
                        boundary is the grid-wide barrier, so any H works
                        (products use smaller tiles where large ones would leave
                        multiprocessors idle);
                        "persistent" (opt-in, not yet run on a GPU): several blocks per
                        stream, one per multiprocessor, each keeping its rows of Whh in shared
                        memory for the whole chunk, a grid-wide barrier after each step
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

Sums run in a fixed order everywhere, so a run repeats bit for bit. Numba's simulator runs
blocks one after another and cannot check a grid-wide barrier: the "persistent" kernels take
a range of steps, so that tests can launch them one step at a time. Formulas shared with the
CPU kernels come from ``scalar.py``.
"""

import functools
import math

import numpy as np
from numba import config, cuda, float32, float64, int64

from ..config import (ADAGRAD_EPS, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, CLIP, RMSPROP_DECAY,
                      RMSPROP_EPS)
from ..optim import ADAGRAD, RMSPROP
from .scalar import (adagrad_memory, adagrad_weight, adam_corrections, adam_moment, adam_weight,
                     clip, gradient, rmsprop_memory, rmsprop_weight, tanh_backward)

# Launch configuration, read at launch time (tests shrink BLOCK, STREAM_BLOCK, TILE, WORK and
# SEGMENTS so that the striding and multi-tile paths run in the simulator).
MAX_H = 2048            # most hidden units of a "stream" recurrence or sampling block
SHARED_BYTES = 48 * 1024  # shared memory a block may use without opting in to more
BLOCK = 128             # threads per block of the one-dimensional kernels
STREAM_BLOCK = 256      # most threads of a one-block-per-stream kernel (a row each; 256
                        # threads can always get their registers, 1024 only below 64 each)
TILE = 16               # a product block is TILE x TILE threads...
WORK = 4                # ...each computing WORK x WORK outputs: (TILE*WORK)^2 per block
RECURRENCE = "auto"     # "stream", "step", "persistent" (only when asked for: unmeasured), or
STEP_STREAMS = 16       # "auto": "step" from STEP_STREAMS streams on (or above MAX_H), else
                        # "stream"; a first guess, to be tuned on a GPU
SEGMENTS = 64           # row segments summed in parallel by the bias-gradient sums
LANES = 32              # partial sums per row in the "persistent" recurrence
PERSISTENT_STEPWISE = False  # launch the "persistent" kernels one step at a time (tests)


def caches_whh(H, itemsize):
    """Whether a "stream" block keeps Whh in shared memory (beside two H-vectors)."""
    return (H * H + 2 * H) * itemsize <= SHARED_BYTES


def form(B, H):
    """The recurrence form for a chunk of B streams of H units: "stream", "step" or
    "persistent" (the latter only when RECURRENCE asks for it)."""
    if RECURRENCE == "persistent":
        return "persistent"
    if H > MAX_H or RECURRENCE == "step" or (RECURRENCE == "auto" and B >= STEP_STREAMS):
        return "step"
    return "stream"


def persistent_rows(B, H, itemsize, multiprocessors):
    """Rows of Whh per block of the "persistent" recurrence, so that its blocks (a column of
    them per stream) fit one per multiprocessor with their rows in shared memory; None if
    they cannot."""
    per_stream = multiprocessors // B
    if per_stream < 1:
        return None
    rows = -(-H // per_stream)
    if (rows * H + H + rows * LANES) * itemsize > SHARED_BYTES:
        return None
    return rows


if config.ENABLE_CUDASIM:
    @cuda.jit(device=True)
    def coherent(a, index):
        return a[index]
else:
    coherent = cuda.ldcg  # a load that skips the (per-multiprocessor, incoherent) L1 cache


@functools.cache
def kernels(dtype, tile, work, max_h):
    """The kernels for float32 or float64 arrays, products of ``tile`` x ``tile`` threads
    computing ``work`` x ``work`` outputs each, and "stream" blocks holding up to ``max_h``
    hidden units (shared-memory sizes are compile-time constants in numba-cuda)."""
    nb = {np.dtype(np.float32): float32, np.dtype(np.float64): float64}[np.dtype(dtype)]
    one = nb(1)
    side = tile * work  # rows and columns of C per product block; k advances by tile
    pitch = side + 1    # a shared tile's row length: +1 keeps the stores free of bank conflicts

    @cuda.jit(device=True)
    def load_tile(X, k_major, K, L, start, k0, S, e):
        """Element e of a product's shared tile: S[k, l] = X[k0 + k, start + l] if k_major (X
        stored (K, L)), else X[start + l, k0 + k] (X stored (L, K)); 0 outside K x L. The e
        run along X's rows, so consecutive threads read consecutive addresses."""
        if k_major:
            k, l = e // side, e % side
            S[k, l] = X[k0 + k, start + l] if k0 + k < K and start + l < L else 0
        else:
            l, k = e // tile, e % tile
            S[k, l] = X[start + l, k0 + k] if k0 + k < K and start + l < L else 0

    @cuda.jit(device=True)
    def product_tile(A, ta, B, tb, M, N, K, row0, col0, As, Bs, acc):
        """acc[r, c] += sum over k < K, in order, of opA[row0 + ty + r tile, k] opB[k, col0 +
        tx + c tile], where opA = A.T if ta else A (M x K) and opB = B.T if tb else B (K x N).
        Tiles of opA and opB pass through shared memory; every thread of the block calls this."""
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        tid = ty * tile + tx
        for k0 in range(0, K, tile):
            for e in range(tid, side * tile, tile * tile):
                load_tile(A, ta, K, M, row0, k0, As, e)      # A is (K, M) if ta, else (M, K)
                load_tile(B, not tb, K, N, col0, k0, Bs, e)  # B is (N, K) if tb, else (K, N)
            cuda.syncthreads()
            for k in range(min(tile, K - k0)):
                for r in range(work):
                    a = As[k, ty + r * tile]
                    for c in range(work):
                        acc[r, c] += a * Bs[k, tx + c * tile]
            cuda.syncthreads()

    @cuda.jit
    def matmul(A, ta, B, tb, C):
        """C = opA opB (see product_tile); block (x, y) computes C's tile at (y side, x side)."""
        As = cuda.shared.array((tile, pitch), nb)
        Bs = cuda.shared.array((tile, pitch), nb)
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

    @cuda.jit
    def recurrence_step(t, x, Wxh, Whh, bh, hs):
        """"step" recurrence, one launch per step t: hs[t+1, b, i] = tanh(Wxh[i, x[t, b]] +
        bh[i] + sum_j Whh[i, j] hs[t, b, j]) for the block's tile of (b, i)."""
        As = cuda.shared.array((tile, pitch), nb)
        Bs = cuda.shared.array((tile, pitch), nb)
        acc = cuda.local.array((work, work), nb)
        Bn, H = hs.shape[1], hs.shape[2]
        row0, col0 = cuda.blockIdx.y * side, cuda.blockIdx.x * side
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

    @cuda.jit
    def recurrence_back_step(t, hs, dhout, Whh, draws):
        """"step" backward, one launch per step t (T-1 down to 0): draws[t, b, i] = (1 -
        hs[t+1, b, i]^2) (dhout[t, b, i] + sum_j draws[t+1, b, j] Whh[j, i])."""
        As = cuda.shared.array((tile, pitch), nb)
        Bs = cuda.shared.array((tile, pitch), nb)
        acc = cuda.local.array((work, work), nb)
        Bn, H = draws.shape[1], draws.shape[2]
        row0, col0 = cuda.blockIdx.y * side, cuda.blockIdx.x * side
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
    def recurrence(x, hprev, Wxh, WhhT, bh, hs, cached):
        """"stream" recurrence, block b = stream b: hs[0, b] = hprev[b]; hs[t+1, b] =
        tanh(Wxh[:, x[t, b]] + bh + Whh hs[t, b]) for t < T, Whh read as WhhT = Whh^T (a
        warp's threads, consecutive rows i, then read consecutive addresses WhhT[j, i]).
        Dynamic shared memory: h (H), then, if ``cached``, a copy of WhhT (H*H) that every
        step reads instead of global memory."""
        buf = cuda.shared.array(0, nb)
        b = cuda.blockIdx.x
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        H = WhhT.shape[0]
        h = buf[:H]
        for i in range(tid, H, nt):
            h[i] = hprev[b, i]
            hs[0, b, i] = hprev[b, i]
        if cached:
            for k in range(tid, H * H, nt):
                buf[H + k] = WhhT[k // H, k % H]
        cuda.syncthreads()
        for t in range(x.shape[0]):
            c = x[t, b]
            for i in range(tid, H, nt):
                a = Wxh[i, c] + bh[i]
                if cached:
                    for j in range(H):
                        a += buf[H + j * H + i] * h[j]
                else:
                    for j in range(H):
                        a += WhhT[j, i] * h[j]
                hs[t + 1, b, i] = math.tanh(a)
            cuda.syncthreads()
            for i in range(tid, H, nt):  # every thread has read h: now replace it
                h[i] = hs[t + 1, b, i]
            cuda.syncthreads()

    @cuda.jit
    def recurrence_back(hs, dhout, Whh, draws, cached):
        """"stream" backward, block b, reversed time loop: draws[t, b] = (1 - hs[t+1, b]^2) *
        (dhout[t, b] + Whh^T draws[t+1, b]) (Whh[j, i] for consecutive i: coalesced).
        Dynamic shared memory: draw[t+1] and Whh^T draw[t+1] (H each), then, if ``cached``, a
        copy of Whh (H*H)."""
        buf = cuda.shared.array(0, nb)
        b = cuda.blockIdx.x
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        H = Whh.shape[0]
        d = buf[:H]
        dn = buf[H:2 * H]
        for i in range(tid, H, nt):
            dn[i] = 0
        if cached:
            for k in range(tid, H * H, nt):
                buf[2 * H + k] = Whh[k // H, k % H]
        cuda.syncthreads()
        for t in range(draws.shape[0] - 1, -1, -1):
            for i in range(tid, H, nt):
                r = tanh_backward(hs[t + 1, b, i], dhout[t, b, i] + dn[i], one)
                draws[t, b, i] = r
                d[i] = r
            cuda.syncthreads()
            for i in range(tid, H, nt):
                acc = nb(0)
                if cached:
                    for j in range(H):
                        acc += buf[2 * H + j * H + i] * d[j]
                else:
                    for j in range(H):
                        acc += Whh[j, i] * d[j]
                dn[i] = acc
            cuda.syncthreads()

    @cuda.jit(device=True)
    def row_partials(buf, n, H, v, p):
        """The "persistent" kernels' products, LANES partial sums per row: buf[p + k LANES +
        lane] = sum over j = lane, lane + LANES, ... < H of buf[k H + j] buf[v + j], for the
        n rows k of the matrix at the start of buf and the vector at buf[v:]."""
        for q in range(cuda.threadIdx.x, n * LANES, cuda.blockDim.x):
            k, lane = q // LANES, q % LANES
            acc = nb(0)
            for j in range(lane, H, LANES):
                acc += buf[k * H + j] * buf[v + j]
            buf[p + q] = acc

    @cuda.jit
    def recurrence_persistent(x, Wxh, Whh, bh, hs, rows, t0, t1):
        """"persistent" recurrence (hs[t0] given): block (r, b) computes rows [r rows, (r+1)
        rows) of stream b for the steps t0 <= t < t1, holding those rows of Whh in shared memory for all of
        them, with a grid-wide barrier after each step (launched one step at a time, the
        launch boundary is the barrier: how the simulator checks several blocks). Each row's
        dot product is LANES partial sums (j = l, l + LANES, ...), then added in lane order.
        Dynamic shared memory: the rows of Whh (rows*H), h (H), the partial sums (rows*LANES).
        Rows of h written by other blocks are read past L1 (``coherent``)."""
        buf = cuda.shared.array(0, nb)
        grid = cuda.cg.this_grid()
        r, b = int64(cuda.blockIdx.x), int64(cuda.blockIdx.y)
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        H = Whh.shape[0]
        i0 = r * rows
        n = max(0, min(rows, H - i0))
        hv, pv = rows * H, rows * H + H  # where h and the partial sums start in buf
        for e in range(tid, n * H, nt):
            buf[e] = Whh[i0 + e // H, e % H]
        cuda.syncthreads()
        for t in range(t0, t1):
            for j in range(tid, H, nt):
                buf[hv + j] = coherent(hs, (t, b, j))
            cuda.syncthreads()
            row_partials(buf, n, H, hv, pv)
            cuda.syncthreads()
            c = x[t, b]
            for k in range(tid, n, nt):
                a = Wxh[i0 + k, c] + bh[i0 + k]
                for lane in range(LANES):
                    a += buf[pv + k * LANES + lane]
                hs[t + 1, b, i0 + k] = math.tanh(a)
            grid.sync()

    @cuda.jit
    def recurrence_back_persistent(hs, dhout, Whh, draws, rows, t_hi, t_lo):
        """"persistent" backward: block (r, b) computes draws[t, b, i] = (1 - hs[t+1, b,
        i]^2)(dhout[t, b, i] + sum_j draws[t+1, b, j] Whh[j, i]) for its rows i of stream b,
        steps t_hi - 1 down to t_lo; its columns of Whh in shared memory, transposed (buf[k*H
        + j] = Whh[j, i0 + k]), then draw[t+1] (H), then the partial sums (rows*LANES)."""
        buf = cuda.shared.array(0, nb)
        grid = cuda.cg.this_grid()
        r, b = int64(cuda.blockIdx.x), int64(cuda.blockIdx.y)
        tid, nt = cuda.threadIdx.x, cuda.blockDim.x
        H = Whh.shape[0]
        i0 = r * rows
        n = max(0, min(rows, H - i0))
        dv, pv = rows * H, rows * H + H
        for e in range(tid, n * H, nt):  # consecutive threads, consecutive columns of Whh
            j, k = e // n, e % n
            buf[k * H + j] = Whh[j, i0 + k]
        cuda.syncthreads()
        T = draws.shape[0]
        for t in range(t_hi - 1, t_lo - 1, -1):
            last = t + 1 == T  # nothing flows back into the chunk's last step
            if not last:
                for j in range(tid, H, nt):
                    buf[dv + j] = coherent(draws, (t + 1, b, j))
                cuda.syncthreads()
                row_partials(buf, n, H, dv, pv)
                cuda.syncthreads()
            for k in range(tid, n, nt):
                acc = nb(0)
                if not last:
                    for lane in range(LANES):
                        acc += buf[pv + k * LANES + lane]
                i = i0 + k
                draws[t, b, i] = tanh_backward(hs[t + 1, b, i], dhout[t, b, i] + acc, one)
            grid.sync()

    @cuda.jit
    def copy_state(hprev, hs):
        """hs[0] = hprev (the "step" recurrence's starting state)."""
        B, H = hprev.shape
        for k in range(cuda.grid(1), B * H, cuda.gridsize(1)):
            hs[0, k // H, k % H] = hprev[k // H, k % H]

    @cuda.jit
    def transpose(A, AT):
        """AT = A.T for a square or rectangular A (one thread per element)."""
        i, j = cuda.grid(2)
        if i < A.shape[1] and j < A.shape[0]:
            AT[i, j] = A[j, i]

    @cuda.jit
    def softmax_rows(z, by, y, ps, step_losses):
        """Row r = t*B + b (block r): ps[r] = softmax(z[r] + by); step_losses[r] = -log
        ps[r, y[r]]. z may be ps itself (the logits are overwritten by the probabilities)."""
        stat = cuda.shared.array(2, float64)
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
            step_losses[r] = -math.log(float64(ps[r, y[r]]))

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
        """g <- clip(g, -5, 5) over a flat buffer."""
        bound = nb(CLIP)
        for k in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
            g[k] = clip(g[k], bound)

    @cuda.jit
    def optimize(w, g, s1, s2, kind, lr, step, clip_first):
        """Flat buffers: (clip;) one Adagrad, RMSprop or Adam update (kind: the scalar.py ids)."""
        lr_, bound = nb(lr), nb(CLIP)
        corrections = adam_corrections(lr, max(step, 1))  # used by Adam only
        step_size, root_correction = nb(corrections[0]), nb(corrections[1])
        for k in range(cuda.grid(1), w.shape[0], cuda.gridsize(1)):
            gk = gradient(g, k, clip_first, bound)
            if kind == ADAGRAD:
                mk = adagrad_memory(s1[k], gk)
                s1[k] = mk
                w[k] = adagrad_weight(w[k], gk, mk, lr_, nb(ADAGRAD_EPS))
            elif kind == RMSPROP:
                mk = rmsprop_memory(s1[k], gk, nb(RMSPROP_DECAY), one)
                s1[k] = mk
                w[k] = rmsprop_weight(w[k], gk, mk, lr_, nb(RMSPROP_EPS))
            else:
                mk = adam_moment(s1[k], gk, nb(ADAM_BETA1), one)
                vk = adam_moment(s2[k], gk * gk, nb(ADAM_BETA2), one)
                s1[k] = mk
                s2[k] = vk
                w[k] = adam_weight(w[k], mk, vk, step_size, root_correction, nb(ADAM_EPS))

    @cuda.jit
    def zero(a):
        for k in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
            a[k] = 0

    @cuda.jit
    def sample(h, seed_ix, uniforms, Wxh, WhhT, WhyT, bh, by, temperature, greedy, ixes, p, cdf):
        """reference.sample in one block: ixes[n] for each uniform; h advanced in place. Whh
        and Why arrive transposed, so that a warp's loads are coalesced."""
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
                ix = 0
                if greedy:
                    for v in range(1, V):
                        if p[v] > p[ix]:
                            ix = v
                else:
                    if tau != one:
                        for v in range(V):
                            p[v] /= tau
                    m = p[0]
                    for v in range(1, V):
                        m = max(m, p[v])
                    s = nb(0)
                    for v in range(V):
                        p[v] = math.exp(p[v] - m)
                        s += p[v]
                    inv = one / s
                    c = 0.0
                    for v in range(V):
                        p[v] *= inv
                        c += p[v]
                        cdf[v] = c
                    threshold = uniforms[n] * cdf[V - 1]
                    ix = V - 1
                    for v in range(V):
                        if cdf[v] > threshold:
                            ix = v
                            break
                ixes[n] = ix
                cur[0] = ix
            cuda.syncthreads()
        for i in range(tid, H, nt):
            h[i] = hc[i]

    return dict(matmul=matmul, recurrence=recurrence, recurrence_step=recurrence_step,
                recurrence_back=recurrence_back, recurrence_back_step=recurrence_back_step,
                recurrence_persistent=recurrence_persistent,
                recurrence_back_persistent=recurrence_back_persistent,
                copy_state=copy_state, transpose=transpose, softmax_rows=softmax_rows,
                add_losses=add_losses, output_delta=output_delta, segment_sums=segment_sums,
                column_sums=column_sums,
                grad_xh=grad_xh, clip_all=clip_all, optimize=optimize, zero=zero, sample=sample)
