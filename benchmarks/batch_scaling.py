"""Mini-batch throughput against B and H: fastrnn's batched kernels (all cores) and the batched
NumPy reference (one thread), timed in the same process, with the machine's float32 matmul peak.

    python benchmarks/batch_scaling.py            # prints a Markdown table

T = 50, float32, V = 65 (tinyshakespeare's vocabulary size; random ids). Each figure is the
median over repeated timings of one chunk of every stream (forward, backward, clip, Adagrad).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numba
import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastrnn import optim, reference  # noqa: E402
from fastrnn.kernels import batch  # noqa: E402
from fastrnn.spec import Spec  # noqa: E402
from benchmarks import describe  # noqa: E402

T, V = 50, 65
CASES = [(1, 256), (8, 256), (32, 256), (128, 256), (32, 128), (32, 512), (32, 1024)]


def median_seconds(fn, budget=1.5, at_least=3):
    fn()  # warm-up (compilation, caches)
    times, start = [], time.perf_counter()
    while len(times) < at_least or time.perf_counter() - start < budget:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if len(times) >= 200:
            break
    return float(np.median(times))


def peak_gflops():
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    c = np.empty_like(a)
    with threadpool_limits(os.cpu_count(), user_api="blas"):
        return 2 * 2048 ** 3 / median_seconds(lambda: np.matmul(a, a, out=c), 1.0) / 1e9


def case(B, H, threads, data):
    flops = 6 * H * H + 6 * V * H
    adagrad = optim.get("adagrad")
    spec = Spec("rnn", V, H)
    w, g, mem = spec.init(0, np.float32), spec.zeros(np.float32), spec.zeros(np.float32)
    opt_state = adagrad.state([mem.flat])
    h, work, losses = np.zeros((1, 1, B, H), np.float32), batch.Work(spec, B, T, np.float32), \
        np.empty(1)
    state = {"pos": 0, "step": 0}

    def fast():
        state["pos"] = batch.train(data, state["pos"], h, w, g, opt_state, 0.1, T, state["step"],
                                   losses, work, threads)
        state["step"] += 1

    ref_w, ref_mems = spec.copy(w), [spec.zeros(np.float32)]
    ref_state = np.zeros((1, 1, B, H), np.float32)

    def slow():
        reference.train(ref_w, adagrad, ref_mems, data, 0, ref_state, 0.1, T, 1)

    with threadpool_limits(1, user_api="blas"):
        t_fast = median_seconds(fast)
        t_slow = median_seconds(slow)
    chars = B * T
    return chars / t_fast, chars / t_slow, flops


def main(argv=None):
    argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()),
                            epilog="The cases are fixed (CASES); a run takes several minutes."
                            ).parse_args(argv)
    print(describe.header(__file__, argv))
    threads = numba.config.NUMBA_NUM_THREADS
    data = np.random.default_rng(0).integers(0, V, 4_000_000).astype(np.uint8)
    peak = peak_gflops()
    print(f"machine peak: {peak:.0f} GFLOP/s (float32 2048^3 np.matmul, {os.cpu_count()} cores); "
          f"fastrnn threads: {threads}; reference: 1 thread\n")
    print("| B | H | fastrnn chars/s | GFLOP/s | % of peak | reference chars/s | x reference |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for B, H in CASES:
        fast, slow, flops = case(B, H, threads, data)
        g = fast * flops / 1e9
        print(f"| {B} | {H} | {fast:,.0f} | {g:.1f} | {100 * g / peak:.0f} | {slow:,.0f} | "
              f"{fast / slow:.2f} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
