"""PyTorch's side of a time-to-quality comparison: validation bits per character against training
time, for PyTorch's character model on tinyshakespeare (PyTorch is an optional peer).

    python benchmarks/torch_quality.py --out torch_lstm.jsonl      # lstm 2 x 256, 10 minutes
    python benchmarks/torch_quality.py --cell gru --hidden-size 512 --num-layers 2 --dropout 0.2 \\
        --batch-size 64 --threads 2 --minutes 30 --eval-seconds 120 --out torch_gru.jsonl
    python benchmarks/torch_quality.py --minutes 0.1 --hidden-size 16 --batch-size 4 --threads 1 \\
        --eval-seconds 2 --out /tmp/dry.jsonl                      # a dry run

The data is fastrnn's: ``fastrnn.corpus.load`` with fastrnn's defaults (the vocabulary of the
whole text, the LAST 10% held out, exactly what ``python -m fastrnn.train`` trains and
validates on). Training walks the training ids as fastrnn does (``cells_vs_torch.Streams``:
the text cut into ``--batch-size`` equal contiguous streams, chunks of ``--seq-length`` steps of
every stream, the state carried across chunks, detached, and reset when the streams go back to
offset 0). The model (``cells_vs_torch.TorchCharModel``): ``nn.LSTM`` / ``nn.GRU`` /
``nn.RNN(nonlinearity="tanh")`` on one-hot inputs with ``--dropout`` between layers (the
module's own argument), ``nn.Linear(H, V)``, cross-entropy summed over the chunk,
``clip_grad_value_(params, 5)``, ``torch.optim.Adam(lr=--learning-rate)``, float32,
``torch.set_num_threads(--threads)``. ``--init pytorch`` (the default) keeps PyTorch's own
initialisation and trains both of its biases: PyTorch's model as its users run it;
``--init fastrnn`` starts from fastrnn's initial weights (``Spec.init``, ``--seed``) with the
second bias held at zero, which is exactly fastrnn's model.

Every ``--eval-seconds`` seconds of training, and at the start and the end, the whole held-out
text is evaluated as one stream (``model.eval()``: no dropout; from a copy of the first training
stream's state, as ``python -m fastrnn.train`` validates, carried through chunks of
``--eval-chunk`` steps), predicting ``val[1:]`` from ``val[:-1]`` as ``CharRNN.evaluate`` does.
Each evaluation is one JSON line, written to ``--out`` as it happens and printed:

    {"train_minutes": 2.0, "val_bpc": 2.31, "val_loss": 1.60, "train_bpc": 2.35,
     "train_loss": 1.63, "chunks": 1234, "chars": 1974400, "eval_seconds": 3.1}

``train_minutes`` counts training alone (chunks: batching, forward, backward, clip, Adam), not
evaluation; ``val_loss`` and ``train_loss`` are nats per character, ``*_bpc`` the same over
ln 2; ``train_loss`` is the mean over the characters trained since the previous line (null on
the first). Training stops at the first chunk that ends after ``--minutes`` minutes.
``--lr-decay``/``--lr-decay-every`` and ``--anneal`` apply ``python -m fastrnn.train``'s schedule
(``fastrnn.schedule``) per chunk; the anneal starts when the last ``--anneal`` of the training
time begins, over the chunks the rest of it holds at the pace so far, and training stops at its
end.
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import describe  # noqa: E402
from benchmarks.cells_vs_torch import TEXT, Streams, TorchCharModel, import_torch  # noqa: E402
from fastrnn import cells, corpus  # noqa: E402
from fastrnn.config import DATA_DEFAULTS  # noqa: E402
from fastrnn.spec import Spec  # noqa: E402
from fastrnn.schedule import Schedule  # noqa: E402


def evaluate(torch, model, ids, chunk):
    """Summed loss (nats) of predicting ids[1:] from ids[:-1] as one stream, from a copy of the
    first training stream's state (as ``python -m fastrnn.train`` validates)."""
    ids = torch.from_numpy(np.asarray(ids, np.int64))[:, None]                  # (n + 1, 1)
    n = len(ids) - 1
    state = [s[:, :1].detach().clone() for s in model.state]
    loss = 0.0
    model.rnn.eval()
    with torch.no_grad():
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            logits, state = model.forward(ids[start:start + m], state)
            loss += torch.nn.functional.cross_entropy(
                logits.reshape(-1, model.V), ids[start + 1:start + m + 1].reshape(-1),
                reduction="sum").item()
    model.rnn.train()
    return loss


def bits(nats):
    return None if nats is None else nats / math.log(2)


def run(args, torch):
    data = corpus.load(args.text, DATA_DEFAULTS["val_fraction"], DATA_DEFAULTS["encoding"])
    V, B, T, H, L = (len(data.vocab.chars), args.batch_size, args.seq_length, args.hidden_size,
                     args.num_layers)
    if len(data.train) < B * (T + 1) or len(data.val) < 2:
        raise SystemExit(f"{args.text}: {len(data.train)} training and {len(data.val)} held-out "
                         f"characters are too few for {B} streams of {T} steps")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    params = None
    if args.init == "fastrnn":
        spec = Spec(args.cell, V, H, L)
        params = spec.init(args.seed, "float32")
    model = TorchCharModel(torch, args.cell, V, H, L, B, args.learning_rate, args.dropout,
                           params)
    streams = Streams(torch, data.train, B, T)
    print(describe.header(__file__, args.argv, torch))
    print(f"text: {args.text}: {len(data.train):,} training characters, {len(data.val):,} held "
          f"out, V = {V}; {args.cell} {L} x {H}, dropout {args.dropout:g}, B = {B}, T = {T}, "
          f"Adam lr {args.learning_rate:g}"
          + (f" x {args.lr_decay:g} every {args.lr_decay_every} chunks" if args.lr_decay
             else "") + (f", annealed over the last {args.anneal:g}" if args.anneal else "")
          + f", {args.threads} threads, init {args.init}, "
          f"{sum(p.numel() for p in model.params):,} parameters given to Adam", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("")
    trained = since_loss = 0.0
    chunks = since_chars = 0
    next_eval = 0.0
    budget = args.minutes * 60
    decay = (args.lr_decay, args.lr_decay_every) if args.lr_decay else None
    schedule = Schedule(args.learning_rate, decay)
    while True:
        if args.anneal and not schedule.anneal and trained >= (1 - args.anneal) * budget:
            # as python -m fastrnn.train's --anneal under --time-budget: over the chunks the
            # rest of the (training) time holds at the pace so far
            left = int((budget - trained) / (trained / max(chunks, 1)))
            schedule = Schedule(args.learning_rate, decay, (chunks, chunks + max(1, left)))
            print(f"annealing the rate to 0 over chunks {chunks}-{chunks + max(1, left)}")
        ended = schedule.anneal and chunks >= schedule.anneal[1]
        if trained >= next_eval or trained >= budget or ended:
            start = time.perf_counter()
            val = evaluate(torch, model, data.val, args.eval_chunk) / (len(data.val) - 1)
            train_loss = since_loss / since_chars if since_chars else None
            record = {"train_minutes": round(trained / 60, 4), "val_bpc": bits(val),
                      "val_loss": val, "train_bpc": bits(train_loss), "train_loss": train_loss,
                      "chunks": chunks, "chars": chunks * B * T,
                      "eval_seconds": round(time.perf_counter() - start, 3)}
            line = json.dumps(record)
            print(line, flush=True)
            with open(args.out, "a") as f:
                f.write(line + "\n")
            since_loss, since_chars = 0.0, 0
            next_eval = trained + args.eval_seconds
            if trained >= budget or ended:
                break
        for group in model.optimizer.param_groups:  # python -m fastrnn.train's schedule
            group["lr"] = schedule(chunks)
        start = time.perf_counter()
        loss = model.train_chunk(*streams.next()).item()
        trained += time.perf_counter() - start
        if not math.isfinite(loss):
            raise SystemExit(f"the training loss is {loss} after {chunks + 1} chunks: diverged")
        since_loss += loss
        since_chars += B * T
        chunks += 1


def positive(kind):
    def parse(text):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cell", choices=sorted(cells.CELLS), default="lstm")
    p.add_argument("--hidden-size", type=positive(int), default=256)
    p.add_argument("--num-layers", type=positive(int), default=2)
    p.add_argument("--dropout", type=float, default=0.0,
                   help="between layers (the module's dropout argument), in [0, 1)")
    p.add_argument("--batch-size", type=positive(int), default=32, help="streams B")
    p.add_argument("--seq-length", type=positive(int), default=50, help="steps T per chunk")
    p.add_argument("--learning-rate", type=positive(float), default=0.002, help="Adam's")
    p.add_argument("--lr-decay", type=positive(float),
                   help="multiply the rate by this every --lr-decay-every chunks, as "
                        "python -m fastrnn.train does (default: no decay)")
    p.add_argument("--lr-decay-every", type=positive(int), help="chunks between decays")
    p.add_argument("--anneal", type=positive(float),
                   help="decay the rate linearly to 0 over the last ANNEAL (in (0, 1]) of the "
                        "training time, as python -m fastrnn.train --anneal does under "
                        "--time-budget")
    p.add_argument("--threads", type=positive(int), default=os.cpu_count() or 1)
    p.add_argument("--minutes", type=positive(float), default=10.0,
                   help="training time, evaluation excluded")
    p.add_argument("--eval-seconds", type=positive(float), default=60.0,
                   help="seconds of training between evaluations")
    p.add_argument("--eval-chunk", type=positive(int), default=1000,
                   help="steps per forward call in evaluation (memory only)")
    p.add_argument("--init", choices=["pytorch", "fastrnn"], default="pytorch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--text", type=Path, default=TEXT, help="default: %(default)s")
    p.add_argument("--out", type=Path, default=Path("runs/torch_quality.jsonl"),
                   help="the curve, one JSON line per evaluation (default: %(default)s; runs/ "
                        "is git-ignored)")
    args = p.parse_args(argv)
    args.argv = argv  # (for the command line it prints)
    if not 0 <= args.dropout < 1:
        p.error(f"--dropout must be in [0, 1), got {args.dropout}")
    if (args.lr_decay is None) != (args.lr_decay_every is None):
        p.error("--lr-decay and --lr-decay-every go together")
    if args.lr_decay is not None and args.lr_decay > 1:
        p.error(f"--lr-decay must be in (0, 1], got {args.lr_decay}")
    if args.anneal is not None and args.anneal > 1:
        p.error(f"--anneal must be in (0, 1], got {args.anneal}")
    if args.dropout and args.num_layers < 2:
        p.error("--dropout applies between layers: it needs --num-layers >= 2")
    torch = import_torch("torch_quality.py")
    try:
        run(args, torch)
    except corpus.CorpusError as e:
        raise SystemExit(str(e)) from None


if __name__ == "__main__":
    main()
