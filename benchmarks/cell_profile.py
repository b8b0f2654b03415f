"""Where a mini-batch unit's time goes, for one cell: its whole chunk, its per-step products,
its element-wise steps (one thread, float32).

    python benchmarks/cell_profile.py                       # lstm, 2 layers, H = 256, 16 streams
    python benchmarks/cell_profile.py --cell gru --layers 1 --hidden-size 512
    python benchmarks/cell_profile.py --layers 1 --streams 1      # one stream (B = 1 training)
    python benchmarks/cell_profile.py --layers 1 --streams 1 --tile-rows 2   # OpenBLAS, B = 1

Times (medians of ``--repeats``): the forward and backward pass of one unit of
``--streams`` streams (default ``STREAMS_PER_UNIT``) over a chunk of T = 50 steps with dropout
masks between layers, with its rate (``cells_vs_torch.py``'s FLOP count) against one thread's
float32 matrix-product peak measured in the same run; what a training step adds to them once
per chunk (the weights' packing, ``Work.load``, the units' gradient sum with the clipped Adam
update, ``sum_and_update``, and, with layers, drawing the chunk's dropout masks for 32
streams; each timed alone, the cache warm from the call before); the 2 x T x L per-step
products of that chunk alone ((Bu, H) x (H, G*H) forward, (Bu, G*H) x (G*H, H) backward,
with the product the unit calls, as ``batch.product_form`` decides: ``tiles.product`` on the
packed weights, or ``blas.gemm`` on Whh or Whh^T below ``batch.tile_rows`` streams); one step's
element-wise cell kernels (``cell_forward``, ``cell_backward``) over (Bu, H) units; and, for
scale, the time to read one layer's Whh once (a sum over it, first to last), what a product of
few rows would take if every product streamed Whh in from the cache it does not fit in.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastrnn import optim, reference  # noqa: E402
from fastrnn.config import CLIP, NJIT, STREAMS_PER_UNIT  # noqa: E402
from fastrnn.kernels import batch, tiles  # noqa: E402
from fastrnn.kernels.blas import gemm  # noqa: E402
from fastrnn.spec import Spec  # noqa: E402
from benchmarks import describe  # noqa: E402
from benchmarks.cells_vs_torch import flops_per_char, matmul_peaks  # noqa: E402

T = 50


@njit(**dict(NJIT, cache=False))
def step_products(n, form, Bu, GH, H, h, WhhT, Whp, acc, da, Whh, Whb, dh):
    """``layer_forward``'s and ``layer_backward``'s per-step products, ``n`` of each, in the
    kernels' order: the forward's, then the backward's."""
    for t in range(n):
        if form == batch.TILES:
            tiles.product(h, Whp, acc, t % 2 == 1)
        elif form == batch.WHH:
            gemm(False, True, 1, GH, H, h, H, Whh, H, 0.0, acc, GH)
        else:
            gemm(False, False, Bu, GH, H, h, H, WhhT, GH, 0.0, acc, GH)
    for t in range(n):
        if form == batch.TILES:
            tiles.product(da, Whb, dh, t % 2 == 1)
        else:
            gemm(False, False, Bu, H, GH, da, GH, Whh, H, 0.0, dh, H)


@njit(**dict(NJIT, cache=False, fastmath=True))
def read_once(n, W):
    """Sum ``W`` ``n`` times, first to last element each time: the time to stream it through
    the core (fastmath: a vectorised sum in W's own dtype, so that reading, not adding or
    converting, is what is timed)."""
    flat = W.reshape(-1)
    total = flat[0] * 0
    for _ in range(n):
        for i in range(flat.shape[0]):
            total += flat[i]
    return total


@njit(**dict(NJIT, cache=False))
def cell_steps(n, layer, pre, acc, hp, cp, h, c, hn, dhout, dh_next, dc_next, da, dah):
    for _ in range(n):
        batch.cell_forward(layer, pre, acc, hp, cp, h, c, hn)
    for _ in range(n):
        batch.cell_backward(layer, pre, hp, cp, h, c, hn, dhout, dh_next, dc_next, da, dah)


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--cell", default="lstm", choices=("rnn", "lstm", "gru"))
    p.add_argument("--layers", type=describe.positive, default=2)
    p.add_argument("--hidden-size", type=describe.positive, default=256)
    p.add_argument("--streams", type=describe.positive, default=STREAMS_PER_UNIT,
                   help="streams in the unit")
    p.add_argument("--vocab", type=describe.positive, default=65,
                   help="characters in the vocabulary (default 65, tinyshakespeare's)")
    p.add_argument("--repeats", type=describe.positive, default=11)
    p.add_argument("--tile-rows", type=describe.positive, default=batch.tile_rows,
                   help="units of this many streams or more use the tile kernel (default: this "
                        "CPU's config.TILE_ROWS, %(default)s)")
    args = p.parse_args(argv)
    print(describe.header(__file__, argv))
    batch.tile_rows = args.tile_rows
    L, H, Bu, V = args.layers, args.hidden_size, args.streams, args.vocab
    spec = Spec(args.cell, V, H, L)
    G = spec.cell.GATES
    GH = G * H
    w = spec.init(0, np.float32)
    work = batch.Work(spec, Bu, T, np.float32)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, V, (Bu, T)), rng.integers(0, V, (Bu, T))
    state = np.zeros((L, len(spec.cell.STATES), Bu, H), np.float32)
    masks = reference.dropout_masks(rng, 0.2, (L - 1, T, Bu, H), np.float32) if L > 1 else None
    drop = masks is not None
    unit = work.groups[0]
    with threadpool_limits(1, user_api="blas"):
        work.load(w)
        batch._load(unit, x, y, state, masks)
        batch._forward_one(work, w, unit, drop)
        batch._backward_one(work, w, unit, drop)
        forward = median_time(lambda: batch._forward_one(work, w, unit, drop), args.repeats)
        backward = median_time(lambda: batch._backward_one(work, w, unit, drop), args.repeats)
        load = median_time(lambda: work.load(w), args.repeats)
        opt = optim.get("adam").state([np.zeros(spec.size, np.float32) for _ in range(2)])
        grad = np.empty(spec.size, np.float32)
        step = iter(range(1, 10 ** 6))

        def update():
            batch.sum_and_update(work.partials, opt, w.flat, grad, 1e-9, next(step), CLIP, 0,
                                 spec.size)
        update()
        updates = median_time(update, args.repeats)
        draw = np.random.default_rng(1)  # one chunk's masks for the README recipe's 32 streams
        masking = median_time(lambda: reference.dropout_masks(draw, 0.35, (L - 1, T, 32, H),
                                                              np.float32), args.repeats)
        h, acc = np.ones((Bu, H), np.float32), np.empty((Bu, GH), np.float32)
        da, dh = np.ones((Bu, GH), np.float32), np.empty((Bu, H), np.float32)
        Whh = w.layers[0].Whh
        operands = (unit.form, Bu, GH, H, h, work.WhhT[0], work.Whp[0], acc, da, Whh,
                    work.Whb[0], dh)
        step_products(1, *operands)
        products = median_time(lambda: step_products(T * L, *operands), args.repeats)
        g = unit
        # The states before and after the step in arrays of their own, as in a chunk (given
        # one array for both, the LSTM's loops failed LLVM's overlap checks and ran scalar:
        # 41 us for 16 streams, the chunk's steps ~26)
        cs = g.cs if spec.cell.NAME == "lstm" else g.hs
        pieces = (w.layers[0], g.pre[0, 0], g.acc, g.hs[0, 0], cs[0, 0], g.hs[0, 1], cs[0, 1],
                  g.hn[0, 0], g.dhout[0], g.dh_next, g.dc_next, g.das[0], g.dahs[0])
        cell_steps(1, *pieces)
        n = 200
        cells = median_time(lambda: cell_steps(n, *pieces), args.repeats) / n
        read_once(1, Whh)
        read = median_time(lambda: read_once(n, Whh), args.repeats) / n
    peaks = matmul_peaks([1])[1]
    peak = max(peaks.values())
    rate = flops_per_char(args.cell, V, H, L) * T * Bu / (forward + backward) / 1e9
    flops = 2 * Bu * H * GH
    print(f"{args.cell}, {L} layer(s), H = {H}, V = {V}, one unit of {Bu} streams, T = {T}, "
          f"float32, one thread")
    print(f"chunk: forward {forward * 1e3:.1f} ms + backward {backward * 1e3:.1f} ms ({rate:.1f} "
          f"GFLOP/s, {100 * rate / peak:.0f}% of this thread's float32 matmul peak, "
          f"{peak:.0f} GFLOP/s: 1024^3, best of 5, the faster of np.matmul, "
          f"{peaks['np.matmul']:.0f}, and the tile kernel, {peaks['tiles']:.0f})")
    print(f"once per chunk, for all units: the weights' transposes and packing (Work.load) "
          f"{load * 1e3:.2f} ms; the gradient sum and clipped Adam update of the "
          f"{spec.size:,} parameters {updates * 1e3:.2f} ms (one unit's gradients, one thread)")
    if L > 1:
        print(f"drawing one chunk's dropout masks for 32 streams (reference.dropout_masks, "
              f"before the kernels run): {masking * 1e3:.2f} ms")
    how = {batch.TILES: "tiles.product", batch.WHH: "OpenBLAS on Whh",
           batch.WHH_T: "OpenBLAS on Whh^T"}[unit.form]
    print(f"the {2 * T * L} per-step products alone ({how}): {products * 1e3:.1f} ms "
          f"({products / (2 * T * L) * 1e6:.1f} us each, "
          f"{flops * 2 * T * L / products / 1e9:.1f} GFLOP/s)")
    print(f"one step's element-wise kernels (forward + backward, {Bu} x {H} units): "
          f"{cells * 1e6:.1f} us")
    print(f"reading Whh ({Whh.nbytes / 1e6:.2f} MB) once, first to last: {read * 1e6:.1f} us "
          f"({Whh.nbytes / read / 1e9:.0f} GB/s); each per-step product reads it once, in "
          f"alternate directions (the panels read last, still in cache, first)")


if __name__ == "__main__":
    main()
