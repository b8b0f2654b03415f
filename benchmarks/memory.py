"""The memory a model takes to train, validate and sample, as tracemalloc sees NumPy's
allocations, against ``model.memory_needed()`` (what the model checks before it is built).

    python benchmarks/memory.py                      # LSTM, 2 x 384, 32 streams x 100 steps
    python benchmarks/memory.py --cell gru --hidden-size 512 --dropout 0 --val-streams 1

One model, float32, Adam, on tinyshakespeare's ids (from ``../shared``): ``--chunks`` chunks of
training, then an evaluation of its last ``--val-chars`` characters on ``--val-streams``
streams (``fastrnn.train``'s validation), then a sample of 500 characters, in that order; for
each, the bytes held after it and the peak so far (from the model's construction on). The
kernels are compiled first, on a model of another size, outside the trace.
"""

import argparse
import sys
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import describe  # noqa: E402
from fastrnn import CharRNN  # noqa: E402

TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", default="lstm", choices=["rnn", "lstm", "gru"])
    parser.add_argument("--hidden-size", type=describe.positive, default=384)
    parser.add_argument("--num-layers", type=describe.positive, default=2)
    parser.add_argument("--batch-size", type=describe.positive, default=32)
    parser.add_argument("--seq-length", type=describe.positive, default=100)
    parser.add_argument("--dropout", type=float, default=None,
                        help="default 0.25 with several layers, else 0")
    parser.add_argument("--threads", type=describe.positive, default=2)
    parser.add_argument("--chunks", type=describe.positive, default=3)
    parser.add_argument("--val-streams", type=describe.positive, default=8)
    parser.add_argument("--val-chars", type=describe.positive, default=111_539)
    args = parser.parse_args()
    if args.dropout is None:
        args.dropout = 0.25 if args.num_layers > 1 else 0.0
    print(describe.header(__file__) + "\n")
    text = TEXT.read_bytes()
    ids = np.unique(np.frombuffer(text, np.uint8), return_inverse=True)[1].astype(np.uint8)
    V = int(ids.max()) + 1
    settings = dict(cell=args.cell, num_layers=args.num_layers, batch_size=args.batch_size,
                    seq_length=args.seq_length, dropout=args.dropout, threads=args.threads,
                    dtype="float32", optimizer="adam")
    val = ids[-args.val_chars:]
    warm = CharRNN(V, hidden_size=8, **settings)  # (compiled, or loaded, untraced)
    warm.train(ids, 1)
    warm.evaluate(val[:3_000], streams=args.val_streams)
    warm.sample(10, 0)
    rows = []
    tracemalloc.start()
    try:
        model = CharRNN(V, hidden_size=args.hidden_size, **settings)
        model.train(ids, args.chunks)
        rows.append((f"training, {args.chunks} chunks", *tracemalloc.get_traced_memory()))
        model.evaluate(val, streams=args.val_streams)
        rows.append((f"+ validation, {len(val):,} characters, {args.val_streams} streams",
                     *tracemalloc.get_traced_memory()))
        model.sample(500, 0)
        rows.append(("+ a sample of 500 characters", *tracemalloc.get_traced_memory()))
    finally:
        tracemalloc.stop()
    mib = 2 ** 20
    print(f"{args.cell}, {args.num_layers} x {args.hidden_size}, {args.batch_size} streams x "
          f"{args.seq_length} steps, dropout {args.dropout}, float32, Adam: parameters "
          f"{model.weights.flat.nbytes / mib:.1f} MiB; model.memory_needed() "
          f"{model.memory_needed() / mib:.1f} MiB\n")
    print("| after | held MiB | peak MiB |\n|---|---:|---:|")
    for what, held, peak in rows:
        print(f"| {what} | {held / mib:.1f} | {peak / mib:.1f} |")


if __name__ == "__main__":
    main()
