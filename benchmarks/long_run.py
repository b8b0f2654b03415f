"""What a long run costs at each checkpoint: the write of a checkpoint of the default model after
N iterations, with the loss history one float64 per iteration (as before ``metrics.LossHistory``)
and as ``LossHistory`` keeps it (at most 2^16 entries), and with the run's records (one per
validation, kept in the checkpoint), against the training time between two checkpoints
(``--checkpoint-every`` 5000 iterations of the default model, timed in the same run).

    python benchmarks/long_run.py                   # 1.8, 18 and 72 million iterations
    python benchmarks/long_run.py --iterations 1e9

Medians of 5 writes each, alternating, into a temporary directory; then the time
``LossHistory.extend`` takes per million iterations given in a run's calls (blocks of 1,310
iterations, a numba call of the default model), at strides 1 to 8,192; then a checkpoint with
1,000 to 64,000 records (``--records``; 14,400 are 72 million iterations at the default
cadence): its ``Checkpoint.of`` (as the trainer makes it: ``views=True``) and write, medians of
5, the records a plain list (each save encodes every record, as the trainer's did before
``checkpoint.Records``) and, alternating with it, the trainer's ``Records`` with one record
added since the save before (as at the default cadence), and that ``Records``' first save (a
resumed run's, which encodes them all).
"""

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import describe  # noqa: E402
from fastrnn import CharRNN, Vocab, checkpoint  # noqa: E402
from fastrnn.checkpoint import Checkpoint, Records  # noqa: E402
from fastrnn.config import CADENCE, LOSS_ENTRIES  # noqa: E402
from fastrnn.metrics import LossHistory  # noqa: E402

BLOCK = 1310  # iterations of one numba call of the default model (32,768 characters / 25)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=float, nargs="+", default=[1.8e6, 18e6, 72e6])
    parser.add_argument("--records", type=int, nargs="+", default=[1000, 16000, 64000])
    args = parser.parse_args()
    print(describe.header(__file__) + "\n")
    text = describe.SHARED_TEXT.read_text(encoding="utf-8")
    vocab = Vocab.from_text(text)
    data = vocab.encode(text[:len(text) * 9 // 10])
    model = CharRNN(len(vocab))
    model.train(data, BLOCK)  # (compiled)
    every = CADENCE["checkpoint_every"]
    times = []
    for _ in range(5):
        start = time.perf_counter()
        model.train(data, every)
        times.append(time.perf_counter() - start)
    between = statistics.median(times)
    print(f"the default model: {every:,} iterations (one --checkpoint-every) in {between:.3f} s, "
          f"{every / between:,.0f} iterations/s (median of 5)\n")
    rng = np.random.default_rng(0)
    print("| iterations | history | entries | file | checkpoint write | share of the training "
          "between two |")
    print("|---:|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in map(int, args.iterations):
            losses = rng.random(n) * 60
            history = LossHistory()
            history.extend(losses)
            kinds = {"one per iteration": losses, "LossHistory": history.entries()}
            runs = {kind: {"iteration": n, **({"loss_stride": history.stride}
                                               if kind == "LossHistory" else {})}
                    for kind in kinds}
            spent = {kind: [] for kind in kinds}
            for _ in range(5):
                for kind, entries in kinds.items():
                    ckpt = Checkpoint.of(model, vocab, entries, runs[kind], views=True)
                    path = Path(tmp) / f"{len(entries)}.npz"  # (each its own: a write
                    # over the other's would pay for freeing its blocks)
                    start = time.perf_counter()
                    checkpoint.save(path, ckpt)
                    spent[kind].append(time.perf_counter() - start)
                    size = os.path.getsize(path)
                    spent[kind + " size"] = size
            for kind, entries in kinds.items():
                t = statistics.median(spent[kind])
                print(f"| {n:,} | {kind} | {len(entries):,} | {spent[kind + ' size'] / 2**20:.1f}"
                      f" MiB | {t:.3f} s | {t / (t + between):.0%} |")
    losses = rng.random(BLOCK * 800) * 60
    print(f"\nLossHistory.extend, {len(losses):,} iterations in calls of {BLOCK:,}, from a history"
          f" of LOSS_ENTRIES x stride iterations (median of 5):\n")
    print("| stride | seconds per million iterations |\n|---:|---:|")
    for stride in (1, 128, 1024, 8192):
        spent = []
        for _ in range(5):
            n = LOSS_ENTRIES * stride if stride > 1 else 0
            history = LossHistory(np.zeros(n // stride), n, stride)
            start = time.perf_counter()
            for i in range(0, len(losses), BLOCK):
                history.extend(losses[i:i + BLOCK])
            spent.append(time.perf_counter() - start)
        print(f"| {stride:,}{' (from an empty history)' if stride == 1 else ''} | "
              f"{statistics.median(spent) / len(losses) * 1e6:.4f} |")
    record = {"iteration": 5000, "epoch": 0.1398, "chars": 125000, "train_loss": 1.93,
              "train_bpc": 2.78, "val_loss": 1.98, "val_bpc": 2.86, "val_streams": 1,
              "learning_rate": 0.1, "train_seconds": 0.8, "wall_seconds": 2.4,
              "chars_per_s": 160000.0}  # (as metrics.py's docstring shows one)
    print("\n| records | a save, a plain list | a save, Records (one new) | Records' first save "
          "| file | share of the training between two, list / Records |\n"
          "|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "records.npz"
        for n in args.records:
            made = [dict(record, iteration=5000 * (i + 1), wall_seconds=0.8 * i)
                    for i in range(n + 5)]
            stride = LossHistory.stride_for(5000 * n)
            losses = np.zeros(LossHistory.count(5000 * n, stride))

            def save(records):  # (Checkpoint.of and the write, as the trainer's _save)
                start = time.perf_counter()
                run = {"iteration": records[-1]["iteration"], "metrics": records,
                       "loss_stride": stride}
                ckpt = Checkpoint.of(model, vocab, [], run, views=True)
                checkpoint.save(path, dataclasses.replace(ckpt, losses=losses))
                return time.perf_counter() - start

            kept = Records(made[:n])
            first = save(kept)
            plain, trainers = [], []
            for i in range(5):
                plain.append(save(made[:n + i]))
                kept.append(made[n + i])
                trainers.append(save(kept))
            a, b = statistics.median(plain), statistics.median(trainers)
            print(f"| {n:,} | {a:.3f} s | {b:.3f} s | {first:.3f} s | "
                  f"{os.path.getsize(path) / 2**20:.1f} MiB | "
                  f"{a / (a + between):.0%} / {b / (b + between):.0%} |")


if __name__ == "__main__":
    main()
