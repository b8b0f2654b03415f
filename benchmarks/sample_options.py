"""Sampling speed with top-k / top-p at a large vocabulary (a CJK or byte-level corpus has
thousands of characters), against plain sampling in the same run.

    python benchmarks/sample_options.py                    # V = 3004, H = 100, numba
    python benchmarks/sample_options.py --vocab 65 --backend numpy

Prints, for each option set, the median of ``--repeats`` calls of ``--length`` characters (an
untrained model: its near-uniform probabilities make top-p keep most of the vocabulary, the
costly case), in ms a character and as a ratio to plain sampling, and a checksum of the ids
drawn, which two versions of fastrnn compare to show they draw the same text.
"""

import argparse
import hashlib
import statistics
import time

import numpy as np

from fastrnn import CharRNN

OPTIONS = [{}, {"top_k": 40}, {"top_k": 2000}, {"top_p": 0.9}, {"top_p": 0.5}]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", type=int, default=3004)
    parser.add_argument("--hidden-size", type=int, default=100)
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default="numba", choices=["numba", "numpy"])
    args = parser.parse_args(argv)
    model = CharRNN(args.vocab, hidden_size=args.hidden_size, seed=1, backend=args.backend)
    print(f"V = {args.vocab}, H = {args.hidden_size}, {args.backend}, {args.length} characters "
          f"a call, median of {args.repeats}")
    plain = None
    for options in OPTIONS:
        if "top_k" in options and options["top_k"] >= args.vocab:
            continue
        model.sample(2, 0, rng=np.random.default_rng(0), **options)  # (compiled here)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            ids, _ = model.sample(args.length, 0, rng=np.random.default_rng(0), **options)
            times.append(time.perf_counter() - start)
        ms = statistics.median(times) / args.length * 1e3
        plain = plain or ms
        digest = hashlib.sha256(np.asarray(ids, np.int64).tobytes()).hexdigest()[:12]
        name = ", ".join(f"{k}={v}" for k, v in options.items()) or "plain"
        print(f"{name:>14}: {ms:8.3f} ms/char  {ms / plain:6.1f}x plain  ids {digest}")


if __name__ == "__main__":
    main()
