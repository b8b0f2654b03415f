"""fastrnn's CUDA backend against PyTorch's ``nn.RNN`` (cuDNN), training the same model.

    python benchmarks/cuda_vs_cudnn.py                        # the issue's two sizes, on a GPU
    python benchmarks/cuda_vs_cudnn.py --sizes 1,512,100 --chunks 20 --repeats 7 --json out.json

The model is min-char-rnn's: one-hot input, tanh recurrence, linear output, summed
cross-entropy, gradients clipped to [-5, 5], Adagrad (lr 0.1), float32, B streams of T steps
(``--sizes B,H,T``), on the bundled corpus. PyTorch runs ``nn.RNN(V, H)`` on one-hot inputs
(its second bias frozen at zero, so that the model is the same), ``nn.Linear(H, V)``,
``cross_entropy(reduction="sum")``, ``clip_grad_value_`` and min-char-rnn's Adagrad in PyTorch's
multi-tensor ops (``optim.Adagrad`` puts eps outside the square root, ``g / (sqrt(m) + eps)``,
which moves small gradients differently from min-char-rnn's ``g / sqrt(m + eps)``).
cuDNN runs twice: in strict float32, the arithmetic fastrnn does, and with TF32 tensor cores
allowed (PyTorch's default for cuDNN), which rounds products to 10-bit mantissas.

Before timing, one chunk from the same starting parameters checks that the implementations
train the same model: the loss and the updated parameters of fastrnn's CUDA backend against its
oracle-tested Numba CPU kernels, and PyTorch's against fastrnn's. Each pair "agrees" when both
relative errors (the loss's, and the norm of the parameters' difference over the norm of the
parameters) are at most CHECK_RTOL (1e-4; measured on an H200: loss 3e-8, parameters 5e-6);
a pair that does not is printed with MISMATCH, its rows say "**no**" in the "same model" column
(still timed), and the script exits with status 1 after the table.

Each timing is one ``train`` call of ``--chunks`` chunks (parameters copied to the device and
back once per call, as ``python -m fastrnn.train`` does), after warm-up, synchronised; the
median over ``--repeats`` calls is reported. fastrnn runs each form of its recurrence that fits
the size: "persistent", "tiled" and "step" (``fastrnn/kernels/cuda.py``); the one the plan
picks by default ("auto") is marked. Characters/s count B*T characters per chunk; the
model's FLOPs per character are 6 H^2 + 6 H V (forward 2H^2 + 2HV; backward Why^T dy, dWhy,
Whh^T draw, dWhh), the same count for every implementation; the float32 matrix-product peak is
measured in the same run (cuBLAS, 8192^3, TF32 off).

Without a GPU the script can still be checked end to end at tiny sizes: ``NUMBA_ENABLE_CUDASIM=1
python benchmarks/cuda_vs_cudnn.py --sizes 2,6,3 --torch-device cpu --chunks 2 --repeats 1``.
PyTorch is needed for the comparison; without it (or with a build that cannot reach
``--torch-device``), or without numba-cuda (``pip install -e ".[cuda]"``) or a GPU, the script
says so in one line and stops; ``--without-torch`` asks for fastrnn's rows
alone (its CUDA forms checked against its Numba kernels and timed; PyTorch not imported).

fastrnn is driven through its backend interface (``fastrnn.backends``): ``CharRNN`` on backends
"cuda" and "numba"; parameters are read by name (``model.params``: Wxh, Whh, bh, Why, by).
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastrnn import CharRNN, corpus  # noqa: E402
from benchmarks import describe  # noqa: E402

# fastrnn's CUDA modules (fastrnn.backends.cuda, fastrnn.kernels.cuda): imported by ``run``,
# after the arguments are parsed, so that --help works without numba-cuda
cuda_backend = ck = None

LR = 0.1
NAMES = ("Wxh", "Whh", "bh", "Why", "by")  # the model's parameters, in fastrnn's spec order
CHECK_RTOL = 1e-4  # the same-model check's bound on both relative errors (module docstring)


def model_flops_per_char(H, V):
    return 6 * H * H + 6 * H * V


def windows(ids, B, T, n, start=0):
    """fastrnn's mini-batch walk without wraps: chunk k of stream b reads
    ids[b*piece + start + k*T : ... + T + 1]; (n, T+1, B)."""
    piece = len(ids) // B
    if start + n * T + 1 >= piece:
        raise SystemExit(f"the corpus is too short for {n} chunks of {B} streams of {T} steps")
    index = (start + np.arange(n)[:, None, None] * T + np.arange(T + 1)[None, :, None]
             + (np.arange(B) * piece)[None, None, :])
    return ids[index].astype(np.int64)


# ---------------------------------------------------------------- fastrnn


def fastrnn_model(V, B, H, T, backend):
    return CharRNN(V, hidden_size=H, seq_length=T, learning_rate=LR, batch_size=B,
                   backend=backend, dtype="float32", seed=0)


def time_fastrnn(ids, V, B, H, T, chunks, repeats, sync):
    model = fastrnn_model(V, B, H, T, "cuda")
    model.train(ids, 2)  # compiles the kernels
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        model.train(ids, chunks)
        sync()
        times.append(time.perf_counter() - start)
    return times


# ---------------------------------------------------------------- PyTorch


class TorchCharRNN:
    """min-char-rnn in PyTorch; parameters copied from a fastrnn model's ``params``
    ({name: array}: Wxh (H, V), Whh (H, H), bh (H,), Why (V, H), by (V,))."""

    def __init__(self, torch, params, B, device):
        self.torch = torch
        Wxh, Whh, bh, Why, by = (torch.tensor(np.asarray(params[name], np.float32),
                                              device=device) for name in NAMES)
        H, V = Wxh.shape
        self.rnn = torch.nn.RNN(V, H, nonlinearity="tanh").to(device)
        self.out = torch.nn.Linear(H, V).to(device)
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(Wxh)
            self.rnn.weight_hh_l0.copy_(Whh)
            self.rnn.bias_ih_l0.copy_(bh.reshape(-1))
            self.rnn.bias_hh_l0.zero_()
            self.out.weight.copy_(Why)
            self.out.bias.copy_(by.reshape(-1))
        self.rnn.bias_hh_l0.requires_grad_(False)
        self.params = [self.rnn.weight_ih_l0, self.rnn.weight_hh_l0, self.rnn.bias_ih_l0,
                       self.out.weight, self.out.bias]
        self.mems = [torch.zeros_like(p) for p in self.params]
        self.h = torch.zeros(1, B, H, device=device)
        self.V = V

    def train(self, win):
        """One chunk per win[k] ((T+1, B) ids on the device); the losses, on the device."""
        torch, F = self.torch, self.torch.nn.functional
        losses = []
        for k in range(win.shape[0]):
            x = F.one_hot(win[k, :-1], self.V).float()  # (T, B, V)
            out, h = self.rnn(x, self.h)
            loss = F.cross_entropy(self.out(out).reshape(-1, self.V), win[k, 1:].reshape(-1),
                                   reduction="sum")
            for p in self.params:
                p.grad = None
            loss.backward()
            torch.nn.utils.clip_grad_value_(self.params, 5.0)
            self.adagrad([p.grad for p in self.params])
            self.h = h.detach()
            losses.append(loss.detach())
        return torch.stack(losses)

    def adagrad(self, grads):
        """m += g*g; w -= lr g / sqrt(m + 1e-8), as multi-tensor ops (like optim.Adagrad's)."""
        torch = self.torch
        with torch.no_grad():
            torch._foreach_addcmul_(self.mems, grads, grads)
            denominators = torch._foreach_add(self.mems, 1e-8)
            torch._foreach_sqrt_(denominators)
            torch._foreach_addcdiv_(self.params, grads, denominators, value=-LR)

    def weights(self):
        """{name: float64 NumPy array} in fastrnn's names and shapes (``NAMES``)."""
        return {name: p.detach().double().cpu().numpy() for name, p in zip(NAMES, (
            self.rnn.weight_ih_l0, self.rnn.weight_hh_l0, self.rnn.bias_ih_l0, self.out.weight,
            self.out.bias))}


def time_torch(torch, ids, V, B, H, T, chunks, repeats, device, tf32):
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    model = TorchCharRNN(torch, fastrnn_model(V, B, H, T, "numpy").params, B, device)
    win = torch.tensor(windows(ids, B, T, chunks), device=device)
    model.train(win[:2]).cpu()  # warm-up: cuDNN plans, allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.train(win).cpu()  # .cpu() waits for the device, like fastrnn's returned losses
        times.append(time.perf_counter() - start)
    return times


def matmul_peak(torch, device):
    """float32 (TF32 off) cuBLAS product rate, TFLOP/s: the median of 10 after a warm-up."""
    torch.backends.cuda.matmul.allow_tf32 = False
    n = 8192
    a, b = (torch.randn(n, n, device=device) for _ in range(2))
    c = a @ b
    times = []
    for _ in range(10):
        start = time.perf_counter()
        torch.matmul(a, b, out=c)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / statistics.median(times) / 1e12


# ---------------------------------------------------------------- equality check


def relative(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def agrees(errors):
    """Whether a pair's (loss, params) relative errors are both at most CHECK_RTOL (a NaN is
    not)."""
    return all(e <= CHECK_RTOL for e in errors)


def same_model_check(torch, ids, V, B, H, T, device, forms):
    """One chunk from the same parameters: {pair: (loss rel. error, params rel. error)} for
    each form of fastrnn's CUDA recurrence against its Numba CPU kernels, and PyTorch (strict
    float32) against fastrnn's CUDA backend (``torch`` None: without that pair); ``agrees``
    judges each."""
    win = windows(ids, B, T, 1)  # CharRNN walks ids from position 0: its first chunk is win[0]
    trained = {}
    for name, form in [("numba", None)] + [(f"cuda {f}", f) for f in list(forms)]:
        ck.RECURRENCE = form or "auto"
        m = fastrnn_model(V, B, H, T, "numba" if form is None else "cuda")
        try:
            loss = m.train(ids, 1)[0]
        except ValueError as e:  # a form that cannot run this size on this device
            print(f"B={B} H={H} T={T}: {form}: {e}", flush=True)
            forms.remove(form)
            continue
        trained[name] = (loss, {k: np.asarray(p, np.float64) for k, p in m.params.items()})
    ck.RECURRENCE = "auto"
    if torch is not None:
        tm = TorchCharRNN(torch, fastrnn_model(V, B, H, T, "numpy").params, B, device)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        loss = float(tm.train(torch.tensor(win, device=device)).cpu()[0])
        trained["torch"] = (loss, tm.weights())

    def compare(a, b):
        (la, pa), (lb, pb) = trained[a], trained[b]
        for name in NAMES:
            if pa[name].shape != pb[name].shape:
                raise AssertionError(f"{a} vs {b}: {name} has shapes {pa[name].shape} and "
                                     f"{pb[name].shape}")
        return relative([la], [lb]), relative(np.concatenate([pa[n].ravel() for n in NAMES]),
                                              np.concatenate([pb[n].ravel() for n in NAMES]))
    pairs = {f"fastrnn cuda {f} vs fastrnn numba": compare(f"cuda {f}", "numba") for f in forms}
    if torch is not None:
        pairs[f"torch vs fastrnn cuda {forms[0]}"] = compare("torch", f"cuda {forms[0]}")
    return pairs


def auto_form(B, H, T):
    """The form the backend's plan picks for a chunk of this size on this device."""
    from numba import cuda
    dt = np.float32
    a1, a2, a3 = (cuda.device_array((1,) * n, dt) for n in (1, 2, 3))
    x = cuda.device_array((T, B), np.int64)
    return cuda_backend._recurrence_plan("forward", B, H, dt, lambda f: (x, a2, a2, a1, a3) + (
        (1,) if f == "persistent" else ()) + (0, 1)).form


# ---------------------------------------------------------------- main


def import_torch(without_torch, device):
    """PyTorch, or None when ``--without-torch`` asks for fastrnn's rows alone (it is not
    imported then) or it is missing and that flag allows it; otherwise a clear exit, also when
    PyTorch cannot reach ``device`` (a CPU-only build asked for "cuda")."""
    if without_torch:
        return None
    try:
        import torch
    except ImportError as e:
        raise SystemExit(f"cuda_vs_cudnn.py compares fastrnn with PyTorch's cuDNN RNN, but "
                         f"PyTorch is not installed ({e}). Install it (pip install torch), or "
                         f"pass --without-torch to check and time fastrnn's CUDA backend alone.")
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"PyTorch {torch.__version__} here cannot use a CUDA device (a CPU-only "
                         f"build, or no GPU): pass --torch-device cpu for a dry run, or "
                         f"--without-torch for fastrnn's rows alone.")
    return torch


def pair_of(impl, forms):
    """The same-model check's pair that covers a table row (None: a row it does not cover)."""
    if impl.startswith("fastrnn cuda "):
        return f"{impl} vs fastrnn numba"
    if impl.endswith(" fp32") and forms:
        return f"torch vs fastrnn cuda {forms[0]}"
    return None


def run(args, argv=None):
    global cuda_backend, ck
    cuda, cuda_backend, ck = describe.cuda_modules("cuda_vs_cudnn.py")
    torch = import_torch(args.without_torch, args.torch_device)
    print(describe.header(__file__, argv, torch), flush=True)
    simulator = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    device = args.torch_device
    sync = cuda.synchronize
    data = corpus.load(ROOT / "data" / "tragedies.txt")
    ids, V = np.asarray(data.train), len(data.vocab)
    name = "Numba's CUDA simulator" if simulator else cuda.get_current_device().name
    info = {
        "gpu": name.decode() if isinstance(name, bytes) else name,
        "torch": torch.__version__ if torch is not None else None,
        "cudnn": torch.backends.cudnn.version() if torch is not None and device == "cuda"
        else None,
        "numba_cuda": version("numba-cuda"), "python": platform.python_version(), "V": V,
        "chunks": args.chunks, "repeats": args.repeats, "tile_work": [ck.TILE, ck.WORK],
        "command": describe.command(__file__)}
    if torch is not None and device == "cuda":
        info["fp32_matmul_peak_tflops"] = matmul_peak(torch, device)
    rows = []
    for B, H, T in args.sizes:
        flops = model_flops_per_char(H, V)
        forms = ["persistent", "tiled", "step"]
        check = same_model_check(torch, ids, V, B, H, T, device, forms)  # drops what can't run
        auto = auto_form(B, H, T)
        print(f"B={B} H={H} T={T}: the plan's choice ('auto'): {auto}", flush=True)
        for pair, (dl, dp) in check.items():
            print(f"B={B} H={H} T={T}: {pair}: loss rel. error {dl:.2e}, params after one "
                  f"update rel. error {dp:.2e}"
                  + ("" if agrees((dl, dp)) else f": MISMATCH (above {CHECK_RTOL:g})"),
                  flush=True)
        results = {}
        for form in forms:
            ck.RECURRENCE = form
            results[f"fastrnn cuda {form}"] = time_fastrnn(ids, V, B, H, T, args.chunks,
                                                           args.repeats, sync)
        ck.RECURRENCE = "auto"
        base = None
        if torch is not None:
            label = "cudnn" if device == "cuda" else f"torch-{device}"
            results[f"{label} fp32"] = time_torch(torch, ids, V, B, H, T, args.chunks,
                                                  args.repeats, device, False)
            if device == "cuda":  # (TF32 is a GPU's tensor-core format: nothing on the CPU)
                results[f"{label} tf32"] = time_torch(torch, ids, V, B, H, T, args.chunks,
                                                      args.repeats, device, True)
            base = statistics.median(results[f"{label} fp32"])
        for name, times in results.items():
            med = statistics.median(times)
            chars = B * T * args.chunks / med
            pair = pair_of(name, forms)
            rows.append(dict(B=B, H=H, T=T, impl=name, auto=name == f"fastrnn cuda {auto}",
                             same_model=None if pair is None else agrees(check[pair]),
                             median_s=med, chars_per_s=chars,
                             ms_per_chunk=med / args.chunks * 1e3,
                             tflops=chars * flops / 1e12,
                             vs_torch_fp32=None if base is None else base / med,
                             times=times, check=check))
    return info, rows


parse_size = describe.sizes("B,H,T")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", type=parse_size, default=[(1, 512, 100),
                                                                  (128, 1024, 100)])
    p.add_argument("--chunks", type=describe.positive, default=20,
                   help="chunks per timed train call")
    p.add_argument("--repeats", type=describe.positive, default=5,
                   help="timed calls; the median is reported")
    p.add_argument("--torch-device", default="cuda", choices=("cuda", "cpu"),
                   help="cuda, or cpu for a dry run")
    p.add_argument("--json", type=Path, help="also write every timing here")
    p.add_argument("--without-torch", action="store_true",
                   help="check and time fastrnn alone (PyTorch, installed or not, unused)")
    args = p.parse_args(argv)
    info, rows = run(args, argv)
    print(json.dumps(info))
    print("| B | H | T | implementation | chars/s | ms/chunk | model TFLOP/s | vs torch fp32 | "
          "same model |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = "-" if r["vs_torch_fp32"] is None else f"{r['vs_torch_fp32']:.2f}x"
        same = {None: "-", True: "yes", False: "**no**"}[r["same_model"]]
        print(f"| {r['B']} | {r['H']} | {r['T']} | {r['impl']}{' (auto)' if r['auto'] else ''} | "
              f"{r['chars_per_s']:,.0f} | {r['ms_per_chunk']:.3f} | {r['tflops']:.3f} | "
              f"{ratio} | {same} |")
    if args.json:
        args.json.write_text(json.dumps(dict(info=info, rows=rows), indent=1))
    mismatched = sorted({f"B={r['B']} H={r['H']} T={r['T']} {r['impl']}" for r in rows
                         if r["same_model"] is False})
    if mismatched:
        raise SystemExit(f"MISMATCH: not the same model as its reference (relative error above "
                         f"{CHECK_RTOL:g}): {', '.join(mismatched)}")


if __name__ == "__main__":
    main()
