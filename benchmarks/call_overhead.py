"""What one ``CharRNN.train(data, 1)`` call costs beyond its chunk: the API's per-call work
(checking the ids it reads, the weights and the optimizer's state) against the chunk itself.

    python benchmarks/call_overhead.py            # tinyshakespeare, then 95 copies (106 MB)

First the default model (the tanh RNN, H = 100, T = 25, Adagrad) as the text grows: medians
of 5 runs of 100 calls. Then, for the default model and an LSTM (H = 256, T = 50, Adam,
float32), a call of one chunk against a chunk of a call of 20, alternating, medians of 7 runs
(the difference is what a call adds), and the check of the weights and the optimizer's state
that opens every call (``CharRNN._checked_values``), timed alone right after a chunk, as a call
meets the buffers (medians of 9). To compare two trees, run the script of one with the other's
package: ``PYTHONPATH=OTHER python benchmarks/call_overhead.py``.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if os.environ.get("PYTHONPATH"):  # (after its entries: another tree's package may be timed)
    sys.path.append(str(ROOT))
else:
    sys.path.insert(0, str(ROOT))
from benchmarks import describe  # noqa: E402
import fastrnn  # noqa: E402
from fastrnn import CharRNN, Vocab  # noqa: E402

TEXT = describe.SHARED_TEXT
MODELS = {"default model (tanh, H = 100, Adagrad, float64)": dict(hidden_size=100),
          "LSTM (H = 256, T = 50, Adam, float32)": dict(hidden_size=256, seq_length=50,
                                                        cell="lstm", optimizer="adam",
                                                        dtype="float32")}


def per_chunk(model, data, chunks, calls):
    """Seconds a chunk, over ``calls`` calls of ``chunks`` chunks."""
    start = time.perf_counter()
    for _ in range(calls):
        model.train(data, chunks)
    return (time.perf_counter() - start) / (calls * chunks)


def check_after_a_chunk(model, data):
    """Seconds of the check of the model's weights and optimizer state that opens a training
    call, timed right after a chunk."""
    model.train(data, 1)
    start = time.perf_counter()
    model._checked_values()
    return time.perf_counter() - start


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    print(describe.header(__file__, argv))
    print(f"fastrnn from {Path(fastrnn.__file__).parent}")
    if not TEXT.is_file():
        sys.exit(f"call_overhead.py: {TEXT} is missing (the shared tinyshakespeare corpus)")
    text = TEXT.read_text(encoding="utf-8")
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    model = CharRNN(len(vocab), hidden_size=100)
    for copies in (1, 95):
        data = np.tile(ids, copies)
        model.train(data, 1)  # (compiled, and the array checked whole: its first call)
        runs = [per_chunk(model, data, 1, 100) for _ in range(5)]
        print(f"{data.nbytes / 1e6:6.1f} MB of ids: train(data, 1) "
              f"{statistics.median(runs) * 1e3:.3f} ms a call")
    for name, kwargs in MODELS.items():
        model = CharRNN(len(vocab), **kwargs)
        model.train(ids, 20)  # (compiled; the weights past their first steps)
        one, many, check = [], [], []
        for _ in range(7):
            one.append(per_chunk(model, ids, 1, 20))
            many.append(per_chunk(model, ids, 20, 1))
            check.append(statistics.median(check_after_a_chunk(model, ids) for _ in range(9)))
        one, many = statistics.median(one) * 1e6, statistics.median(many) * 1e6
        print(f"{name}: a call of 1 chunk {one:.0f} us, a chunk of a call of 20 {many:.0f} us "
              f"(a call adds {one - many:.0f} us); the check alone after a chunk "
              f"{statistics.median(check) * 1e6:.0f} us")


if __name__ == "__main__":
    main()
