"""fastrnn's cells (rnn, lstm, gru) against PyTorch's on the CPU: the same model, trained side by
side in one run (PyTorch is an optional peer: ``pip install torch``).

    python benchmarks/cells_vs_torch.py      # rnn, lstm, gru; B,H,threads = 1,256,1 and 32,256,2
    python benchmarks/cells_vs_torch.py --cells lstm gru --sizes 32,512,2 --chunks 20 --repeats 7
    python benchmarks/cells_vs_torch.py --backend numpy --chunks 2 --repeats 2 --sizes 2,16,1
    python benchmarks/cells_vs_torch.py --cells lstm --sizes 1,256,1 --tile-rows 2  # OpenBLAS

The third one is a dry run of a few seconds, on fastrnn's NumPy oracle; the last times one
stream (B = 1) with OpenBLAS's products in place of the tile kernel's.

The setting, the same for both: tinyshakespeare (``../shared/data/tinyshakespeare.txt`` from the
repository root, or ``--text``; the whole file, V = 65), T = 50 steps per chunk, float32, Adam
(lr 0.002, PyTorch's betas and eps, which fastrnn's ``adam`` uses), gradients clipped to
[-5, 5] by value, the cross-entropy summed over steps and streams. The B streams read the text
contiguously as fastrnn does (``reference.train``): the text is cut into B equal pieces, a chunk
is T steps of every stream, the state is carried from chunk to chunk (PyTorch's detached), and
when a chunk would pass the end of a piece every stream goes back to offset 0 with a zero state.

fastrnn: ``CharRNN(cell=..., num_layers=..., backend=--backend, batch_size=B, threads=threads,
optimizer="adam", dtype="float32")``, one ``train(ids, chunks)`` call per timing. PyTorch:
``nn.RNN(nonlinearity="tanh")`` / ``nn.LSTM`` / ``nn.GRU`` (sequence-first) on one-hot inputs,
``nn.Linear(H, V)``, ``cross_entropy(reduction="sum")``, ``backward``,
``clip_grad_value_(params, 5)``, ``torch.optim.Adam``, under ``torch.set_num_threads(threads)``.
Its weights are fastrnn's initial ones (``Spec.init``, seed 0) and its second bias ``b_hh`` is
held at zero (gru: except its last H values, b_hn, which are fastrnn's ``bhn``), so both train
the same model; before timing, the losses of the first two chunks (before and after one update)
of the two are printed side by side (that call is also fastrnn's compilation), and the table's
"same model" column says "no" where they differ by more than CHECK_RTOL (1e-4) or are not
finite: the case is still timed, but it does not compare the same computation, and the script
exits with status 1 after the table. The text must hold B streams of T + 1 characters for
every B of ``--sizes`` (the script says so otherwise).

Timing, per case: that check, then a warm-up call of ``--chunks`` chunks of each, then
``--repeats`` rounds, each timing one call of ``--chunks`` chunks of fastrnn and then of PyTorch
(alternating: the machine is shared and noisy). Reported: characters per second,
B*T*chunks / seconds, as the median (and the min and max) over the rounds, and the ratio of the
medians fastrnn / PyTorch. Both run under a BLAS limit of ``threads`` (threadpoolctl); fastrnn's
numba backend takes one BLAS thread per work unit itself, and NUMBA_NUM_THREADS must be at
least the largest ``threads`` (the script refuses otherwise).

FLOPs per character, the same count for both (so the GFLOP/s ratio is the chars/s ratio), for a
cell of G gates (rnn 1, lstm 4, gru 3), L layers of H units and V characters:

    flops/char = 6 G H^2 (2L - 1) + 6 V H

A product of a (G*H x I) weight with a vector costs 2 G H I forward and 4 G H I backward (the
input's gradient and the weight's gradient). Counted: the recurrent product (G*H x H) of every
layer, the input product (G*H x H) of layers 1..L-1 and the output layer (V x H). Not counted:
layer 0's input product, a column gather of the one-hot character in fastrnn (PyTorch computes
it as a dense (T*B x V) x (V x G*H) product, which this count does not credit), the element-wise
gate arithmetic, the softmax and the optimizer. For one rnn layer this is the 6H^2 + 6VH of
RESULTS.md. "% peak" divides GFLOP/s by the machine's float32 matrix-product rate measured in
the same run with the same thread count: the faster of ``np.matmul`` of two 1024 x 1024 float32
matrices under threadpoolctl's BLAS limit and fastrnn's tile kernel on the same product (its
rows cut among the threads), each the best of 5 after a warm-up (``matmul_peaks``).

A case that fastrnn's backend refuses (a cell or layer count its kernels do not run yet, or any
error in its first call) is reported as "not available: <the error>" and the run goes on;
PyTorch's side of that case is still timed.
"""

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastrnn import CharRNN, cells, corpus, interop, reference  # noqa: E402
from fastrnn.backends import BACKENDS  # noqa: E402
from fastrnn.config import CLIP  # noqa: E402
from fastrnn.kernels import tiles  # noqa: E402
from fastrnn.spec import Spec  # noqa: E402
from benchmarks import describe, tile_product  # noqa: E402

TEXT = describe.SHARED_TEXT
T, LR, DTYPE, SEED = 50, 0.002, "float32", 0
CHECK_RTOL = 1e-4  # float32 losses of the same chunk from the same weights agree to ~1e-7


def flops_per_char(cell, V, H, num_layers):
    """The docstring's count: 6 G H^2 (2L - 1) + 6 V H."""
    return 6 * cells.get(cell).GATES * H * H * (2 * num_layers - 1) + 6 * V * H


def import_torch(script):
    """PyTorch, or a clear exit: it is an optional peer, never a dependency of fastrnn."""
    try:
        import torch
    except ImportError as e:
        raise SystemExit(f"{script} compares fastrnn with PyTorch, which is not installed ({e}): "
                         f"pip install torch") from None
    return torch


# ---------------------------------------------------------------- PyTorch


class Streams:
    """fastrnn's walk through ``ids`` for B streams (``reference.train``): the text cut into B
    equal contiguous pieces, each chunk T steps of every stream; when a chunk would pass the end
    of a piece (``reference.wraps``) every stream goes back to offset 0 and the state is reset."""

    def __init__(self, torch, ids, B, T):
        self.ids = torch.from_numpy(np.asarray(ids, np.int64))
        self.starts = torch.from_numpy(reference.stream_starts(len(ids), B).astype(np.int64))
        self.steps = torch.arange(T + 1)
        self.piece, self.T, self.position = len(ids) // B, T, 0

    def next(self):
        """(the chunk's ids (T+1, B): inputs [:-1], targets [1:]; whether the state resets)."""
        wrapped = reference.wraps(self.position, self.T, self.piece)
        if wrapped:
            self.position = 0
        window = self.ids[self.starts[None, :] + self.position + self.steps[:, None]]
        self.position += self.T
        return window, wrapped


class TorchCharModel:
    """A character model in PyTorch: ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (sequence-first) on
    one-hot inputs, ``nn.Linear(H, V)``, summed cross-entropy, gradients clipped by value, Adam.

    ``params``: fastrnn's weights (``spec.Weights``) to start from, loaded by
    ``fastrnn.interop``, with the second bias held at zero (gru: but for b_hn = ``bhn``),
    which makes it fastrnn's model; None keeps
    PyTorch's own initialisation and trains both biases (PyTorch's model as its users run it).
    ``dropout``: between layers, ``nn.LSTM``'s argument (active in ``train()`` mode only).
    """

    def __init__(self, torch, cell, V, H, num_layers, B, learning_rate, dropout=0.0,
                 params=None, clip=CLIP):
        nn = torch.nn
        kind = {"rnn": lambda **kw: nn.RNN(nonlinearity="tanh", **kw), "lstm": nn.LSTM,
                "gru": nn.GRU}[cell]
        self.torch, self.cell, self.V, self.clip = torch, cell, V, clip
        self.rnn = kind(input_size=V, hidden_size=H, num_layers=num_layers, dropout=dropout)
        self.out = nn.Linear(H, V)
        if params is not None:
            self._load(params, H)
        self.params = [p for m in (self.rnn, self.out) for p in m.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=learning_rate)
        self.state = [torch.zeros(num_layers, B, H) for _ in cells.get(cell).STATES]

    def _load(self, params, H):
        torch = self.torch
        for module, state in zip((self.rnn, self.out), interop.torch_state_dicts(params)):
            module.load_state_dict({k: torch.from_numpy(np.asarray(a, np.float32))
                                    for k, a in state.items()})
        for name, b_hh in self.rnn.named_parameters():
            if not name.startswith("bias_hh"):
                continue
            if self.cell == "gru":  # b_hn is fastrnn's bhn; b_hr, b_hz stay 0
                b_hh.register_hook(lambda g: torch.cat([torch.zeros_like(g[:2 * H]),
                                                        g[2 * H:]]))
            else:
                b_hh.requires_grad_(False)

    def forward(self, inputs, state):
        """(logits (T, B, V), new state list) for input ids (T, B) from ``state``."""
        x = self.torch.nn.functional.one_hot(inputs, self.V).float()          # (T, B, V)
        hs, new = self.rnn(x, tuple(state) if self.cell == "lstm" else state[0])
        return self.out(hs), list(new) if self.cell == "lstm" else [new]

    def train_chunk(self, window, wrapped):
        """One update from one chunk (``Streams.next``); its summed loss (a 0-d tensor)."""
        torch = self.torch
        if wrapped:
            self.state = [torch.zeros_like(s) for s in self.state]
        logits, state = self.forward(window[:-1], self.state)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, self.V),
                                                 window[1:].reshape(-1), reduction="sum")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_value_(self.params, self.clip)
        self.optimizer.step()
        self.state = [s.detach() for s in state]
        return loss.detach()

    def train(self, streams, n):
        """``n`` chunks; their losses as a list of floats."""
        return self.torch.stack([self.train_chunk(*streams.next()) for _ in range(n)]).tolist()


# ---------------------------------------------------------------- measuring


def matmul_peaks(counts, n=1024, tries=5):
    """{threads: {"np.matmul": GFLOP/s, "tiles": GFLOP/s}} for each thread count in ``counts``:
    a float32 (n x n x n) product, best of ``tries`` after a warm-up, by NumPy's BLAS under
    threadpoolctl's limit and by fastrnn's tile micro-kernel (``kernels/tiles.py``, the rows
    cut among the threads); the faster is taken as the machine's peak. (NumPy's OpenBLAS runs
    32-byte vectors on some AVX-512 CPUs, an AMD EPYC Zen 5 among them: half of what the
    machine does.) The tiles are timed first, at every count: OpenBLAS's threads keep spinning
    for a while after a product, and took one of two cores from the tiles' second thread."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    c = np.empty_like(a)
    packed = tile_product.packed_as(a, False, np.float32)
    seconds = {threads: {} for threads in counts}
    for threads in counts:
        rows = [slice(k * n // threads, (k + 1) * n // threads) for k in range(threads)]
        with ThreadPoolExecutor(threads) as pool:
            def run():
                list(pool.map(lambda r: _tile_product(a[r], packed, c[r]), rows))
            run()
            seconds[threads]["tiles"] = min(_seconds(run) for _ in range(tries))
    for threads in counts:
        with threadpool_limits(threads, user_api="blas"):
            np.matmul(a, a, out=c)
            seconds[threads]["np.matmul"] = min(_seconds(lambda: np.matmul(a, a, out=c))
                                                for _ in range(tries))
    return {threads: {name: 2 * n ** 3 / s / 1e9 for name, s in sorted(times.items())}
            for threads, times in seconds.items()}


@njit(nogil=True)
def _tile_product(A, packed, C):
    tiles.product(A, packed, C, False)


def _seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fastrnn_model(cell, V, B, H, num_layers, threads, backend):
    return CharRNN(V, hidden_size=H, seq_length=T, learning_rate=LR, dtype=DTYPE, seed=SEED,
                   backend=backend, batch_size=B, threads=threads, optimizer="adam", cell=cell,
                   num_layers=num_layers)


def same_model(check):
    """Whether fastrnn's and PyTorch's first two chunk losses agree (``run_case``'s check)."""
    f, t = (np.asarray(v, np.float64) for v in check)
    return bool(np.all(np.isfinite(f)) and np.all(np.abs(f - t) <= CHECK_RTOL * np.abs(t)))


def first_line(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def run_case(torch, ids, V, cell, B, H, threads, args):
    """Check, warm up and time one case; a dict of its results."""
    L, chunks = args.num_layers, args.chunks
    torch.set_num_threads(threads)
    row = dict(cell=cell, L=L, B=B, H=H, threads=threads, fastrnn=None, torch=None,
               error=None, check=None)
    spec = Spec(cell, V, H, L)
    tm = TorchCharModel(torch, cell, V, H, L, B, LR, params=spec.init(SEED, DTYPE))
    streams = Streams(torch, ids, B, T)
    with threadpool_limits(threads, user_api="blas"):
        try:
            fm = fastrnn_model(cell, V, B, H, L, threads, args.backend)
            f_check = list(fm.train(ids, 2))  # compiles fastrnn's kernels
            fm.train(ids, chunks)              # warm-up
        except Exception as e:  # a cell or size the backend refuses, or kernels not ready yet
            fm, row["error"] = None, first_line(e)
        t_check = tm.train(streams, 2)
        tm.train(streams, chunks)
        if fm is not None:
            row["check"] = (f_check, t_check)
        f_times, t_times = [], []
        for _ in range(args.repeats):
            if fm is not None:
                f_times.append(_seconds(lambda: fm.train(ids, chunks)))
            t_times.append(_seconds(lambda: tm.train(streams, chunks)))
    chars = B * T * chunks
    for side, times in (("fastrnn", f_times), ("torch", t_times)):
        if times:
            row[side] = [chars / statistics.median(times), chars / max(times), chars / min(times)]
    return row


def cell_text(rates):
    median, low, high = rates
    return f"{median:,.0f} ({low:,.0f}-{high:,.0f})"


def table(rows, V, peaks):
    lines = ["| cell | L | B | H | threads | fastrnn chars/s median (min-max) | "
             "PyTorch chars/s median (min-max) | fastrnn / PyTorch | fastrnn GFLOP/s | "
             "PyTorch GFLOP/s | fastrnn % peak | PyTorch % peak | same model |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        flops, peak = flops_per_char(r["cell"], V, r["H"], r["L"]), peaks[r["threads"]]
        t_rate = r["torch"][0]
        t_g = t_rate * flops / 1e9
        if r["fastrnn"] is None:
            error = r["error"].replace("|", "\\|")  # a Markdown cell
            f_text, ratio, f_g, f_peak = f"not available: {error}", "-", "-", "-"
            same = "-"
        else:
            f_rate = r["fastrnn"][0]
            f_text, ratio = cell_text(r["fastrnn"]), f"**{f_rate / t_rate:.2f}**"
            f_g = f"{f_rate * flops / 1e9:.1f}"
            f_peak = f"{100 * f_rate * flops / 1e9 / peak:.0f}"
            same = "yes" if same_model(r["check"]) else "**no**"
        lines.append(f"| {r['cell']} | {r['L']} | {r['B']} | {r['H']} | {r['threads']} | "
                     f"{f_text} | {cell_text(r['torch'])} | {ratio} | {f_g} | {t_g:.1f} | "
                     f"{f_peak} | {100 * t_g / peak:.0f} | {same} |")
    return "\n".join(lines)


parse_size = describe.sizes("B,H,threads")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", nargs="+", choices=sorted(cells.CELLS),
                   default=["rnn", "lstm", "gru"])
    p.add_argument("--sizes", nargs="+", type=parse_size, default=[(1, 256, 1), (32, 256, 2)],
                   metavar="B,H,THREADS", help="streams, hidden units, threads (both sides)")
    p.add_argument("--num-layers", type=describe.positive, default=1)
    p.add_argument("--backend", choices=BACKENDS, default="numba", help="fastrnn's backend")
    p.add_argument("--chunks", type=describe.positive, default=10, help="chunks per timed call")
    p.add_argument("--repeats", type=describe.positive, default=5, help="timed calls of each side")
    p.add_argument("--text", type=Path, default=TEXT, help="training text (default: %(default)s)")
    p.add_argument("--tile-rows", type=describe.positive, metavar="N",
                   help="numba: units of N streams or more use the tile kernel, smaller ones "
                        "OpenBLAS (default: config.TILE_ROWS)")
    args = p.parse_args(argv)
    if args.tile_rows is not None:
        from fastrnn.kernels import batch
        batch.tile_rows = args.tile_rows
    torch = import_torch("cells_vs_torch.py")
    import numba
    most = max(threads for _, _, threads in args.sizes)
    if args.backend == "numba" and most > numba.config.NUMBA_NUM_THREADS:
        raise SystemExit(f"--sizes asks for {most} threads but Numba has "
                         f"NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}: run with "
                         f"NUMBA_NUM_THREADS={most} (or more)")
    try:
        text = corpus.load(args.text, val_fraction=0)
    except corpus.CorpusError as e:
        raise SystemExit(str(e)) from None
    ids, V = text.train, len(text.vocab.chars)
    most = max(B for B, _, _ in args.sizes)
    if len(ids) < most * (T + 1):
        raise SystemExit(f"cells_vs_torch.py: {args.text} has {len(ids):,} characters, too few "
                         f"for B = {most} streams of T + 1 = {T + 1} (at least "
                         f"{most * (T + 1):,})")
    print(describe.header(__file__, argv, torch))
    print(f"text: {args.text} ({len(ids):,} characters, V = {V}); T = {T}, {DTYPE}, Adam lr "
          f"{LR}, clip {CLIP:g}; fastrnn backend {args.backend!r}; {args.chunks} chunks per "
          f"call, {args.repeats} timed calls each", flush=True)
    measured = matmul_peaks(sorted({s[2] for s in args.sizes}))
    peaks = {threads: max(m.values()) for threads, m in measured.items()}
    print("float32 matmul peak (1024^3, best of 5, the faster of np.matmul and fastrnn's tile "
          "kernel): " + ", ".join(
              f"{peaks[threads]:.0f} GFLOP/s on {threads} thread{'s' * (threads > 1)} "
              f"(np.matmul {m['np.matmul']:.0f}, tiles {m['tiles']:.0f})"
              for threads, m in measured.items()), flush=True)
    rows = []
    for B, H, threads in args.sizes:
        for cell in args.cells:
            r = run_case(torch, ids, V, cell, B, H, threads, args)
            where = f"{cell} L={args.num_layers} B={B} H={H} threads={threads}"
            if r["check"]:
                (f1, f2), (t1, t2) = r["check"]
                print(f"{where}: chunk losses from the same start: fastrnn {f1:.6f}, {f2:.6f}; "
                      f"PyTorch {t1:.6f}, {t2:.6f} (rel. differences {abs(f1 - t1) / abs(t1):.1e}, "
                      f"{abs(f2 - t2) / abs(t2):.1e})"
                      + ("" if same_model(r["check"]) else ": NOT THE SAME MODEL"), flush=True)
            else:
                print(f"{where}: fastrnn not available: {r['error']}", flush=True)
            rows.append(r)
    print()
    print(table(rows, V, peaks))
    print("\nflops/char = 6 G H^2 (2L - 1) + 6 V H (G = 1, 4, 3 for rnn, lstm, gru); "
          "% peak against the float32 matmul peak on the same thread count, this run.")
    mismatched = [f"{r['cell']} B={r['B']} H={r['H']} threads={r['threads']}" for r in rows
                  if r["check"] and not same_model(r["check"])]
    if mismatched:
        raise SystemExit(f"MISMATCH: fastrnn and PyTorch not the same model (first two chunk "
                         f"losses beyond CHECK_RTOL {CHECK_RTOL:g}): {', '.join(mismatched)}")


if __name__ == "__main__":
    main()
