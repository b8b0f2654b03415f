"""The per-step recurrent product: ``kernels/tiles.py``'s packed micro-kernel against OpenBLAS.

    python benchmarks/tile_product.py
    python benchmarks/tile_product.py --dtype float64 --rows 1 4 8 16

For each shape (M rows of state, K, N): C = A W as the mini-batch kernels compute it per step,
``tiles.product`` from W packed once (``tiles.pack``), its panels taken in alternate directions
from one call to the next as the kernels take them, and OpenBLAS's gemm from W as it is, put
on a cache line (the kernels' other path, for units below ``config.TILE_ROWS`` streams, reads
the model's Whh wherever NumPy put it). The shapes are the
forward (M, H) x (H, G*H) and backward (M, G*H) x (G*H, H) products of the tanh cell, the GRU
and the LSTM at H = 256. Both are first checked to agree within the dtype's tolerance; then
``--rounds`` rounds each time ``--calls`` calls of one and then of the other (alternating: the
machine is shared and noisy), one thread. Reported: median microseconds per product, GFLOP/s,
and the median over rounds of OpenBLAS's time over the tile kernel's (> 1: tiles faster);
then the same for the tile kernel with its panels always taken first to last ("one way"), and
with its panels 16 bytes past a cache line ("off a line"; ``tiles.empty`` puts them on one,
NumPy's np.empty on a 16-byte boundary), and OpenBLAS's time from a W 16 bytes past a line over
its time from one on a line, the OpenBLAS column's ("OpenBLAS off a line").

Then the packing itself, which the kernels redo once per chunk for each layer (``load_layer``):
``tiles.pack`` of each cell's Whh (G*H, H), transposed (the forward's panels) and as it is (the
backward's), against a plain copy of the same matrix, alternating the same way.

Then a tiled unit's whole-chunk products, over its R = T * streams rows (``--steps``,
``--streams``; ``--vocab`` characters), as the kernels call them (``batch.whole_product``,
``batch.weight_gradient``) on the tiles and, for the same call with another product form, on
OpenBLAS: a layer's input product above the first, x Wxh^T (R, H) x (H, G*H), and the gradient
it passes down, da Wxh; the weight gradients da^T h (G*H, R) x (R, H) (dWhh, and dWxh above the
first layer), their time including the transpose of da and the packing of h; the softmax
layer's logits h Why^T, dh = dy Why and dWhy = dy^T h. Reported as above (OpenBLAS / tiles).
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

from fastrnn.config import NJIT, TOLERANCES  # noqa: E402
from fastrnn.kernels import batch, tiles  # noqa: E402
from fastrnn.kernels.blas import gemm  # noqa: E402
from benchmarks import describe  # noqa: E402


@njit(**NJIT)
def packs(W, transpose, out, calls):
    for _ in range(calls):
        tiles.pack(W, transpose, out)


@njit(**NJIT)
def copies(W, out, calls):
    for _ in range(calls):
        out[:] = W


@njit(**NJIT)
def tiled(A, packed, C, calls, alternate):
    """``calls`` products, the panels taken in alternate directions as the kernels take them,
    or (not ``alternate``) always first to last."""
    for i in range(calls):
        tiles.product(A, packed, C, alternate and i % 2 == 1)


def off_line(a):
    """A copy of ``a`` that starts 16 bytes past a cache line."""
    raw = tiles.empty(a.nbytes + tiles.LINE, np.uint8)
    out = raw[16:16 + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


@njit(**NJIT)
def openblas(A, W, C, calls):
    M, K = A.shape
    N = W.shape[1]
    for _ in range(calls):
        gemm(False, False, M, N, K, A, K, W, N, 0.0, C, N)


@njit(**NJIT)
def whole(form, A, W, trans, packed, C, calls):
    for _ in range(calls):
        batch.whole_product(form, A, W, trans, packed, C)


@njit(**NJIT)
def gradient(form, d, h, out, dT, hp, calls):
    for _ in range(calls):
        batch.weight_gradient(form, d, h, out, dT, hp, False)


def packed_as(W, transposed, dtype):
    """W (K, N) packed (``transposed``: W given as its transpose (N, K))."""
    K, N = (W.shape[1], W.shape[0]) if transposed else W.shape
    out = tiles.empty(tiles.packed_shape(K, N, dtype), dtype)
    packs(W, transposed, out, 1)
    return out


def whole_products(args, dtype, rng):
    """The third table (the module's docstring)."""
    H, V, R = args.hidden_size, args.vocab, args.steps * args.streams
    print(f"\nA unit's whole-chunk products: R = {args.steps} steps x {args.streams} streams = "
          f"{R} rows, V = {V}")
    print("| product | M | K | N | tiles us | OpenBLAS us | tiles GFLOP/s | OpenBLAS GFLOP/s | "
          "OpenBLAS / tiles |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    def rand(*shape):
        return rng.standard_normal(shape).astype(dtype)

    Why, h, dy = rand(V, H), rand(R, H), rand(R, V)
    cases = [("softmax h Why^T", (R, H, V), whole, (h, Why, True, packed_as(Why, True, dtype))),
             ("softmax dy Why", (R, V, H), whole, (dy, Why, False, packed_as(Why, False, dtype))),
             ("softmax dy^T h", (V, R, H), gradient, (dy, h))]
    for cell, G in (("rnn", 1), ("gru", 3), ("lstm", 4)):
        Wxh, da = rand(G * H, H), rand(R, G * H)
        WxhT = np.ascontiguousarray(Wxh.T)
        cases += [(f"{cell} x Wxh^T", (R, H, G * H), whole,
                   (h, WxhT, False, packed_as(Wxh, True, dtype))),
                  (f"{cell} da Wxh", (R, G * H, H), whole,
                   (da, Wxh, False, packed_as(Wxh, False, dtype))),
                  (f"{cell} da^T h", (G * H, R, H), gradient, (da, h))]
    dT = tiles.empty((max(4 * H, V), R), dtype)
    hp = tiles.empty(tiles.packed_shape(R, H, dtype), dtype)
    with threadpool_limits(1, user_api="blas"):
        for name, (M, K, N), kernel, operands in cases:
            C1, C2 = np.empty((M, N), dtype), np.empty((M, N), dtype)

            def run(C, form, n):
                if kernel is gradient:
                    gradient(form, *operands, C, dT, hp, n)
                else:
                    whole(form, *operands, C, n)

            run(C1, batch.TILES, 1)
            run(C2, batch.WHH_T, 1)
            A, B = (operands[0].T, operands[1]) if kernel is gradient else \
                (operands[0], operands[1].T if operands[2] else operands[1])
            A, B = A.astype(np.float64), B.astype(np.float64)
            # each element within the worst-case rounding of a sum of K products, K eps times
            # the sum of their magnitudes (the tests' atol, made for their small sums, was
            # missed by 15% by an element of this random data that cancels to near 0, K = 768)
            bound = A.shape[1] * np.finfo(dtype).eps * (np.abs(A) @ np.abs(B))
            for C in (C1, C2):
                assert np.all(np.abs(C - A @ B) <= bound), f"{name}: not the product"
            calls = max(1, int(2e7 // (M * K * N)))
            t1, t2 = [], []
            for _ in range(args.rounds):
                for times, form, C in ((t1, batch.TILES, C1), (t2, batch.WHH_T, C2)):
                    start = time.perf_counter()
                    run(C, form, calls)
                    times.append((time.perf_counter() - start) / calls)
            a, b = statistics.median(t1), statistics.median(t2)
            flops = 2 * M * K * N
            ratio = statistics.median(y / x for x, y in zip(t1, t2))
            print(f"| {name} | {M} | {K} | {N} | {a * 1e6:.1f} | {b * 1e6:.1f} | "
                  f"{flops / a / 1e9:.0f} | {flops / b / 1e9:.0f} | {ratio:.2f}x |", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--rows", type=describe.positive, nargs="+", default=[16, 8, 4, 1])
    p.add_argument("--hidden-size", type=describe.positive, default=256)
    p.add_argument("--rounds", type=describe.positive, default=21)
    p.add_argument("--calls", type=describe.positive, default=100)
    p.add_argument("--steps", type=describe.positive, default=50)
    p.add_argument("--streams", type=describe.positive, default=16)
    p.add_argument("--vocab", type=describe.positive, default=65)
    p.add_argument("--only-whole", action="store_true",
                   help="only the third table, the whole-chunk products")
    args = p.parse_args(argv)
    dtype, H = np.dtype(args.dtype), args.hidden_size
    rng = np.random.default_rng(0)
    print(describe.header(__file__, argv))
    print(f"{args.dtype}, one thread; panels of {tiles.panel_width(dtype)} columns, blocks of "
          f"{tiles.MR} rows")
    if args.only_whole:
        whole_products(args, dtype, rng)
        return
    print("| product | M | K | N | tiles us | OpenBLAS us | tiles GFLOP/s | OpenBLAS GFLOP/s | "
          "OpenBLAS / tiles | one way / tiles | off a line / tiles | OpenBLAS off a line |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    shapes = [("rnn h Whh^T and da Whh", H, H), ("gru h Whh^T", H, 3 * H),
              ("gru da Whh", 3 * H, H), ("lstm h Whh^T", H, 4 * H), ("lstm da Whh", 4 * H, H)]
    with threadpool_limits(1, user_api="blas"):
        for M in args.rows:
            for name, K, N in shapes:
                A = rng.standard_normal((M, K)).astype(dtype)
                W = rng.standard_normal((K, N)).astype(dtype)
                W_on, W_off = tiles.empty(W.shape, dtype), off_line(W)
                W_on[...] = W
                packed = packed_as(W, False, dtype)
                shifted = off_line(packed)
                C1, C2 = np.empty((M, N), dtype), np.empty((M, N), dtype)
                tiled(A, packed, C1, 2, True)
                openblas(A, W_on, C2, 1)
                np.testing.assert_allclose(C1, A.astype(np.float64) @ W, **TOLERANCES[dtype])
                np.testing.assert_allclose(C2, A.astype(np.float64) @ W, **TOLERANCES[dtype])
                tiled(A, shifted, C2, 1, True)
                np.testing.assert_array_equal(C1, C2)
                t1, t2, t0, t3, t4 = [], [], [], [], []
                for _ in range(args.rounds):
                    for times, run in ((t1, lambda: tiled(A, packed, C1, args.calls, True)),
                                       (t2, lambda: openblas(A, W_on, C2, args.calls)),
                                       (t0, lambda: tiled(A, packed, C1, args.calls, False)),
                                       (t3, lambda: tiled(A, shifted, C1, args.calls, True)),
                                       (t4, lambda: openblas(A, W_off, C2, args.calls))):
                        start = time.perf_counter()
                        run()
                        times.append((time.perf_counter() - start) / args.calls)
                a, b = statistics.median(t1), statistics.median(t2)
                flops = 2 * M * K * N
                ratio = statistics.median(y / x for x, y in zip(t1, t2))
                one_way = statistics.median(y / x for x, y in zip(t1, t0))
                off = statistics.median(y / x for x, y in zip(t1, t3))
                blas_off = statistics.median(y / x for x, y in zip(t2, t4))
                print(f"| {name} | {M} | {K} | {N} | {a * 1e6:.1f} | {b * 1e6:.1f} | "
                      f"{flops / a / 1e9:.0f} | {flops / b / 1e9:.0f} | {ratio:.2f}x | "
                      f"{one_way:.2f}x | {off:.2f}x | {blas_off:.2f}x |", flush=True)
    print("\n| packing Whh | shape | KB | pack Whh^T us | pack Whh us | copy us | "
          "pack Whh^T / copy | pack Whh / copy |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for cell, G in (("rnn", 1), ("gru", 3), ("lstm", 4)):
        Whh = rng.standard_normal((G * H, H)).astype(dtype)
        forward = tiles.empty(tiles.packed_shape(H, G * H, dtype), dtype)
        backward = tiles.empty(tiles.packed_shape(G * H, H, dtype), dtype)
        copy = np.empty_like(Whh)
        timings = {"T": [], "W": [], "copy": []}
        runs = {"T": lambda n: packs(Whh, True, forward, n),
                "W": lambda n: packs(Whh, False, backward, n),
                "copy": lambda n: copies(Whh, copy, n)}
        for run in runs.values():
            run(1)
        calls = max(1, args.calls // 10)
        for _ in range(args.rounds):
            for key, run in runs.items():
                start = time.perf_counter()
                run(calls)
                timings[key].append((time.perf_counter() - start) / calls)
        t = {key: statistics.median(v) for key, v in timings.items()}
        ratio = {key: statistics.median(x / c for x, c in zip(timings[key], timings["copy"]))
                 for key in ("T", "W")}
        print(f"| {cell} | {G * H} x {H} | {Whh.nbytes // 1024} | {t['T'] * 1e6:.1f} | "
              f"{t['W'] * 1e6:.1f} | {t['copy'] * 1e6:.1f} | {ratio['T']:.2f} | "
              f"{ratio['W']:.2f} |", flush=True)
    whole_products(args, dtype, rng)


if __name__ == "__main__":
    main()
