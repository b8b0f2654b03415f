"""Mini-batch training speed of one source tree, for pairing two versions in turn.

    python benchmarks/batch_one.py SOURCE_DIR B H THREADS     # prints characters per second

``batch.train`` of 3 chunks (T = 50, V = 65, float32, Adagrad, DATA_SIZE random ids, so B
streams of T + 1 characters must fit in them) from SOURCE_DIR's fastrnn, the median of 9
calls after a warm-up. To compare two versions, alternate runs against each tree (the machine
is noisy) and compare pair by pair. (The batch API it calls, with the state (L, S, B, H) and
``Work(spec, B, T, dtype)``, is that of commit d09396d and later.) Standard output is the one
number, for a script to read; the command line and the machine (``describe.header``) go to
standard error.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import describe  # noqa: E402  (imports no fastrnn: SOURCE_DIR's is the one timed)
del sys.path[0]

T, V, DATA_SIZE = 50, 65, 1_000_000


def positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return int(text)


def source_dir(text):
    if not (Path(text) / "fastrnn" / "__init__.py").is_file():
        raise argparse.ArgumentTypeError(f"{text} is not a source tree (no fastrnn/__init__.py)")
    return text


parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("source", type=source_dir, metavar="SOURCE_DIR")
parser.add_argument("B", type=positive)
parser.add_argument("H", type=positive)
parser.add_argument("threads", type=positive, metavar="THREADS")
ARGS = parser.parse_args()
if DATA_SIZE < ARGS.B * (T + 1):
    raise SystemExit(f"batch_one.py: B = {ARGS.B} streams of T + 1 = {T + 1} characters need "
                     f"{ARGS.B * (T + 1):,}, more than the {DATA_SIZE:,} ids it trains on "
                     f"(B at most {DATA_SIZE // (T + 1):,})")
sys.path.insert(0, ARGS.source)

from fastrnn import optim  # noqa: E402
from fastrnn.kernels import batch  # noqa: E402
from fastrnn.spec import Spec  # noqa: E402


def main():
    print(describe.header(__file__), file=sys.stderr, flush=True)
    B, H, threads = ARGS.B, ARGS.H, ARGS.threads
    spec = Spec("rnn", V, H)
    w, g, mem = spec.init(0, np.float32), spec.zeros(np.float32), spec.zeros(np.float32)
    state = optim.get("adagrad").state([mem.flat])
    h, work = np.zeros((1, 1, B, H), np.float32), batch.Work(spec, B, T, np.float32)
    data = np.random.default_rng(0).integers(0, V, DATA_SIZE).astype(np.int64)
    losses = np.empty(3)
    position = batch.train(data, 0, h, w, g, state, 0.1, T, 0, losses, work, threads)
    times = []
    for _ in range(9):
        start = time.perf_counter()
        position = batch.train(data, position, h, w, g, state, 0.1, T, 0, losses, work, threads)
        times.append(time.perf_counter() - start)
    print(B * T * 3 / np.median(times))


if __name__ == "__main__":
    main()
