"""Per-call cost of the drop-in functions, as min-char-rnn's own Python loop calls them.

Times 3000 ``lossFun`` + ``adagrad`` steps (H=100, V=65, T=25, float64) after 200 warm-up steps
and prints, after the command line and the machine (``describe.header``), microseconds per
step. To compare two versions, run it against each source tree in
turn, several times (the machine is noisy), and compare the medians pair by pair:

    python benchmarks/dropin_overhead.py [SOURCE_DIR]     # default: the installed fastrnn
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import describe  # noqa: E402  (imports no fastrnn: SOURCE_DIR's is the one timed)
del sys.path[0]

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("source", nargs="?", metavar="SOURCE_DIR",
                    help="a source tree whose fastrnn to time (default: the installed one)")
ARGS = parser.parse_args()
if ARGS.source:
    if not (Path(ARGS.source) / "fastrnn" / "__init__.py").is_file():
        parser.error(f"{ARGS.source} is not a source tree (no fastrnn/__init__.py)")
    sys.path.insert(0, ARGS.source)

import fastrnn  # noqa: E402

H, V, T, STEPS = 100, 65, 25, 3000


def main():
    print(describe.header(__file__), flush=True)
    params = list(fastrnn.init_params(H, V, 0))
    mems = [np.zeros_like(p) for p in params]
    inputs, targets = list(np.arange(T) % V), list((np.arange(T) + 1) % V)
    h = np.zeros((H, 1))

    def step():
        _, *grads, _ = fastrnn.lossFun(inputs, targets, h, *params)
        fastrnn.adagrad(params, grads, mems, 0.1)

    for _ in range(200):
        step()
    start = time.perf_counter()
    for _ in range(STEPS):
        step()
    per_step = (time.perf_counter() - start) / STEPS * 1e6
    print(f"{fastrnn.__file__}: {per_step:.1f} us per lossFun + adagrad")


if __name__ == "__main__":
    main()
