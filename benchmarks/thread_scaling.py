"""Mini-batch training throughput against the thread count, with the same bits at every count.

    python benchmarks/thread_scaling.py                  # 1, 2, 4, ... up to the cores here
    python benchmarks/thread_scaling.py --threads 1 2 4 8 16 --sizes 32,256 128,512
    python benchmarks/thread_scaling.py --cell lstm --layers 2 --sizes 64,256

T = 50, float32, V = 65 (random ids), Adagrad (0.1 for the tanh cell, 0.01 for the gated
ones): ``fastrnn.kernels.batch.train`` of ``--chunks`` chunks, characters per second (B*T per
chunk): the median of ``--repeats`` timed calls after a warm-up, the thread counts taking
turns within each repeat; a count's speed-up over one thread is the median of its per-repeat
ratios to the one-thread call of the same repeat.

"ceiling": for t threads, t independent models of B/t streams, each trained on one thread at
the same time, in the same turns: what the machine gives t threads that share nothing and wait
for nothing, so the gap between it and "vs 1 thread" is what the reduction, the shared update
and the waits cost; the gap between it and t, what the machine itself loses (clock speed with
more cores busy, shared caches and memory).

Before timing, every thread count trains the same chunks from the same start and the script
checks that losses and parameters are bit-identical to one thread's ("same bits": NO, and exit
status 1 after the table, where they are not). Threads beyond the machine's cores are
oversubscribed (slower, still the same bits); a count given twice is run once. The ids are
DATA_SIZE random ones: B streams of T + 1 characters must fit in them.
"""

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastrnn import optim  # noqa: E402
from fastrnn.kernels import batch  # noqa: E402
from fastrnn.spec import Spec  # noqa: E402
from benchmarks import describe  # noqa: E402

T, V = 50, 65
DATA_SIZE = 2_000_000  # random ids the models train on
# Adagrad's rate per cell: min-char-rnn's 0.1 for the tanh cell; at 0.1 the gated cells
# diverge within a few chunks into saturated gates, whose float32 denormals slow every kernel
# several times over (measured: a B = 16 LSTM chunk from 41 to 300 ms), which is not what a
# training run times
LEARNING_RATES = {"rnn": 0.1, "lstm": 0.01, "gru": 0.01}


def model(B, H, cell="rnn", layers=1):
    spec = Spec(cell, V, H, layers)
    w, g, mem = spec.init(0, np.float32), spec.zeros(np.float32), spec.zeros(np.float32)
    state = np.zeros((layers, len(spec.cell.STATES), B, H), np.float32)
    return w, g, optim.get("adagrad").state([mem.flat]), state, \
        batch.Work(spec, B, T, np.float32)


def trained(B, H, data, chunks, threads, cell="rnn", layers=1):
    w, g, opt, state, work = model(B, H, cell, layers)
    losses = np.empty(chunks)
    batch.train(data, 0, state, w, g, opt, LEARNING_RATES[cell], T, 0, losses, work, threads)
    return losses, w.flat.copy(), state.copy()


class Run:
    """A model in training: ``go(threads)`` trains it through the next ``chunks`` chunks."""

    def __init__(self, B, H, data, chunks, cell, layers):
        self.w, self.g, self.opt, self.state, self.work = model(B, H, cell, layers)
        self.data, self.losses, self.position = data, np.empty(chunks), 0
        self.lr = LEARNING_RATES[cell]

    def go(self, threads):
        self.position = batch.train(self.data, self.position, self.state, self.w, self.g,
                                    self.opt, self.lr, T, 0, self.losses, self.work, threads)


def throughputs(B, H, data, chunks, repeats, counts, cell="rnn", layers=1):
    """({threads: [chars/s of each repeat]}, {threads: [...]}): the first for one model of B
    streams trained on that many threads; the second, the ceiling of any split of the B
    streams, for ``threads`` independent models of B/threads streams, each trained on one
    thread at the same time as the others (no reduction, no shared update, nothing waited
    for). Everything takes turns within every repeat (in rotated order), so that a slow spell
    of a shared machine falls on all alike."""
    args = (data, chunks, cell, layers)
    jobs = {("shared", t): [Run(B, H, *args)] for t in counts}
    for t in counts[1:]:
        if B % t == 0:
            jobs["independent", t] = [Run(B // t, H, *args) for _ in range(t)]
    pools = {t: ThreadPoolExecutor(t - 1) for t in counts[1:]}

    def go(key):
        kind, t = key
        if kind == "shared":
            jobs[key][0].go(t)
            return
        helpers = [pools[t].submit(run.go, 1) for run in jobs[key][1:]]
        jobs[key][0].go(1)
        for h in helpers:
            h.result()

    keys = list(jobs)
    speeds = {key: [] for key in keys}
    # BLAS at one thread around everything: batch.train limits it too, but the limits of
    # concurrent calls would otherwise restore each other's setting
    with threadpool_limits(1, user_api="blas"):
        for key in keys:
            go(key)  # warm-up (and compilation)
        for r in range(repeats):
            for key in keys[r % len(keys):] + keys[:r % len(keys)]:
                start = time.perf_counter()
                go(key)
                speeds[key].append(B * T * chunks / (time.perf_counter() - start))
    for pool in pools.values():
        pool.shutdown()
    return ({t: speeds["shared", t] for t in counts},
            {t: speeds[kind, t] for kind, t in keys if kind == "independent"})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cores = os.cpu_count() or 1
    counts = sorted({1, 2, cores} | {2 ** k for k in range(cores.bit_length()) if 2 ** k <= cores})
    p.add_argument("--threads", type=describe.positive, nargs="+", default=counts)
    p.add_argument("--sizes", type=describe.sizes("B,H"), nargs="+", metavar="B,H",
                   default=[(32, 256), (128, 512)])
    p.add_argument("--chunks", type=describe.positive, default=4)
    p.add_argument("--repeats", type=describe.positive, default=7)
    p.add_argument("--cell", default="rnn", choices=("rnn", "lstm", "gru"))
    p.add_argument("--layers", type=describe.positive, default=1)
    args = p.parse_args(argv)
    most = max(B for B, _ in args.sizes)
    if DATA_SIZE < most * (T + 1):
        raise SystemExit(f"thread_scaling.py: B = {most} streams of T + 1 = {T + 1} characters "
                         f"need {most * (T + 1):,}, more than the {DATA_SIZE:,} ids it trains "
                         f"on (B at most {DATA_SIZE // (T + 1):,})")
    data = np.random.default_rng(0).integers(0, V, DATA_SIZE).astype(np.int64)
    print(describe.header(__file__, argv))
    print(f"units of {batch.STREAMS_PER_UNIT} streams; {args.cell}, {args.layers} layer(s); "
          f"medians of {args.repeats} timed calls" + (" (one: no spread to judge by)"
                                                       if args.repeats == 1 else ""))
    print("| B | H | threads | chars/s | vs 1 thread | ceiling: independent streams | "
          "same bits as 1 thread |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    counts = list(dict.fromkeys([1] + args.threads))  # one thread first, each count once
    different = []
    for B, H in args.sizes:
        model_ = (args.cell, args.layers)
        reference = trained(B, H, data, 3, 1, *model_)
        same = {}
        for threads in counts:
            run = trained(B, H, data, 3, threads, *model_)
            same[threads] = all(np.array_equal(a, b) for a, b in zip(run, reference))
        speeds, ceiling = throughputs(B, H, data, args.chunks, args.repeats, counts, *model_)

        def ratio(runs):
            return statistics.median(s / b for s, b in zip(runs, speeds[1]))

        for threads in counts:
            bound = (f"{ratio(ceiling[threads]):.2f}x" if threads in ceiling
                     else "-" if threads == 1 else "n/a")
            print(f"| {B} | {H} | {threads} | {statistics.median(speeds[threads]):,.0f} | "
                  f"{ratio(speeds[threads]):.2f}x | {bound} | "
                  f"{'yes' if same[threads] else 'NO'} |", flush=True)
            if not same[threads]:
                different.append(f"B={B} H={H} threads={threads}")
    if different:
        raise SystemExit(f"MISMATCH: not the same bits as one thread: {', '.join(different)}")


if __name__ == "__main__":
    main()
