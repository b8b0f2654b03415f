"""Numba compile time: cold, then loaded from the cache, kernel by kernel.

Three measurements, each with two fresh Python processes that share an empty cache directory:
the first compiles (cold), the second loads the machine code from the cache (warm).

(a) ``default``: only the kernels the default ``python -m fastrnn.train`` run uses (float64,
    one stream, Adagrad): training, evaluation and sampling, called through ``CharRNN`` as the
    command calls them -- what a first run on a new machine waits for.
(b) every kernel of one dtype, through the numba backend: forward, backward, the unclipped
    gradients, evaluate, sample, the update of every optimizer, single-stream and mini-batch
    training with every optimizer, and the drop-in ``lossFun`` + ``adagrad``.
(c) the kernels of the README recipe's model (an LSTM of two layers with dropout, float32,
    Adam, 32 streams): training, evaluation and sampling, through ``CharRNN``.

Each process times every call (its first call: compilation or a cache load) and prints it;
the process totals, less a process that only imports the same modules, are printed too.

    python benchmarks/compile_time.py [float64|float32]     # (a), (b) for that dtype, (c)
    python benchmarks/compile_time.py --parts default        # (a) only

The processes import ``fastrnn`` from the current directory first (``python -c``): run from
another checkout (a ``git worktree`` of an older commit), this script measures that code.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import describe  # noqa: E402

PRELUDE = """
import json, sys, time
import numpy as np
import fastrnn, fastrnn.train
from fastrnn.model import CharRNN
timings = []

def timed(name, fn):
    t = time.perf_counter()
    fn()
    timings.append((name, time.perf_counter() - t))
"""

IMPORT_ONLY = PRELUDE


def run_path(options, n):
    """A process that trains, evaluates and samples ``CharRNN(V, hidden_size=H, seq_length=T,
    OPTIONS)`` as ``python -m fastrnn.train`` calls it, on ``n`` ids stored as the corpus
    stores them."""
    return PRELUDE + f"""
V, H, T = 5, 8, 4
model = CharRNN(V, hidden_size=H, seq_length=T{options})
data = (np.arange({n}) % V).astype(np.uint8)
timed("train", lambda: model.train(data, 2))
timed("evaluate", lambda: model.evaluate(data[:30], state=model.state[:, :, :1]))
timed("sample", lambda: model.sample(3, 0, rng=np.random.default_rng(0)))
print(json.dumps(timings))
"""


# (a) python -m fastrnn.train's defaults: float64, B = 1, Adagrad.
DEFAULT_PATH = run_path("", 60)

# (b) every kernel of one dtype.
EVERY_KERNEL = PRELUDE + """
from fastrnn import optim
from fastrnn.backends import get_backend
from fastrnn.backends.numba import chunk_work
from fastrnn.kernels import cpu
from fastrnn.spec import Spec
dtype = np.dtype('{dtype}')
k = get_backend('numba')
V, H, T = 5, 8, 4
spec = Spec('rnn', V, H)
w, g = spec.init(0, dtype), spec.zeros(dtype)
x = (np.arange(T, dtype=np.intp) % V)[None]
state = np.zeros((1, 1, 1, H), dtype)
data = (np.arange(60) % V).astype(np.uint8)
out = {{}}
timed("forward", lambda: out.update(f=k.forward(w, x, x, state)))
timed("backward", lambda: k.backward(w, x, x, out["f"][1], out["f"][2], g))
work = chunk_work(T, H, V, dtype)
timed("gradients (unclipped)", lambda: cpu.gradients(
    x[0], x[0], np.ascontiguousarray(out["f"][1][0, :, 0, 0]),
    np.ascontiguousarray(out["f"][2][:, 0]), w, g, work[2:]))
timed("evaluate", lambda: k.evaluate(w, data[:30], state))
timed("sample", lambda: k.sample(w, state, 0, np.random.default_rng(0).random(3), 1.0, False,
                                 np.zeros(3, np.int64)))
for name, opt in optim.OPTIMIZERS.items():
    states = [spec.zeros(dtype) for _ in opt.states]
    timed(f"update {{name}}", lambda: k.update(opt, w.flat, g.flat, [s.flat for s in states],
                                              1e-3, 1, 5.0))
for name, opt in optim.OPTIMIZERS.items():
    states = [spec.zeros(dtype) for _ in opt.states]
    timed(f"train {{name}}", lambda: k.train(w, g, opt, states, data, 0,
                                             np.zeros((1, 1, 1, H), dtype), 1e-3, T, 0,
                                             np.zeros(2), 1))
for name, opt in optim.OPTIMIZERS.items():
    states = [spec.zeros(dtype) for _ in opt.states]
    timed(f"batch train {{name}} (B=2)", lambda: k.train(w, g, opt, states, data, 0,
                                                         np.zeros((1, 1, 2, H), dtype), 1e-3, T, 0,
                                                         np.zeros(2), 2))
params = list(fastrnn.init_params(H, V, 0, dtype))
def dropin():
    loss, *grads, h = fastrnn.lossFun([0, 1], [1, 2], np.zeros((H, 1), dtype), *params)
    fastrnn.adagrad(params, grads, [np.zeros_like(p) for p in params], 0.1)
timed("drop-in lossFun + adagrad", dropin)
print(json.dumps(timings))
"""

# (c) the README recipe's kernels: LSTM, two layers, dropout, float32, Adam, 32 streams.
RECIPE = run_path(""", dtype="float32", cell="lstm", num_layers=2, dropout=0.35,
                optimizer="adam", batch_size=32""", 400)


def timed_process(code, env):
    """(seconds of the whole process, [(name, seconds of its first call)] it printed)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - start
    lines = done.stdout.strip().splitlines()
    return seconds, [tuple(t) for t in json.loads(lines[-1])]


def measure(title, code):
    """Import-only, cold and warm processes over one fresh cache; print the figures."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        baseline, _ = timed_process(IMPORT_ONLY + "print('[]')", env)
        cold, cold_calls = timed_process(code, env)
        warm, warm_calls = timed_process(code, env)
    print(f"{title}: import {baseline:.2f} s; cold (compile) {cold - baseline:.2f} s; "
          f"from cache {warm - baseline:.2f} s (process totals {cold:.2f} s / {warm:.2f} s)")
    width = max(len(name) for name, _ in cold_calls)
    for (name, c), (_, w) in zip(cold_calls, warm_calls):
        print(f"  {name:<{width}}  cold {c:7.2f} s   from cache {w:6.3f} s")
    sys.stdout.flush()
    return cold - baseline, warm - baseline


def main(argv=None):
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("dtype", nargs="?", default="float64", choices=("float64", "float32"),
                   help="the dtype of part (b) (default float64)")
    p.add_argument("--parts", nargs="+", choices=("default", "every", "recipe"),
                   default=("default", "every", "recipe"),
                   help="which measurements: (a) default, (b) every, (c) recipe (default: all)")
    args = p.parse_args(argv)
    print(describe.header(__file__, argv))
    if "default" in args.parts:
        measure("default python -m fastrnn.train path (float64, B=1, adagrad: train, evaluate, "
                "sample)", DEFAULT_PATH)
    if "every" in args.parts:
        measure(f"{args.dtype}, every kernel", EVERY_KERNEL.format(dtype=args.dtype))
    if "recipe" in args.parts:
        measure("the README recipe's model (lstm, 2 layers, dropout, float32, adam, B=32: "
                "train, evaluate, sample)", RECIPE)


if __name__ == "__main__":
    main()
