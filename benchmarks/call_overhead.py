"""What one ``CharRNN.train(data, 1)`` call costs as the text grows: the API's per-call work
(checking the ids it reads) against the chunk itself.

    python benchmarks/call_overhead.py            # tinyshakespeare, then 95 copies (106 MB)

The default model (the tanh RNN, H = 100, T = 25, Adagrad); medians of 5 runs of 100 calls.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import describe  # noqa: E402
from fastrnn import CharRNN, Vocab  # noqa: E402

TEXT = describe.SHARED_TEXT


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    print(describe.header(__file__, argv))
    if not TEXT.is_file():
        sys.exit(f"call_overhead.py: {TEXT} is missing (the shared tinyshakespeare corpus)")
    text = TEXT.read_text(encoding="utf-8")
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    model = CharRNN(len(vocab), hidden_size=100)
    for copies in (1, 95):
        data = np.tile(ids, copies)
        model.train(data, 1)  # (compiled, and the array checked whole: its first call)
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(100):
                model.train(data, 1)
            runs.append((time.perf_counter() - start) / 100)
        print(f"{data.nbytes / 1e6:6.1f} MB of ids: train(data, 1) "
              f"{statistics.median(runs) * 1e3:.3f} ms a call")


if __name__ == "__main__":
    main()
