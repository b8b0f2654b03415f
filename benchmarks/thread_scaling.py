"""Mini-batch training throughput against the thread count, with the same bits at every count.

    python benchmarks/thread_scaling.py                  # 1, 2, 4, ... up to the cores here
    python benchmarks/thread_scaling.py --threads 1 2 4 8 16 --sizes 32,256 128,512
    python benchmarks/thread_scaling.py --cell lstm --layers 2 --sizes 64,256

T = 50, float32, V = 65 (random ids), Adagrad: ``fastrnn.kernels.batch.train`` of ``--chunks``
chunks, the median of ``--repeats`` timed calls after a warm-up, characters per second (B*T per
chunk), each count's speed-up over one thread measured in the same run. Before timing, every
thread count trains the same chunks from the same start and the script checks that losses and
parameters are bit-identical to one thread's. Threads beyond the machine's cores are
oversubscribed (slower, still the same bits).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastrnn import optim  # noqa: E402
from fastrnn.kernels import batch  # noqa: E402
from fastrnn.spec import Spec  # noqa: E402

T, V = 50, 65


def model(B, H, cell="rnn", layers=1):
    spec = Spec(cell, V, H, layers)
    w, g, mem = spec.init(0, np.float32), spec.zeros(np.float32), spec.zeros(np.float32)
    state = np.zeros((layers, len(spec.cell.STATES), B, H), np.float32)
    return w, g, optim.get("adagrad").state([mem.flat]), state, \
        batch.Work(spec, B, T, np.float32)


def trained(B, H, data, chunks, threads, cell="rnn", layers=1):
    w, g, opt, state, work = model(B, H, cell, layers)
    losses = np.empty(chunks)
    batch.train(data, 0, state, w, g, opt, 0.1, T, 0, losses, work, threads)
    return losses, w.flat.copy(), state.copy()


def throughput(B, H, data, chunks, repeats, threads, cell="rnn", layers=1):
    w, g, opt, state, work = model(B, H, cell, layers)
    losses = np.empty(chunks)
    position = batch.train(data, 0, state, w, g, opt, 0.1, T, 0, losses, work, threads)  # warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        position = batch.train(data, position, state, w, g, opt, 0.1, T, 0, losses, work,
                               threads)
        times.append(time.perf_counter() - start)
    return B * T * chunks / statistics.median(times)


def parse_size(text):
    B, H = (int(v) for v in text.split(","))
    return B, H


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cores = os.cpu_count() or 1
    counts = sorted({1, 2, cores} | {2 ** k for k in range(cores.bit_length()) if 2 ** k <= cores})
    p.add_argument("--threads", type=int, nargs="+", default=counts)
    p.add_argument("--sizes", type=parse_size, nargs="+", default=[(32, 256), (128, 512)])
    p.add_argument("--chunks", type=int, default=4)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--cell", default="rnn", choices=("rnn", "lstm", "gru"))
    p.add_argument("--layers", type=int, default=1)
    args = p.parse_args(argv)
    data = np.random.default_rng(0).integers(0, V, 2_000_000).astype(np.int64)
    print(f"{cores} cores here; units of {batch.STREAMS_PER_UNIT} streams; {args.cell}, "
          f"{args.layers} layer(s)")
    print("| B | H | threads | chars/s | vs 1 thread | same bits as 1 thread |")
    print("|---:|---:|---:|---:|---:|---|")
    for B, H in args.sizes:
        model_ = (args.cell, args.layers)
        reference = trained(B, H, data, 3, 1, *model_)
        base = None
        for threads in args.threads:
            run = trained(B, H, data, 3, threads, *model_)
            same = all(np.array_equal(a, b) for a, b in zip(run, reference))
            speed = throughput(B, H, data, args.chunks, args.repeats, threads, *model_)
            base = speed if base is None else base
            print(f"| {B} | {H} | {threads} | {speed:,.0f} | {speed / base:.2f}x | "
                  f"{'yes' if same else 'NO'} |", flush=True)


if __name__ == "__main__":
    main()
