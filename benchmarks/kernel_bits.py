"""The exact numbers the single-stream kernels (min-char-rnn's path) compute, as digests: to
show that a change to those kernels keeps every bit, run this script in the checkout before
the change (a ``git worktree``; copy the script there if it is older) and after, and compare.

    python benchmarks/kernel_bits.py [--text PATH] [--chunks N]

For each dtype and optimizer: a CharRNN (H = 100, T = 25, min-char-rnn's model) trains
``--chunks`` chunks of the text's first 200,000 characters in calls of 30; printed is the
sha256 of its weights, optimizer state, hidden state and losses, and the last loss.
"""

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import describe  # noqa: E402
from fastrnn import CharRNN, Vocab  # noqa: E402

TEXT = describe.SHARED_TEXT
SETTINGS = (("adagrad", 0.1), ("rmsprop", 0.002), ("adam", 0.002))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--text", type=Path, default=TEXT, help=f"the corpus (default {TEXT})")
    p.add_argument("--chunks", type=int, default=300, help="chunks trained (default 300)")
    args = p.parse_args(argv)
    if not args.text.is_file():
        p.error(f"{args.text} is not a file: pass the corpus with --text PATH")
    text = args.text.read_text(encoding="utf-8")[:200_000]
    vocab = Vocab.from_text(text)
    data = vocab.encode(text)
    import fastrnn
    print(f"fastrnn from {Path(fastrnn.__file__).parent}; {args.text}: {len(text):,} characters")
    for dtype in ("float64", "float32"):
        for optimizer, rate in SETTINGS:
            model = CharRNN(len(vocab), hidden_size=100, seq_length=25, dtype=dtype,
                            optimizer=optimizer, learning_rate=rate)
            losses = np.concatenate([model.train(data, min(30, args.chunks - done))
                                     for done in range(0, args.chunks, 30)])
            digest = hashlib.sha256()
            for a in (model.weights.flat, *(s.flat for s in model.states), model.state, losses):
                digest.update(np.ascontiguousarray(a).tobytes())
            print(f"{dtype} {optimizer:8s} {digest.hexdigest()[:16]}  last loss {losses[-1]:.6f}")


if __name__ == "__main__":
    main()
