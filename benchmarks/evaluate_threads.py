"""Validation as one stream, on one thread and on several: a model's layers pipelined.

    python benchmarks/evaluate_threads.py                          # LSTM 2 x 256
    python benchmarks/evaluate_threads.py --hidden-size 384        # the README recipe's model
    python benchmarks/evaluate_threads.py --cell gru --num-layers 3 --threads 1 3

``model.evaluate`` of tinyshakespeare's held-out 10% (fastrnn's split) as one stream, as
``python -m fastrnn.train`` validates, with an LSTM of two layers of 256 by default (the README
recipe's shape before it grew to 384; float32; its weights do not change the time). One stream
is a single unit, so on more than one thread the kernels run its layers as a pipeline over the
chunks (``batch._pipelined``: layer 0 of a chunk beside layer 1 of the chunk before), with the
same bits as one thread, which is checked first. Then ``--rounds`` rounds each time one
evaluation per thread count, in turn (the machine is shared and noisy). Reported: median
seconds, characters per second and the speed-up over the first count listed (one thread by
default): the median over rounds of that count's time over each count's. A count given twice
is run once. The text's held-out 10% must hold at least 2 characters (one to predict).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastrnn import CharRNN, corpus  # noqa: E402
from benchmarks import describe  # noqa: E402

TEXT = describe.SHARED_TEXT


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cell", default="lstm", choices=("rnn", "lstm", "gru"))
    p.add_argument("--num-layers", type=describe.positive, default=2)
    p.add_argument("--hidden-size", type=describe.positive, default=256)
    p.add_argument("--threads", type=describe.positive, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=describe.positive, default=5)
    p.add_argument("--text", default=str(TEXT))
    args = p.parse_args(argv)
    try:
        text = corpus.load(args.text)
    except corpus.CorpusError as e:
        raise SystemExit(f"evaluate_threads.py: {e}")
    val = text.val
    if len(val) < 2:
        raise SystemExit(f"evaluate_threads.py: {args.text} is too short: its held-out 10% is "
                         f"{len(val)} character(s), and validation needs at least 2 (one to "
                         f"predict)")
    counts = list(dict.fromkeys(args.threads))  # in the order given, each once
    print(describe.header(__file__, argv))
    models = {n: CharRNN(len(text.vocab), args.hidden_size, dtype="float32", cell=args.cell,
                         num_layers=args.num_layers, threads=n) for n in counts}
    first = {n: m.evaluate(val) for n, m in models.items()}       # compiles; the same bits?
    loss = first[counts[0]][0]
    for n, (other, state) in first.items():
        if other != loss:
            raise SystemExit(f"{n} threads: loss {other!r} against {loss!r} on "
                             f"{counts[0]}: not the same bits")
    times = {n: [] for n in counts}
    for _ in range(args.rounds):
        for n, m in models.items():
            start = time.perf_counter()
            m.evaluate(val)
            times[n].append(time.perf_counter() - start)
    print(f"{args.cell}, {args.num_layers} layer(s) of {args.hidden_size}, float32: "
          f"{len(val) - 1:,} characters as one stream (loss {loss / (len(val) - 1):.4f} "
          f"nats/char on every thread count)")
    print(f"| threads | seconds (median) | chars/s | {counts[0]} thread"
          f"{'s' * (counts[0] > 1)} / this |")
    print("|---:|---:|---:|---:|")
    base = times[counts[0]]
    for n in counts:
        t = statistics.median(times[n])
        ratio = statistics.median(b / x for b, x in zip(base, times[n]))
        print(f"| {n} | {t:.2f} | {(len(val) - 1) / t:,.0f} | {ratio:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
