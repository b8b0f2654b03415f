"""How close --time-budget's estimate of a validation, made before any validation is timed
(``Trainer._estimate_validation``), comes to the validation's time, for a large model and a
small held-out text, where it used to be furthest off.

    python benchmarks/budget_estimate.py                       # LSTM, 2 x 1024, 2,230 characters
    python benchmarks/budget_estimate.py --hidden-size 512 --chars 20000

The estimate as the trainer makes it now, and as it was made before (compiled on a few
characters, timed on the first sixteenth of the text: one pass of 256 steps or less, on one
thread, with buffers of a new size), each on a model of its own, then the validation itself
(``model.evaluate`` of the whole text, after the estimate, as a run makes it), twice.
"""

import argparse
import contextlib
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import describe  # noqa: E402
from fastrnn import CharRNN, train  # noqa: E402


def model_of(args):
    return CharRNN(65, hidden_size=args.hidden_size, num_layers=args.num_layers, cell=args.cell,
                   optimizer="adam", learning_rate=0.002)


def now(model, val, streams):
    """The trainer's estimate, by its own method, on a stand-in for the trainer."""
    fake = types.SimpleNamespace(corpus=types.SimpleNamespace(val=val), model=model,
                                 args=types.SimpleNamespace(val_streams=streams), iteration=0)
    fake._evaluate_text = lambda text, state, progress=None: train.Trainer._evaluate_text(
        fake, text, state, progress)
    fake._compiling = lambda kernels: contextlib.nullcontext()
    fake._scaled_time = lambda *a: train.Trainer._scaled_time(fake, *a)
    return train.Trainer._estimate_validation(fake)


def before(model, val, streams):
    """The estimate as made before: compiled on 2 x streams + 1 characters, timed on a
    sixteenth, scaled."""
    state = model.first_stream_state()
    model.evaluate(val[:2 * streams + 1], state=state, streams=streams)
    part = val[:max(2, len(val) // 16)]
    start = time.perf_counter()
    model.evaluate(part, state=state, streams=streams)
    return (time.perf_counter() - start) * (len(val) - 1) / (len(part) - 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", default="lstm", choices=["rnn", "lstm", "gru"])
    parser.add_argument("--hidden-size", type=describe.positive, default=1024)
    parser.add_argument("--num-layers", type=describe.positive, default=2)
    parser.add_argument("--chars", type=describe.positive, default=2230)
    parser.add_argument("--streams", type=describe.positive, default=1)
    args = parser.parse_args()
    print(describe.header(__file__) + "\n")
    val = np.random.default_rng(0).integers(0, 65, args.chars)
    old = before(model_of(args), val, args.streams)
    model = model_of(args)
    new = now(model, val, args.streams)
    state = model.first_stream_state()
    took = []
    for _ in range(2):
        start = time.perf_counter()
        model.evaluate(val, state=state, streams=args.streams)
        took.append(time.perf_counter() - start)
    print(f"{args.cell}, {args.num_layers} x {args.hidden_size}, {args.chars:,} held-out "
          f"characters, {args.streams} stream(s): the validation {took[0]:.2f} s (again "
          f"{took[1]:.2f} s); estimated now {new:.2f} s ({new / took[0]:.2f}x), before "
          f"{old:.2f} s ({old / took[0]:.2f}x)")


if __name__ == "__main__":
    main()
