"""python -m fastrnn.train: train a character RNN on a text file, with progress, evaluation,
checkpoints and exact resume.

    python -m fastrnn.train                                   # the bundled corpus, min-char-rnn's settings
    python -m fastrnn.train --data input.txt --iterations 200000 --out runs/mine
    python -m fastrnn.train --resume runs/mine/checkpoint.npz --iterations 400000

Writes ``checkpoint.npz`` (latest state), ``best.npz`` (lowest validation loss), ``metrics.jsonl``
and, when matplotlib is installed, ``loss.png`` into ``--out``. Exit codes: 0 done, 1 training
failed (diverged, disk error), 2 bad input, 130 interrupted (after saving a checkpoint).
"""

import dataclasses
import errno
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import (cells, checkpoint, cli, compiling, corpus as corpus_mod, files, metrics, optim,
               reference, rundir, validate)
from .backends import BACKENDS, get_backend
from .checkpoint import BEST, CHECKPOINT, Checkpoint, CheckpointError
from .config import (CADENCE, COUNT_MAX, DATA_DEFAULTS, DEFAULT_ITERATIONS, DIVERGED_LOSS,
                     DTYPES, EVAL_STEPS, FINE_TUNE_DIVISOR, GPU_DTYPE, LOSS_ENTRIES,
                     MODEL_DEFAULTS, SAMPLE_LENGTH_MAX)
from .model import ARCHITECTURE, CharRNN
from .rundir import ASIDE, METRICS, PLOT
from .schedule import PIECES, Schedule, anneal_start
from .vocab import describe

PROG = "fastrnn.train"
# sample's options, named when given to train: those that change how characters are drawn,
# and the others
DRAWING_OPTIONS = ("--temperature", "--top-k", "--top-p", "--greedy")
SAMPLING_OPTIONS = ("--prime", "--prime-file", "--num-samples")
SAMPLE_ONLY = "python -m fastrnn.sample's, which samples a checkpoint (OUT/checkpoint.npz)"


def _usual_rates():
    """Each optimizer's usual learning rate, for --help: "0.1 for adagrad (min-char-rnn's),
    0.002 for rmsprop, ...", from the registry."""
    return ", ".join(f"{o.rate:g} for {o.name}" + (
        " (min-char-rnn's)" if o.name == MODEL_DEFAULTS["optimizer"] else "")
        for o in optim.OPTIMIZERS.values())


def build_parser():
    p = cli.Parser(prog="python -m fastrnn.train",
                   description="Train a character-level language model on a text file: "
                               "min-char-rnn's tanh RNN, or LSTM and GRU cells with layers and "
                               "dropout (truncated BPTT; Adagrad, RMSprop or Adam). Defaults are "
                               "min-char-rnn's settings.",
                   elsewhere={**dict.fromkeys(SAMPLING_OPTIONS, SAMPLE_ONLY),
                              **dict.fromkeys(DRAWING_OPTIONS, SAMPLE_ONLY + ": the samples "
                                              "training prints are drawn from all the "
                                              "characters at temperature 1")})
    d = p.add_argument_group("data")
    d.add_argument("--data", type=cli.path, metavar="PATH",
                   help="text to train on, in --encoding's encoding (default: "
                        "the bundled corpus data/tragedies.txt; with --resume: the checkpoint's)")
    d.add_argument("--encoding", help=f"the text's encoding (default {DATA_DEFAULTS['encoding']}; "
                                      f"with --init-from or --resume, the one the checkpoint's "
                                      f"text was read in)")
    d.add_argument("--skip-unknown", action="store_true",
                   help="with --init-from or --resume: leave out the text's characters that "
                        "the checkpoint's vocabulary lacks, otherwise an error (a note counts "
                        "them; a resume keeps this)")
    d.add_argument("--val-fraction", type=cli.fraction, metavar="F",
                   help=f"fraction of the text held out from its end for validation, in [0, 1) "
                        f"(default {DATA_DEFAULTS['val_fraction']:g})")
    m = p.add_argument_group("model (the checkpoint's when resuming; --learning-rate, "
                             "--dropout and --grad-clip may change)")
    m.add_argument("--cell", choices=tuple(cells.CELLS),
                   help=f"the recurrent cell (default {MODEL_DEFAULTS['cell']}: min-char-rnn's "
                        f"tanh cell)")
    m.add_argument("--hidden-size", type=cli.positive_int, metavar="H",
                   help=f"hidden units (default {MODEL_DEFAULTS['hidden_size']})")
    m.add_argument("--num-layers", type=cli.positive_int, metavar="L",
                   help=f"stacked recurrent layers (default {MODEL_DEFAULTS['num_layers']})")
    m.add_argument("--dropout", type=cli.fraction, metavar="P",
                   help=f"dropout on the output of every layer but the last, in training "
                        f"(default {MODEL_DEFAULTS['dropout']:g}; needs --num-layers >= 2)")
    m.add_argument("--seq-length", type=cli.positive_int, metavar="T",
                   help=f"characters per truncated-BPTT chunk (default "
                        f"{MODEL_DEFAULTS['seq_length']})")
    m.add_argument("--learning-rate", type=cli.positive_float, metavar="LR",
                   help=f"learning rate (default: the optimizer's usual one, "
                        f"{_usual_rates()}; with --init-from, 1/{FINE_TUNE_DIVISOR} of the "
                        f"checkpoint's (a fine-tune's: of its model's before any fine-tune), "
                        f"or of the usual one of another --optimizer)")
    m.add_argument("--dtype", choices=DTYPES,
                   help=f"floating-point type (default {MODEL_DEFAULTS['dtype']}; {GPU_DTYPE} "
                        f"with --backend cuda)")
    m.add_argument("--seed", type=cli.non_negative_int,
                   help=f"seeds initialisation and samples (default {MODEL_DEFAULTS['seed']})")
    m.add_argument("--optimizer", choices=tuple(optim.OPTIMIZERS),
                   help="; ".join(f"{o.name} ({o.help})" for o in optim.OPTIMIZERS.values())
                   + f" (default {MODEL_DEFAULTS['optimizer']}); gradients are clipped "
                     f"first (--grad-clip)")
    m.add_argument("--grad-clip", type=cli.non_negative_float, metavar="C",
                   help=f"clip every element of an iteration's gradients to [-C, C] before the "
                        f"update (default {MODEL_DEFAULTS['grad_clip']:g}, min-char-rnn's; 0: "
                        f"no clipping). char-rnn's and torch-rnn's -grad_clip clip the same "
                        f"way, but the gradients of a mean loss: these are of the sum over "
                        f"the chunk's characters, as min-char-rnn's, so the same C clips "
                        f"harder here. Not nanoGPT's grad_clip, which scales the gradients' "
                        f"norm")
    m.add_argument("--batch-size", type=cli.positive_int, metavar="B",
                   help=f"train B streams at once: the text is cut into B contiguous pieces, "
                        f"each with its own hidden state; an iteration is one chunk of every "
                        f"stream (default {MODEL_DEFAULTS['batch_size']}, min-char-rnn)")
    r = p.add_argument_group("run")
    r.add_argument("--iterations", type=cli.positive_int, metavar="N",
                   help=f"train until this many chunks in total, counted from the start of "
                        f"training (a resumed run continues up to it; default "
                        f"{DEFAULT_ITERATIONS}, or with --resume the end of its anneal, or the "
                        f"end its run was going to)")
    r.add_argument("--epochs", type=cli.positive_float, metavar="E",
                   help="instead of --iterations: train until E passes over the training text in "
                        "total (rounded up to whole iterations; counted like --iterations)")
    r.add_argument("--time-budget", type=cli.positive_float, metavar="SECONDS",
                   help="also stop (and save) within this many seconds of the start of "
                        "training (compiling included; starting up and reading the text come "
                        "before it): the final validation and checkpoint included, from how long "
                        "the latest took (before the first validation: from timing a sixteenth of "
                        "one, 512 characters a stream at least); a resume without --iterations or "
                        "--epochs keeps the run's, less the time it has spent")
    r.add_argument("--threads", type=cli.positive_int, metavar="N",
                   help="CPU threads of the numba backend (mini-batches, LSTM, GRU and stacked "
                        "models, validation streams; default: NUMBA_NUM_THREADS, i.e. all cores; "
                        "results are the same bits for any N; refused with --backend numpy or "
                        "cuda)")
    r.add_argument("--backend", choices=BACKENDS,
                   help="kernels to train with (default numba, or a resumed run's own; numpy is "
                        "the slow reference; cuda needs an NVIDIA GPU and numba-cuda)")
    r.add_argument("--lr-decay", type=cli.share, metavar="FACTOR",
                   help="multiply the learning rate by FACTOR (in (0, 1]) every --lr-decay-every "
                        "iterations, as char-rnn does (default: no decay; with --resume: the "
                        "checkpoint's schedule)")
    r.add_argument("--lr-decay-every", type=cli.positive_int, metavar="N",
                   help="iterations between learning-rate decays (with --lr-decay)")
    r.add_argument("--anneal", type=cli.share, metavar="F",
                   help="decay the learning rate linearly to 0 over the last F (in (0, 1]) of the "
                        "run: of --iterations, or with --time-budget of the budget if that ends "
                        "the run first (then the iterations the rest of the budget holds, "
                        "estimated when the anneal starts); the window is saved and resume "
                        "repeats it (default: no anneal; with --resume: the checkpoint's)")
    r.add_argument("--eval-every", type=cli.non_negative_int, metavar="N",
                   help=f"validation loss over the whole held-out text every N iterations "
                        f"(0: only at the end; default {CADENCE['eval_every']}; with --resume: "
                        f"the checkpoint's)")
    r.add_argument("--val-streams", type=cli.positive_int, metavar="N",
                   help="read the held-out text as N contiguous streams side by side (on all "
                        "threads with numba): faster on many cores, but each stream after the "
                        "first starts without the text before it, so the loss differs slightly "
                        "from one stream's (usually higher); 1 (default) is min-char-rnn's "
                        "one-stream value; with --resume: the checkpoint's")
    r.add_argument("--sample-every", type=cli.non_negative_int, metavar="N",
                   help=f"print a generated sample every N iterations (0: never; default "
                        f"{CADENCE['sample_every']}; with --resume: the checkpoint's)")
    r.add_argument("--sample-length", type=cli.positive_int, metavar="N",
                   help=f"characters per sample (default {CADENCE['sample_length']}, at most "
                        f"{SAMPLE_LENGTH_MAX:,}; "
                        f"with --resume: the checkpoint's)")
    r.add_argument("--checkpoint-every", type=cli.non_negative_int, metavar="N",
                   help=f"write the checkpoint every N iterations (0: only at the end; default "
                        f"{CADENCE['checkpoint_every']}; with --resume: the checkpoint's); it is "
                        f"also written at the end and on Ctrl-C")
    r.add_argument("--out", type=cli.path, metavar="DIR",
                   help="directory for checkpoints and metrics (default ./out; with --resume: "
                        "the checkpoint's directory)")
    r.add_argument("--resume", type=cli.path, metavar="CHECKPOINT",
                   help="continue training from this checkpoint: its model, optimizer state, "
                        "schedule and text (--learning-rate, --dropout and --grad-clip may be "
                        "given anew)")
    r.add_argument("--init-from", type=cli.path, metavar="CHECKPOINT",
                   help="fine-tune: start a new run (fresh optimizer state, counters and hidden "
                        "state) from this checkpoint's weights, model and vocabulary, on --data; "
                        "--learning-rate, --seq-length, --batch-size, --optimizer, --seed, "
                        "--dropout and --grad-clip may differ from the checkpoint's (the "
                        f"learning rate: 1/{FINE_TUNE_DIVISOR} of the checkpoint's (a "
                        f"fine-tune's: of its model's before any fine-tune) unless given, or "
                        f"of another --optimizer's usual one); --data is required")
    r.add_argument("--overwrite", action="store_true",
                   help="start a new run even if --out holds another run's checkpoint.npz, "
                        "best.npz or metrics.jsonl (set aside as it starts, with loss.png, and "
                        "removed once the new run saves; put back if it ends before), or "
                        "let --resume write over a checkpoint.npz that is not the one resumed")
    r.add_argument("--quiet", action="store_true", help="no progress bar, samples or messages")
    return p


def main(argv=None):
    return cli.run(_main, PROG, argv)


LOUD_TEXT_BYTES = 1 << 25  # a text this large is said to be read (it takes seconds)
LOUD_CHECKPOINT_BYTES = 1 << 28  # ...and a checkpoint this large (~1 s)
LONG_VALIDATION = 10.0  # seconds: a validation this long is said before it starts
FAILING = 2  # a loss this many times a uniform guess's is said to be failing
FAILING_AFTER = 25  # ...at a run's end, if it has trained this many iterations (a smoke test
                    # of 5 was told a smaller rate would help: its first steps' overshoot)
PLOT_SHARE = 0.05  # loss.png is redrawn at a validation if the last drawing took at most this
                   # share of the time since (~0.1 s a drawing: with --eval-every 1 it was most
                   # of the run), and at the run's end
LONG_VALIDATION_CHARS = 1_000_000  # the first (untimed) validation said from this many
BLOCK_SECONDS = 0.2  # seconds a training call (a block of chunks) takes, about: the pace of the
                    # progress bar and of Ctrl-C
BLOCK_MAX = 100_000  # chunks in a block, at most
STEP_CALLS = 4  # a budget-sized anneal's steps last at least this many whole kernel calls (a
                # block, or the cadence of what is due if shorter): the calls stay as long as
                # the pace was measured on
UNREAD_SHARE = 0.1  # a warning says when the streams leave more than this share of the text
                    # unread
SAME_STOP = 0.5  # seconds: a second stop signal this soon after the first is the same request
                 # (``kill`` twice, a signal to the process and then its group)
TRAINING, VALIDATION, SAMPLING = "training kernels", "validation kernels", "sampling kernels"
OWED = "; once that memory is free, its --resume does this validation first"


def _main(argv):
    args = build_parser().parse_args(argv)
    args.output_closed = None  # set by _say when stdout cannot be written: why
    args.notes = []  # notes of the settings, said once the run is accepted (``Trainer._run``)
    if args.resume and args.init_from:
        raise cli.UsageError("--resume continues a run, --init-from starts a new one from a "
                             "checkpoint's weights: give one of them")
    if args.iterations is not None and args.epochs is not None:
        raise cli.UsageError("--iterations and --epochs both set the end of training: give one")
    ckpt = _load_resume(args, args.resume) if args.resume else None
    # a resumed run continues bit for bit on its own backend, unless given one or it cannot run
    # here (then ``unusable`` says why, in ``_train``'s note)
    own = ckpt.run.get("backend") if ckpt and args.backend is None else None
    args.unusable = _unusable(own) if own in BACKENDS else None
    backend_kept = own in BACKENDS and not args.unusable
    if args.backend is None:
        args.backend = own if backend_kept else "numba"
    saved = ckpt.run.get("cadence", {}) if ckpt else {}
    given = args.sample_length is not None
    every_given = args.sample_every is not None
    for key, default in CADENCE.items():  # given, else the resumed run's, else the default
        if getattr(args, key) is None:
            setattr(args, key, saved.get(key, default))
    if args.sample_length > SAMPLE_LENGTH_MAX and args.sample_every:  # (else: said below)
        whose, fix = ("", "python -m fastrnn.sample writes a text of any length from a "
                          "checkpoint") if given else \
            (" (the checkpoint's)", f"pass --sample-length N, at most {SAMPLE_LENGTH_MAX:,}")
        raise cli.UsageError(
            f"--sample-length {args.sample_length:,}{whose} is more than a training run's "
            f"samples may have ({SAMPLE_LENGTH_MAX:,} characters): {fix}")
    if given and not args.sample_every:
        whose = "" if every_given else " (the checkpoint's)"
        cli.warn(PROG, f"--sample-length {args.sample_length:,} changes nothing: --sample-every "
                       f"0{whose} draws no samples")
    streams_given = args.val_streams is not None
    args.same_text_only = []  # (refusals that wait for the text: ``_same_text_only``)
    args.val_streams = _val_streams(args, ckpt)
    if args.threads is not None and args.backend != "numba":
        raise cli.UsageError("--threads sets the CPU threads of the numba backend; the " + (
            "cuda backend runs on the GPU" if args.backend == "cuda" else
            "numpy backend (the reference) runs on NumPy's own") + (
            f" (--backend {args.backend} is the checkpoint's: --backend numba changes it)"
            if backend_kept else ""))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if args.threads is not None and cpus and args.threads > cpus:
        cli.warn(PROG, f"--threads {args.threads:,} is more than the {cpus} CPU"
                       f"{'s' if cpus > 1 else ''} this process may run on: the threads past "
                       f"them take turns (the same bits, no faster)")
    if args.val_streams > 1 and args.backend == "cuda":
        raise cli.UsageError("--val-streams > 1 runs on the numba and numpy backends; the cuda "
                             "backend evaluates one stream")
    lr_decay = _lr_decay(args, ckpt)
    anneal = _anneal(args, ckpt)
    source = _load_source(args, args.init_from) if args.init_from else None
    config, data = _settings(args, ckpt, source)
    corpus = _load_corpus(data, config, ckpt, source.vocab if source else None,
                          lambda line: _say(args, line), args.data is not None,
                          args.same_text_only)
    if corpus.dropped:
        _said_dropped(args, corpus)
    saved_target = ckpt.run.get("target") if ckpt else None  # (the resumed run's own end)
    data["from"] = _text_from(ckpt, corpus)
    args.target_from = "given" if args.iterations or args.epochs else \
        "anneal" if (anneal or {}).get("window") else "checkpoint" if saved_target else "default"
    args.iterations = _target(args, corpus, config, anneal, saved_target, data["from"])
    args.budget_spent = _budget(args, ckpt)
    if args.iterations > COUNT_MAX:  # (--epochs is checked by _target)
        raise cli.UsageError(f"{_asked(args)} is past the most iterations a run counts (2**62)")
    if len(corpus.val) >= 2 and args.val_streams > len(corpus.val) - 1:
        whose = "" if streams_given else " (the checkpoint's: a resumed run keeps it" + (
            " on its own text; on this other one, --val-streams N sets another)" if ckpt and
            _another_text(ckpt.run, corpus) else ")")
        raise cli.UsageError(f"--val-streams {args.val_streams}{whose} is more streams than the "
                             f"held-out text has characters to predict ({len(corpus.val) - 1})")
    if streams_given and args.val_streams > 1 and len(corpus.val) < 2:
        cli.warn(PROG, f"--val-streams {args.val_streams} changes nothing: no text is held out "
                       f"to validate on (--val-fraction {data['val_fraction']:g})")
    if config["dropout"] and config["num_layers"] < 2:  # (Config's check, in the flags' words)
        raise cli.UsageError(f"--dropout {config['dropout']:g} applies between layers: " + (
            "the checkpoint's model has one layer" if ckpt or source else
            f"it needs --num-layers >= 2, got {config['num_layers']}"))
    if lost := validate.clip_lost(config["grad_clip"], config["dtype"],  # (in flags' words)
                                  _whose_dtype(args, ckpt or source)):
        raise cli.UsageError(f"--grad-clip {config['grad_clip']:g} {lost}")
    if validate.lost_in(config["learning_rate"], config["dtype"]) == "infinite":
        raise cli.UsageError(f"--learning-rate {config['learning_rate']:g} is infinite in "
                             f"{config['dtype']}{_whose_dtype(args, ckpt or source)}: its "
                             f"first update would leave no weight a number")
    zero = _zero_rate_at(config, lr_decay, args.iterations)
    if zero == 0:
        raise cli.UsageError(f"--learning-rate {config['learning_rate']:g} is 0 in "
                             f"{config['dtype']}{_whose_dtype(args, ckpt or source)}: nothing "
                             f"would be learned")
    resumed_at = (ckpt.run.get("iteration") or 0) if ckpt else 0
    if zero is not None and not args.time_budget and zero > resumed_at:  # (else: nothing to
        # train, said as such)
        cli.warn(PROG, f"--lr-decay {lr_decay[0]:g} every {lr_decay[1]} iterations takes the "
                       f"learning rate {config['learning_rate']:g} to 0 ({config['dtype']}) at "
                       f"iteration {zero}, before {_asked(args)}: the run will stop there")
    try:
        if ckpt:
            model = ckpt.to_model(args.backend, threads=args.threads)
            model.config = dataclasses.replace(model.config, **{
                k: config[k] for k in RESUME_MAY_CHANGE})
        elif source:  # its weights and model; everything else afresh
            model = source.fine_tune(args.backend, args.threads, **{
                k: v for k, v in config.items() if k not in ARCHITECTURE})
        else:
            model = CharRNN(vocab_size=len(corpus.vocab), backend=args.backend,
                            threads=args.threads, **config)
    except ValueError as e:
        raise cli.UsageError(str(e)) from None
    if len(corpus.val) >= 2:  # (now, not when the first validation comes, after training)
        try:
            validate.fits(model.memory_to_evaluate(len(corpus.val), args.val_streams),
                          f"validating on the {len(corpus.val) - 1:,} held-out characters as "
                          f"{args.val_streams:,} stream{'s' if args.val_streams > 1 else ''}")
        except validate.NotEnoughMemory as e:
            raise cli.UsageError(f"{e}" + (": fewer --val-streams need less"
                                            if args.val_streams > 1 else "")) from None
    # last: a refused run leaves nothing on disk
    out = rundir.prepare(args, ckpt, lambda m: _say(args, m))
    try:
        return _train(args, model, corpus, data, out, ckpt, lr_decay, anneal, source)
    finally:
        rundir.settle_aside(args, out)
        if args.lock is not None:
            args.lock.close()


def _train(args, model, corpus, data, out, ckpt, lr_decay, anneal, source):
    run = ckpt.run if ckpt else {}
    if ckpt and run.get("backend", args.backend) != args.backend:  # (notes: said if it trains)
        args.notes.append(f"note: the checkpoint was trained with --backend {run['backend']}; "
                          f"results continue bit for bit only on the same backend and dtype" + (
                              f" ({args.unusable})" if args.unusable else ""))
    later = (checkpoint.run_record(out / BEST) or {}).get("iteration") if ckpt else None
    if validate.is_integer(later) and later > run.get("iteration", 0):  # (a kill after it)
        args.notes.append(f"note: {out / BEST} holds iteration {later:,}, past the checkpoint's "
                          f"{run.get('iteration', 0):,}: this run replaces it at its first "
                          f"validation better than the checkpoint's best (copy it elsewhere to "
                          f"keep it)")
    trainer = Trainer(model, corpus, data, args, out, ckpt)
    trainer.lr_decay, trainer.anneal = lr_decay, anneal
    for key in RESUME_MAY_CHANGE if ckpt else ():
        old, new = getattr(ckpt.config, key), getattr(model.config, key)
        if new != old:
            rate = trainer.learning_rate() if key == "learning_rate" else new
            args.notes.append(f"note: --{key.replace('_', '-')} {new:g} replaces the "
                              f"checkpoint's {old:g} from iteration {run['iteration']} on" + (
                                  f" (the schedule's base: its rate there is {rate:g})"
                                  if rate != new else ""))
    if source:
        trainer.init_from = str(Path(args.init_from).resolve())
        rate, optimizer, _ = checkpoint.lineage(source)  # (what a fine-tune of it is a part of)
        trainer.rate_base = {"learning_rate": rate, "optimizer": optimizer}
        trainer.smooth = None  # (from its first chunk's loss: not an untrained model's ln V)
    return trainer.run()


def _unusable(backend):
    """Why ``backend`` (a checkpoint's) does not run here, or None: a run trained on a GPU goes
    on on numba where there is none (with a note that says why, ``_train``'s)."""
    try:
        get_backend(backend)
        return None
    except ValueError as e:
        return str(e)


def _asked(args, whose=True):
    """Where the user asked training to end, in their terms (``whose``: and where that came
    from: a resumed run's own end, from its checkpoint; its anneal's; the default)."""
    if args.epochs:
        return f"--epochs {args.epochs:g} (iteration {args.iterations})"
    source = {"checkpoint": "the end of the run it resumes, ", "anneal": "the end of its anneal, ",
              "default": "the default "}.get(getattr(args, "target_from", None), "")
    return f"{source if whose else ''}--iterations {args.iterations}"


def _val_streams(args, ckpt):
    """--val-streams, or on --resume the checkpoint's (a different one is refused once the run
    has validated: the best validation loss so far was measured with it; with --data, once the
    text is read, and only if it is the run's own: ``_same_text_only``)."""
    run = ckpt.run if ckpt else {}
    records = run.get("metrics") or []
    # (records from before --val-streams existed were all one stream)
    saved = run.get("val_streams", records[-1].get("val_streams", 1) if records else None)
    if args.val_streams is not None and saved is not None and args.val_streams != saved and \
            records:  # (no validation yet: no best measured with it)
        _same_text_only(args, ckpt, f"cannot resume with --val-streams {args.val_streams}: the "
                                    f"checkpoint's validations read {saved} (its best is "
                                    f"measured so)")
    return args.val_streams or saved or 1


def _same_text_only(args, ckpt, refusal):
    """A setting a resume may change only on another text than its run's, where the run keeps
    a best of its own: refused now without --data (or when the checkpoint does not record its
    text's sha256, against which another is told), else once the text is read, if it is the
    run's own (``_load_corpus``, before anything it says of the text read so)."""
    if not (ckpt.run.get("data") or {}).get("sha256"):
        raise cli.UsageError(refusal)
    if args.data is None:
        raise cli.UsageError(refusal + "; on another text (--data) it may change")
    args.same_text_only.append(refusal)


def _target(args, corpus, config, anneal=None, saved=None, text_from=0):
    """The iteration to train to: --iterations, or --epochs in iterations (passes over the
    text from ``text_from``, the iteration the run began training on it), or the end of a
    resumed run's anneal, or a resumed run's own (``saved``: the target its checkpoint
    records), or the default."""
    if args.epochs is None:
        window = (anneal or {}).get("window")
        return args.iterations or (window[1] if window else saved or DEFAULT_ITERATIONS)
    piece = len(corpus.train) // config["batch_size"]
    iterations = text_from + args.epochs * reference.chunks_per_pass(piece, config["seq_length"])
    if not iterations <= COUNT_MAX:  # (inf from --epochs 1e308 included)
        raise cli.UsageError(f"--epochs {args.epochs:g} ({iterations:.3g} iterations) is past "
                             f"the most iterations a run counts (2**62)")
    return math.ceil(iterations)


def _budget(args, ckpt):
    """The seconds of its --time-budget a resumed run has spent (0 if none): a resume given
    neither --time-budget nor --iterations/--epochs keeps the run's budget (sets
    ``args.time_budget``, and ``args.budget_from``, where in the run's time it started) and
    ends within what is left of it; one given --time-budget has that many seconds from its own
    start; one given --iterations/--epochs, no budget."""
    run = ckpt.run if ckpt else {}
    budget = run.get("time_budget")
    args.budget_from = run.get("wall_seconds") or 0.0  # (a budget given now starts there)
    if not budget or args.time_budget or args.target_from == "given":
        return 0.0
    if run.get("wall_seconds") is None:  # (a checkpoint from before a run's time was saved)
        cli.warn(PROG, f"the run it resumes had --time-budget {budget:g}, and its checkpoint does "
                       f"not record how much of it was spent: this one trains to iteration "
                       f"{args.iterations} (pass --time-budget or --iterations to end it sooner)")
        return 0.0
    args.time_budget, args.budget_from = budget, run.get("budget_from") or 0.0
    spent = run["wall_seconds"] - args.budget_from
    if run.get("stopped") == "time budget":  # (which stops a run short of it, with its ending)
        spent = max(spent, budget)
    if spent < budget and run.get("iteration", 0) < args.iterations and \
            not run.get("stopped"):  # (else: nothing to train; said then)
        owed = "; it first does the validation its stop cut short, past them if that takes " \
            "longer" if run.get("pending") else ""  # (a resume redoes it to stay the same run)
        _say(args, f"note: the run it resumes has spent {_seconds(spent)} s of its --time-budget "
                   f"{budget:g}: this one ends within the {_seconds(budget - spent)} s left"
                   f"{owed} (--time-budget S gives it S seconds from now)")
    return spent


def _whose_dtype(args, kept):
    """" (the checkpoint's dtype)" or " (the cuda backend's dtype)" where the run's dtype was
    not given with --dtype, for a message that names it."""
    if kept:
        return " (the checkpoint's dtype)"
    return f" (the {args.backend} backend's dtype)" if args.dtype is None and \
        args.backend == "cuda" else ""


def _zero_rate_at(config, lr_decay, target):
    """The first iteration before ``target`` whose (decayed) learning rate is 0 in the model's
    dtype (training stops there: nothing would change), or None."""
    every = lr_decay[1] if lr_decay else 1

    def zero(decays):
        return validate.vanishes(Schedule(config["learning_rate"], lr_decay)(decays * every),
                                 config["dtype"])

    if zero(0):
        return 0
    lo, hi = 0, (target - 1) // every if lr_decay else 0  # decays before the last iteration
    if not zero(hi):
        return None
    while hi - lo > 1:  # the first decay count that gives 0 (zero(lo) is False)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if zero(mid) else (mid, hi)
    return hi * every


def _lr_decay(args, ckpt):
    """The learning-rate schedule: (factor, every) or None, from the arguments, or on --resume
    the checkpoint's (a different one is refused: resuming must repeat the run)."""
    if (args.lr_decay is None) != (args.lr_decay_every is None):
        raise cli.UsageError("--lr-decay FACTOR and --lr-decay-every N go together")
    given = None if args.lr_decay is None else [args.lr_decay, args.lr_decay_every]
    if ckpt is None:
        return given
    saved = ckpt.run.get("lr_decay")
    if given is not None and given != saved:
        had = "none" if saved is None else f"--lr-decay {saved[0]!r} --lr-decay-every {saved[1]}"
        raise cli.UsageError(f"cannot resume with a different learning-rate schedule: "
                             f"--lr-decay {args.lr_decay!r} --lr-decay-every "
                             f"{args.lr_decay_every} (the checkpoint has {had})")
    return saved  # (its form is checked by checkpoint.load)


def _anneal(args, ckpt):
    """--anneal as {"fraction": F}, plus "window": [start, end] once the anneal has started
    (saved in checkpoints); or None. On --resume, the checkpoint's (a different one is
    refused once its window has started); a run that had none may be given one (it starts at
    once if its share of the run has begun: annealing a checkpoint)."""
    given = None if args.anneal is None else {"fraction": args.anneal}
    saved = ckpt.run.get("anneal") if ckpt else None
    if saved is None or (given is not None and "window" not in saved):
        return given  # (no annealed rate has been used yet)
    if given is not None and saved["fraction"] != args.anneal:
        raise cli.UsageError(f"cannot resume with a different learning-rate schedule: --anneal "
                             f"{args.anneal:g} (the checkpoint has {saved['fraction']:g})")
    return saved


def _say_reading(say, path, loud):
    """``say`` that the file ``path`` is being read if it has ``loud`` bytes or more (a path
    that is not a file's, or cannot be read: nothing, for its load to name)."""
    try:
        size = Path(path).stat().st_size if Path(path).is_file() else 0
    except (OSError, ValueError):
        return
    if size >= loud:
        say(f"reading {path} ({validate.human_bytes(size)})...")


def _loading(args, path):
    """Say that a checkpoint of LOUD_CHECKPOINT_BYTES or more is being read (seconds, unsaid
    before: 816 MB, an LSTM of 2 x 2048 units with Adam, took 2.5-4.7 s)."""
    _say_reading(lambda line: _say(args, line), path, LOUD_CHECKPOINT_BYTES)


def _load_source(args, path):
    _loading(args, path)
    try:
        return checkpoint.load(path)
    except CheckpointError as e:
        meant = " (nanoGPT's --init_from=resume is --resume OUT/checkpoint.npz here)" if \
            path == "resume" and not Path(path).exists() else ""
        raise cli.UsageError(f"cannot fine-tune: {e}{meant}") from None


def _load_resume(args, path):
    _loading(args, path)
    try:
        ckpt = checkpoint.load(path)
    except CheckpointError as e:
        raise cli.UsageError(f"cannot resume: {e}") from None
    iteration = ckpt.run.get("iteration")
    if not isinstance(iteration, int):
        raise cli.UsageError(f"cannot resume: {path} was not written by fastrnn.train (its run "
                             f"record has no iteration count): --init-from trains on from its "
                             f"weights")
    stride, most = ckpt.run.get("loss_stride", 1), metrics.LossHistory.stride_for(iteration)
    if not (validate.is_integer(stride) and 1 <= stride <= most and stride & (stride - 1) == 0):
        raise cli.UsageError(f"cannot resume: {path}'s loss_stride is {validate.shown(stride)}, "
                             f"not an integer power of two of at most {most:,} for its "
                             f"{iteration:,} iterations (damaged?): --init-from trains on from "
                             f"its weights")
    if len(ckpt.losses) != metrics.LossHistory.count(iteration, stride):
        raise cli.UsageError(f"cannot resume: {path} holds {len(ckpt.losses):,} losses for its "
                             f"{iteration:,} iterations (fastrnn.train's checkpoints hold one "
                             f"per iteration, or past {LOSS_ENTRIES:,} iterations one per "
                             f"loss_stride; one saved otherwise, or damaged): --init-from "
                             f"trains on from its weights")
    return ckpt


# what --resume may change (read at every training call; the rest made the weights, the
# optimizer state or the streams' layout)
RESUME_MAY_CHANGE = ("learning_rate", "dropout", "grad_clip")


def _settings(args, ckpt, source=None):
    """(model config kwargs, data settings) from the arguments, the checkpoint to resume (or the
    one to fine-tune from) and the defaults."""
    given = {k: getattr(args, k) for k in MODEL_DEFAULTS if getattr(args, k, None) is not None}
    if ckpt is None:
        if source is None:
            config = {**MODEL_DEFAULTS, **given}
            if "learning_rate" not in given:  # (the optimizer's: Adagrad's is 50 times Adam's)
                config["learning_rate"] = optim.get(config["optimizer"]).rate
            if args.backend == "cuda" and args.dtype is None:
                config["dtype"] = GPU_DTYPE
        else:
            kept = {k: v for k, v in source.config.to_dict().items() if k in MODEL_DEFAULTS}
            clash = [f"--{k.replace('_', '-')} {given[k]} (the checkpoint has {kept[k]})"
                     for k in ARCHITECTURE if k in given and given[k] != kept[k]]
            if clash:
                raise cli.UsageError(f"--init-from keeps the checkpoint's model: "
                                     f"{'; '.join(clash)}")
            config = {**kept, **given}
            if args.data is None:  # (not the bundled corpus in silence: its own text, or another?)
                trained = source.run.get("data", {}).get("path")
                raise cli.UsageError(
                    "--init-from starts a new run on a text: give it with --data" + (
                        f" (the checkpoint was trained on {trained})" if isinstance(trained, str)
                        else ""))
            if "learning_rate" not in given:  # (Checkpoint.fine_tune's default)
                rate, old, own = checkpoint.lineage(source)
                new = config["optimizer"]
                try:
                    config["learning_rate"] = checkpoint.fine_tune_rate(rate, kept["dtype"], old,
                                                                        new, own)
                except ValueError as e:
                    raise cli.UsageError(f"{e}: pass --learning-rate") from None
                _, whose = checkpoint.fine_tune_base(rate, old, new, own)
                args.notes.append(
                    f"note: fine-tuning at --learning-rate {config['learning_rate']:g}, "
                    f"1/{FINE_TUNE_DIVISOR} of {whose}: a fresh optimizer's first steps at the "
                    f"full rate undo much of what the model learnt (--learning-rate sets "
                    f"another)")
        data = {**DATA_DEFAULTS, "path": args.data or str(corpus_mod.DEFAULT_CORPUS)}
        if source and args.encoding is None:  # (as score and sample read)
            try:
                data["encoding"], note = corpus_mod.model_encoding(None, source.encoding,
                                                                   args.data)
            except corpus_mod.CorpusError as e:
                raise cli.UsageError(str(e)) from None
            if note:  # (now: before a text it cannot read is said)
                _say(args, f"note: {note}")
    else:
        config = {k: v for k, v in ckpt.config.to_dict().items() if k in MODEL_DEFAULTS}
        clash = [f"--{k.replace('_', '-')} {v} (the checkpoint has {config[k]})"
                 for k, v in given.items() if v != config[k] and k not in RESUME_MAY_CHANGE]
        if clash:
            raise cli.UsageError(f"cannot resume with other settings: {'; '.join(clash)} "
                                 f"(--learning-rate, --dropout and --grad-clip may change; "
                                 f"--init-from starts a new run from its weights)")
        config.update({k: v for k, v in given.items() if k in RESUME_MAY_CHANGE})
        recorded = ckpt.run.get("data", {})  # (none in a checkpoint saved from Python)
        data = {**DATA_DEFAULTS, **recorded}
        if args.val_fraction is not None and "val_fraction" in recorded and \
                args.val_fraction != data["val_fraction"]:
            _same_text_only(args, ckpt, f"cannot resume with --val-fraction {args.val_fraction}: "
                                        f"the checkpoint held out {data['val_fraction']} of its "
                                        f"text")
        if args.data:
            data["path"] = args.data
        elif "path" not in data:
            raise cli.UsageError(f"{args.resume} does not name the text it was trained on "
                                 f"(not written by fastrnn.train): pass --data")
    if args.val_fraction is not None:
        data["val_fraction"] = args.val_fraction
    if args.encoding is not None:  # ("" too: refused by name as an unknown encoding)
        data["encoding"] = args.encoding
    if args.skip_unknown:
        if ckpt is None and source is None:
            raise cli.UsageError("--skip-unknown leaves out the characters a checkpoint's "
                                 "vocabulary lacks: it goes with --init-from or --resume (a new "
                                 "run's vocabulary is its text's own)")
        data["skip_unknown"] = True  # (kept in the checkpoint: its resume reads the text so)
    return config, data


def _said_dropped(args, corpus):
    """What --skip-unknown left out of the text: a note, or a warning where it is most of it
    (a text of another script or language, which the model cannot learn from)."""
    n = corpus.dropped
    whose = "" if args.skip_unknown else ", the checkpoint's"
    share = 100 * n / (n + corpus.n_chars)
    said = (f"{n:,} character{'s' * (n != 1)} of {corpus.path} "
            f"({share:.2g}%) "
            f"that the checkpoint's vocabulary lacks {'are' if n != 1 else 'is'} left out "
            f"(--skip-unknown{whose}): {describe(list(corpus.dropped_chars))}")
    if n > corpus.n_chars:
        cli.warn(PROG, f"{said}: most of the text, which the model then trains on without them "
                       f"(a new run, without --init-from, has a vocabulary of the text's own)")
    else:
        args.notes.append(f"note: {said}")


def _load_corpus(data, config, ckpt, vocab, say, given, same_text_only=()):
    """The run's text (``data``: its settings; ``given``: its path was given, --data, not
    taken from the resumed checkpoint), checked against the model and the checkpoint; a
    resume's settings ``same_text_only`` (``_same_text_only``'s refusals) refused if it is the
    run's own text."""
    path = Path(data["path"])
    used = (ckpt.run.get("data") or {}).get("encoding") if ckpt else None
    recoded = used and corpus_mod.codec_name(used) != corpus_mod.codec_name(data["encoding"])
    if recoded and not given:  # (its own text)
        raise cli.UsageError(f"cannot resume with --encoding {data['encoding']}: the run read "
                             f"its text as {used} (--data PATH --encoding E resumes on a text "
                             f"of another encoding)")
    if ckpt is None and path == corpus_mod.DEFAULT_CORPUS and not path.exists():
        raise cli.UsageError(f"the bundled corpus {path} is missing (it ships in the source "
                             f"tree's data/ directory); pass --data PATH")
    quoted = cli.quoted(str(path))
    said = given and checkpoint.archive_said(path, f"--data {path}", (
        f"--resume {quoted} continues its run, --init-from {quoted} --data TEXT fine-tunes it "
        f"on a text"))
    if said:  # (else a hint at --encoding, or the zip's bytes learnt)
        raise cli.UsageError(said)
    if say is not None:  # (~3 s per 100 MB, silent before)
        _say_reading(say, path, LOUD_TEXT_BYTES)
    try:
        corpus = corpus_mod.load(path, data["val_fraction"], data["encoding"],
                                 ckpt.vocab if ckpt else vocab, data.get("skip_unknown", False))
    except corpus_mod.UnknownText as e:
        if recoded:
            raise cli.UsageError(f"{e.lacks}; the run it resumes read its text as {used}: "
                                 f"--encoding {data['encoding']} reads other characters") from None
        if ckpt and not given:  # (the text the run trained on had none of those)
            raise cli.UsageError(f"{e.plain}; {path} has changed since the checkpoint was "
                                 f"written: it is not the text the run trained on") from None
        raise cli.UsageError(e.said("--skip-unknown")) from None
    except corpus_mod.CorpusError as e:
        recorded = ckpt and str(path) == ckpt.run.get("data", {}).get("path")
        raise cli.UsageError(str(e) + ("; it is the text the checkpoint was trained on: if it "
                                       "has moved, pass --data with where it is now"
                                       if recorded and not path.exists() else "")) from None
    if ckpt and same_text_only and not _another_text(ckpt.run, corpus):  # (before a word on
        # the text as split by the settings refused)
        raise cli.UsageError(f"{same_text_only[0]}; {path} is the text the run trained on")
    if recoded and corpus.dropped:  # (refused without --skip-unknown: said so here)
        cli.warn(PROG, f"the run it resumes read its text as {used}, and --encoding "
                       f"{data['encoding']} reads characters its vocabulary lacks, left out "
                       f"(--skip-unknown): is {data['encoding']} the encoding of {path}?")
    T, B = config["seq_length"], config["batch_size"]
    if len(corpus.train) < B * (T + 1):
        after = ([f"leaving out the {corpus.dropped:,} its checkpoint's vocabulary lacks "
                  f"(--skip-unknown)"] if corpus.dropped else []) + (
            [f"holding out {data['val_fraction']} for validation"] if len(corpus.val) else [])
        held = f" after {' and '.join(after)}" if after else ""
        streams = f" in each of --batch-size {B} streams" if B > 1 else ""
        n = len(corpus.train)
        raise cli.UsageError(
            f"{path} has {n:,} character{'s' * (n != 1)} to train on{held}; --seq-length {T} needs "
            f"at least {T + 1}{streams}: use a longer text or a smaller --seq-length"
            + (" or --batch-size" if B > 1 else ""))
    piece = len(corpus.train) // B  # each stream's share of the text
    saved = ckpt.run.get("data", {}).get("sha256") if ckpt else None
    if ckpt and saved and corpus.sha256 != saved and not given:  # (changed since, in place)
        raise cli.UsageError(f"{path} has changed since the checkpoint was written: it is not "
                             f"the text the run trained on; pass --data {cli.quoted(path)} to "
                             f"resume on it as it is now (the run then keeps a best of its "
                             f"own: {BEST} is replaced at its first validation)")
    if ckpt and corpus.sha256 != saved:  # (another text, or one the checkpoint does not name)
        best, other = ckpt.run.get("best_val_loss"), _another_text(ckpt.run, corpus)
        cli.warn(PROG, (f"{path} is not the text this checkpoint was trained on" if saved else
                        "the checkpoint does not record the text it was trained on") +
                 f"; training continues on {path} with the checkpoint's vocabulary"
                 + (" from the start of its streams" if ckpt.position >= piece else "")
                 + (f"; the best validation loss so far ({metrics.bits(best):.4f} bits/char) "
                    f"was measured on the other text, so this run keeps its own best: "
                    f"{BEST} is replaced at its first validation"
                    if other and best is not None and len(corpus.val) >= 2 else "")
                 + (f"; with no held-out text to validate on, {BEST} stays the other text's "
                    f"model" if other and best is not None and len(corpus.val) < 2 else "")
                 + (f"; its epochs count from iteration {ckpt.run.get('iteration', 0)}"
                    if other else ""))
    elif ckpt and ckpt.position >= piece:
        raise cli.UsageError(f"cannot resume: the checkpoint is corrupt: its position "
                             f"{ckpt.position} lies beyond its own text's {piece}-character "
                             f"streams")
    read = reference.chunks_per_pass(piece, T) * T + 1  # of each stream, before it wraps
    if piece - read > UNREAD_SHARE * piece:  # (min-char-rnn's rule leaves at most T of one)
        cli.warn(PROG, (f"each of the {B} streams has" if B > 1 else "the text has") +
                 f" {piece:,} characters, and chunks of --seq-length {T} read {read:,} of "
                 f"them before starting again: {(piece - read) / piece:.0%} of the training "
                 f"text is never trained on (a smaller " +
                 ("--batch-size or " if B > 1 else "") + "--seq-length reads more of it)")
    n = len(corpus.val)
    if data["val_fraction"] > 0 and n < 2:  # (a fraction of a short text rounds down)
        cli.warn(PROG, f"the validation split of {path} is {n} character{'s' * (n != 1)}: no "
                       f"validation loss")
    if ckpt is None:  # (a resumed run's text was said of when it started)
        for note in corpus_mod.oddities(corpus, data["encoding"]):
            cli.warn(PROG, note)
    return corpus


def _text_from(ckpt, corpus):
    """The iteration from which the run trains on this text, which its epochs count from: 0;
    a resumed run's on another text than its checkpoint's, the checkpoint's iteration."""
    if ckpt is None:
        return 0
    if _another_text(ckpt.run, corpus):
        return ckpt.run.get("iteration", 0)
    return ckpt.run.get("data", {}).get("from", 0)


def _another_text(run, corpus):
    """Whether a resumed run (its checkpoint's ``run``) trains on another text than the one
    its checkpoint records (by sha256; False if it records none)."""
    saved = run.get("data", {}).get("sha256")
    return saved is not None and saved != corpus.sha256


def _shown(text):
    """A sample as printed among the run's lines: control characters but tabs and line breaks
    escaped (``\\r``, ``\\x1b``), which would move the cursor over the progress bar or recolour
    the terminal (``python -m fastrnn.sample`` writes the text as it is)."""
    return cli.escaped(text, cli.CONTROLS)


def _seconds(s):
    """A duration for a message: whole seconds from 10 s, else two significant digits."""
    return f"{s:.0f}" if s >= 10 else f"{s:.2g}"


def _say(args, message, lines=False):
    """A line on stdout (progress-bar safe), its line breaks (a path's) written as \\n, or,
    with ``lines``, the lines of ``message`` (a sample's). If stdout cannot be written (its
    reader went away, ``| head``; a full disk; a terminal that hung up), the rest goes nowhere
    and the run stops as if interrupted: saved, resumable."""
    if args.quiet or args.output_closed:
        return
    try:
        tqdm.write(message if lines else cli.one_line(message))
        sys.stdout.flush()
    except OSError as e:
        args.output_closed = "stdout was closed" if isinstance(e, BrokenPipeError) else \
            f"stdout could not be written ({e.strerror or e})"
        cli.drop_output()


class _Progress:
    """The progress bar (stderr): iterations toward --iterations; with --time-budget, time
    toward whichever ends the run first, the budget or the iterations (otherwise a 10-minute
    budget on a million-iteration target shows 0% and days to go)."""

    def __init__(self, args, iteration, target, start):
        self.budget, self.start, self.target = args.time_budget, start, target
        self.postfix = ""  # (the latest: loss, speed)
        common = dict(disable=args.quiet, dynamic_ncols=True, file=sys.stderr)
        self.text = ""  # (the bar's text with --time-budget)
        if self.budget:
            done, self.text = self._time(iteration, "", 0.0 if iteration >= target else None)
            self.bar = tqdm(total=1.0, initial=done, desc=self.text,
                            bar_format="{percentage:3.0f}%|{bar}| {desc}", **common)
        else:
            self.bar = tqdm(total=self.target, initial=iteration, unit="it", smoothing=0.05,
                            **common)

    def advance(self, n, iteration, postfix, to_target):
        """``n`` more iterations, up to ``iteration``; ``postfix``: loss, speed; ``to_target``:
        the seconds to the target (``Trainer._time_to``: its validations, samples and
        checkpoints to come included)."""
        self.postfix = postfix
        if self.budget:
            done, self.text = self._time(iteration, postfix, to_target)
            self.bar.set_description_str(self.text, refresh=False)
            self.bar.update(done - self.bar.n)
        else:
            self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.update(n)

    def status(self, what):
        """``what`` the run does now, at the end of the bar's text until its next advance (a
        big model's first checkpoint write and validation estimate, for --time-budget, held the
        bar still for seconds, unsaid)."""
        self.bar.set_description_str(f"{self.text}; {what}" if self.text else what)

    def finish(self, iteration):
        """Training is over, not cut short: with --time-budget the bar at 100%, whatever
        ended it (the time it kept for the final validation and checkpoint is theirs now,
        with a bar of their own). Counting iterations, it shows the last one trained."""
        if self.budget:
            _, text = self._time(iteration, self.postfix, 0.0)
            self.bar.set_description_str(text, refresh=False)
            self.bar.update(1.0 - self.bar.n)

    def _time(self, iteration, postfix, to_target):
        """The fraction of the run's time done, and the bar's text (``to_target``: None when
        not known yet, the budget's rest)."""
        clock = tqdm.format_interval
        spent = time.perf_counter() - self.start
        left = max(0.0, self.budget - spent)
        if to_target is not None:
            left = min(left, to_target)
        text = (f"{clock(spent)}<{clock(left)} of the {clock(self.budget)} budget, iteration "
                f"{iteration:,}/{self.target:,}" + (f", {postfix}" if postfix else ""))
        return spent / max(spent + left, 1e-9), text

    def close(self):
        self.bar.close()


class Trainer:
    """The training loop: kernel calls in blocks, with evaluation, samples and checkpoints between."""

    def __init__(self, model, corpus, data, args, out, ckpt):
        self.model, self.corpus, self.args, self.out = model, corpus, args, out
        c = model.config
        run = ckpt.run if ckpt else {}
        self.data = {**data, "path": str(Path(data["path"]).resolve()), "sha256": corpus.sha256,
                     "chars": corpus.n_chars}  # (resolved: where a resume finds it again)
        self.shown_path = data["path"]  # (as given, as the other lines name it: QA)
        self.iteration = run.get("iteration", 0)
        self.resumed_at = self.iteration if ckpt else None  # (the checkpoint it is, on disk)
        # the loss of every iteration (the checkpoint's, and room for this run's)
        self.history = metrics.LossHistory(
            ckpt.losses if ckpt else (), self.iteration, run.get("loss_stride", 1),
            capacity=max(1024, args.iterations - self.iteration))  # (at most LOSS_ENTRIES)
        self.smooth = run.get("smooth_loss", -math.log(1.0 / c.vocab_size) * c.seq_length)
        self.chunk_chars = c.seq_length * c.batch_size  # characters per iteration
        # a chunk's loss past this has diverged (config.DIVERGED_LOSS)
        self.loss_bound = DIVERGED_LOSS * math.log(max(c.vocab_size, 2)) * self.chunk_chars
        self.rng = np.random.default_rng([c.seed, 1])  # samples; independent of the initialisation
        if "rng" in run:
            self.rng.bit_generator.state = run["rng"]
        # (each record's JSON made once, at the first save that holds it: a long run's
        self.records = checkpoint.Records(run.get("metrics", []))  # saves encoded them all)
        self.plot_note_said = False
        # whether it said that the run is failing (the resumed run's too)...
        self.failing_said = bool(run.get("failing_said"))
        self.last_loss = None  # ...from this loss and the one before (``_warn_if_failing``)
        if self.records and not _another_text(run, corpus):
            last = self.records[-1]
            self.last_loss = last["val_loss"] if last.get("val_loss") is not None else \
                last.get("train_loss")
        self.resumed_owing = run.get("pending") is not None  # (a validation: at the end?)
        self.drawn = (None, 0.0, 0.0)  # loss.png's records, when it was drawn, how long it took
        self.plot_prepared = False  # matplotlib imported before the run's clock started
        self.log_due = True  # metrics.jsonl not yet rewritten with this run's records (``_log``)
        self.log_failed = None  # why a checkpoint's rewrite of it failed (said at the end)
        self.init_from = run.get("init_from")  # the checkpoint a fine-tuned run started from
        self.rate_base = run.get("rate_base")  # ...and its model's first rate (``lineage``)
        self.lr_decay = None  # (factor, every): set by _main...
        self.anneal = None  # ...and {"fraction": F[, "window": [start, end]]}
        # the best validation loss: of the resumed run, if on the same text (validation
        # losses of two texts' held-out parts are not compared; the warning says so)
        self.best = None if _another_text(run, corpus) else run.get("best_val_loss")
        self.seconds = run.get("train_seconds") or 0.0  # time in training kernels...
        self.timed_chars = run.get("timed_chars") or 0  # ...and the characters trained in it
        # The time from the start of training, compiling and validations included: in the
        # processes that trained the run before this one, and from this one's start
        self.wall_before, self.started = run.get("wall_seconds") or 0.0, None
        self.stop_reason = self.ended_by = None  # (see the end of _run)
        self.stopped_before = run.get("stopped")  # (what ended the run it resumes)
        self.saved = None  # iteration of the latest checkpoint this run wrote...
        self.saved_records = 0  # ...and the evaluation records it held...
        self.saved_pending = run.get("pending")  # ...and the validation it owed (or resumed)
        # For --time-budget: the latest timed block's seconds per iteration, a validation's,
        # checkpoint's and sample's seconds (0 until there was one; the validation's is
        # estimated before the first)
        self.iteration_seconds = self.eval_seconds = self.save_seconds = self.sample_seconds = 0.0
        # (time, iteration, training seconds) at the first timed block's start: every block
        # after it is timed, its seconds added to ``seconds``
        self.paced_from = None
        self.block_iterations = 1  # a whole call's: a block's at the latest timed one's pace,
        # or the shortest cadence of what is due (a call cut short by what is due, or a rate
        # change, is not one)
        self.budget_set_end = False  # whether --time-budget set the anneal's end
        self.bar = None  # the progress bar, once the first block has run
        self.best_saved = None  # the iteration best.npz holds, once this run wrote it
        self.stderr_noted = False  # whether it said that stderr cannot be written
        self.best_due = None  # [the previous best] while best.npz waits for a sample
        self.seconds_at_eval = self.seconds  # training seconds at the latest validation
        self.eval_noted = False  # whether it said that validations take most of the run
        self.eval_work = None  # the latest validation's seconds, without compiling
        # A validation a stop request (Ctrl-C) cut short, for the resumed run to do first:
        # "iteration" (the iteration's validation and what follows it: its sample, best.npz,
        # checkpoint) or "end" (the final validation)
        self.pending = run.get("pending")
        self.stop = None  # the run's _StopRequests, while it trains
        self.out_id = self._directory_id()  # --out's, to tell if another takes its place
        self.out_lost = False  # whether --out was removed during the run (and made again)
        # whether best.npz in --out holds the run's best, and whether it went with --out
        self.best_here = self.best is not None and ckpt is not None and \
            out.samefile(Path(args.resume).parent)
        self.best_gone = False

    def _directory_id(self):
        found = os.stat(self.out)
        return found.st_dev, found.st_ino

    # -- the loop ------------------------------------------------------------------------------

    def run(self):
        """Train to the target; returns the exit code. A file that cannot be written, or a
        validation that cannot run (the memory it needs), ends the run (exit 1) after its work
        is saved in the checkpoint, if that can still be written, with one line saying where
        the work is; the progress bar is closed first. So does running out of memory in
        training, without saving (the model may be part-way through a call)."""
        try:
            return self._run()
        except _RunFailed as e:
            self._close_bar()
            raise cli.Failure(self._rescued(e)) from None
        except MemoryError as e:  # (past the check of the memory free at the start: a limit
            self._close_bar()     # such as ulimit -v, or other programs taking it since)
            why = str(e) or "an allocation failed"
            raise cli.Failure(f"out of memory at iteration {self.iteration} ({why}); "
                              f"{self._where_the_work_is()}; a smaller --batch-size, "
                              f"--seq-length or --hidden-size needs less") from None
        except BaseException:
            self._close_bar()
            raise

    def _close_bar(self):
        if self.bar is not None:
            self.bar.close()

    def _run(self):
        args, c = self.args, self.model.config
        target = args.iterations
        window = self.window
        noted = window and window[1] < target  # (the note below, which gives --init-from)
        if noted:  # the rate is 0 from there on
            target = window[1]
            _say(args, f"note: the checkpoint's run anneals its learning rate to 0 at iteration "
                       f"{target} (over iterations {window[0]}-{target}): training ends there"
                       + ("; --init-from starts a new run from its weights"
                          if self.iteration >= target and not self.pending else ""))
        if self.iteration >= target and not self.pending:
            asked = "the end of its anneal" if window and target == window[1] else _asked(args)
            ended = window and self.iteration >= window[1] or \
                validate.vanishes(self.learning_rate(), c.dtype)  # (no N trains on: rate 0)
            return self._nothing_to_train(
                f"the checkpoint is already at iteration {self.iteration} ({asked})",
                "" if ended and noted else "; --init-from starts a new run from its weights"
                if ended else f" (--iterations N, above {self.iteration}, trains on)")
        if validate.vanishes(self.learning_rate(), c.dtype) and not self.pending:
            annealed = window and self.iteration >= window[0]  # (as the stop was said)
            how = "" if annealed or not self.lr_decay else \
                f" (--lr-decay {self.lr_decay[0]:g} every {self.lr_decay[1]} iterations)"
            return self._nothing_to_train(
                f"the run's learning rate has {'annealed' if annealed else 'decayed'} to 0 in "
                f"{c.dtype} by iteration {self.iteration}{how}",
                "; --init-from starts a new run from its weights")
        if args.time_budget and args.budget_spent >= args.time_budget and not self.pending:
            return self._nothing_to_train(
                f"the run it resumes has spent its --time-budget {args.time_budget:g} (at "
                f"iteration {self.iteration})", " (--time-budget S trains S seconds more)")
        for note in args.notes:
            _say(args, note)
        _say(args, f"training on {self.shown_path}: {len(self.corpus.train):,} characters "
                   f"(+{len(self.corpus.val):,} held out), vocabulary {len(self.corpus.vocab)}, "
                   + (f"{c.cell} " if c.cell != "rnn" else "")
                   + (f"L={c.num_layers} " if c.num_layers > 1 else "")
                   + (f"dropout {c.dropout!r} " if c.dropout else "")
                   + f"H={c.hidden_size} T={c.seq_length} lr={c.learning_rate}"
                   + self._rate_now() + f" {c.dtype} "
                   + (f"B={c.batch_size} streams " if c.batch_size > 1 else "")
                   + (f"{c.optimizer} " if c.optimizer != "adagrad" else "")
                   + ("" if c.grad_clip == MODEL_DEFAULTS["grad_clip"] else
                      f"grad clip {c.grad_clip:g} " if c.grad_clip else "no grad clip ") +
                   f"on {self.model.backend}"
                   + (f", from iteration {self.iteration}" if self.iteration else ""))
        if args.time_budget:  # (matplotlib's import: before the clock, as the other
            # imports; and a drawing's time, which the plans count)
            seconds = metrics.prepare()
            if seconds is not None:
                self.drawn, self.plot_prepared = (None, 0.0, seconds), True
        self.started, first = time.perf_counter(), self.iteration
        start = self.started - args.budget_spent  # (the budget's: a resume keeps it)
        bar, block, probed = None, 1, False
        with _StopRequests(args) as stop:
            self.stop = stop
            if self.pending == "iteration" and not self._between_blocks():
                self.stop_reason = "interrupted"  # (cut short again)
            elif self.init_from and self.iteration == 0 and not self.records and \
                    args.eval_every and len(self.corpus.val) >= 2 and not self._between_blocks():
                self.stop_reason = "interrupted"  # (a fine-tune's start validated: its best.npz
                # is the checkpoint's model until training betters it)
            while self.iteration < target and self.stop_reason != "interrupted":
                if stop.requested or args.output_closed:
                    self.stop_reason = "interrupted"
                    break
                if validate.vanishes(self.learning_rate(), c.dtype):
                    window = self.window
                    self.stop_reason = "learning rate's " + (
                        "anneal" if window and self.iteration >= window[0] else "decay") + " to 0"
                    break
                if args.time_budget and bar is not None and not probed:
                    probed = True  # (the kernels compiled by now: the estimates are of work)
                    bar.status("timing the final validation and checkpoint for --time-budget")
                    self.eval_seconds = self.eval_seconds or self._estimate_validation()
                    if not self.save_seconds:  # a checkpoint now: the write timed, and kept
                        self._save(CHECKPOINT)
                    self._warn_if_the_ending_overruns(start, args.time_budget)
                if args.time_budget and bar is not None:  # (a sample within the budget's reach:
                    self._sample_seconds(  # timed once, while the budget has room for it)
                        self.iteration, self._reach(start, args.time_budget, target))
                target = self._start_anneal(target, start, bar)
                change = self.schedule().constant_until(self.iteration)
                if self.anneal and "window" not in self.anneal:  # (where it may start)
                    anneal_from = anneal_start(self.anneal["fraction"], target)
                    if anneal_from > self.iteration:
                        change = min(change or target, anneal_from)
                n = min([block, target - self.iteration] +
                        [e - self.iteration % e for e in
                         (args.eval_every, args.sample_every, args.checkpoint_every) if e] +
                        ([change - self.iteration] if change is not None else []))
                if args.time_budget and self._out_of_time(start, args.time_budget, n):
                    self.stop_reason = "time budget"
                    break
                t0 = time.perf_counter()
                with self._compiling() as compiled:
                    losses = self.model.train(self.corpus.train, n, self.learning_rate())
                dt = time.perf_counter() - t0
                if not ((losses <= self.loss_bound).all() and self._params_finite()):
                    if bar is not None:
                        bar.close()
                    return self._diverged(losses)
                self._record(losses, dt if bar is not None else None)
                if bar is None:  # the first call compiled (or loaded) the kernels: not timed
                    bar = self.bar = _Progress(args, self.iteration, target, start)
                    self.iteration_seconds = max(0.0, dt - compiled.seconds) / n  # (its work,
                    # roughly)
                else:
                    block = max(1, min(BLOCK_MAX, int(n * BLOCK_SECONDS / max(dt, 1e-6))))
                    if self.paced_from is None:  # the anneal's estimate paces the run from here
                        self.paced_from = (t0, self.iteration - n, self.seconds - dt)
                    self.iteration_seconds = dt / n
                    self.block_iterations = min([block] + self._cadences())
                    bar.advance(n, self.iteration, f"chunk loss {self.smooth:.3f}, "
                                f"training {n * self.chunk_chars / max(dt, 1e-9):,.0f} chars/s",
                                self._time_to(target))
                # (before what is due at this iteration: a validation, checkpoint, sample)
                target = self._start_anneal(target, start, bar, due_now=True)
                if not self._between_blocks():
                    self.stop_reason = "interrupted"
                    break
                if cli.stderr_lost() and not self.stderr_noted:
                    self.stderr_noted = True
                    _say(args, f"note: {cli.stderr_lost()}: the progress bar is dropped; "
                               f"training goes on")
            if bar is not None:
                if self.stop_reason != "interrupted":
                    bar.finish(self.iteration)
                bar.close()
            if self.iteration == target < args.iterations and not self.stop_reason:
                self.stop_reason = "time budget" if self.budget_set_end else \
                    "learning rate's anneal to 0"
            if self.stop_reason is None and self.iteration == first and self.pending:
                self.stop_reason = self.stopped_before  # (a resume that only validates: what
                # ended the run it resumes, whose final validation this is)
            # what ended the run (not Ctrl-C), recorded even if its final validation is cut
            # short: a resume does that validation, and trains no more under a spent budget
            self.ended_by = None if self.stop_reason == "interrupted" else self.stop_reason
            if self.stop_reason != "interrupted" and (
                    not self.records or self.records[-1]["iteration"] != self.iteration):
                self.pending = None  # (not in best.npz, which this validation may write)
                try:
                    done = self._evaluate()
                except _ValidationFailed:
                    self.pending = "end"
                    raise
                if not done:
                    self.pending, self.stop_reason = "end", "interrupted"
            if self.pending or self.ended_by or \
                    (self.saved, self.saved_records) != (self.iteration, len(self.records)):
                self._save(CHECKPOINT)  # (unless the latest checkpoint holds all of it)
            self._draw(final=True)
            if self.stop_reason != "interrupted" and (self.iteration > first or
                                                      self.resumed_owing):  # (to its end)
                self._warn_if_failing(self.best, best=True)
            return self._finish()  # (inside: a hangup while it prints does not kill it)

    def _nothing_to_train(self, why, hint=""):
        """Say ``why`` there is nothing to train, remove --out if this run made it (empty but
        for the lock), and return exit code 0."""
        _say(self.args, f"{why}: nothing to train{hint}")
        if self.args.made_out:
            files.unlock(self.args.lock, self.out)
            try:
                self.out.rmdir()
            except OSError:
                pass
        return 0

    def _wall(self):
        """The run's seconds from the start of its training, over every process of it."""
        now = 0.0 if self.started is None else time.perf_counter() - self.started
        return self.wall_before + now

    def _start_anneal(self, target, start, bar, due_now=False):
        """Fix the anneal's window if it starts now; return the run's end (the window's).
        ``due_now``: what is due at this iteration (``_between_blocks``) is still to come.

        Without --time-budget, or when the iterations will end the run before the budget
        does, the window is the last share of --iterations. When the budget will end it
        first (at the run's pace, measured over at least 2% of the budget), the window starts
        when the budget's last share begins and ends where the rest of the budget runs out,
        in no more steps than keep the kernel calls as long as they were (each step at least
        ``STEP_CALLS`` whole calls, at the latest call's pace), so that the pace holds to the
        end. Under a budget, which ends the run first is known once its pace is measured, over
        2% of the budget: a share that begins before that (--anneal near 1, or a resume inside
        it) starts then."""
        if not self.anneal or "window" in self.anneal:
            return target
        args, fraction, budget = self.args, self.anneal["fraction"], self.args.time_budget
        first, end, steps = anneal_start(fraction, target), target, PIECES
        of = _asked(args, whose=False)
        if budget:
            if self.paced_from is None:
                return target  # (no pace yet)
            left = self._iterations_left(start, budget, target, due_now)
            if self.iteration + left < target:  # the budget ends the run first
                now = time.perf_counter()
                if now - start < (1 - fraction) * budget or \
                        now - self.paced_from[0] < 0.02 * budget:
                    return target
                if not left:  # (no iteration fits before the ending: the run stops
                    return target  # unannealed, resumable, "before the anneal began")
                end, first, of = self.iteration + left, self.iteration, f"the {budget:g} s budget"
                steps = min(PIECES, max(1, left // (STEP_CALLS * self.block_iterations)))
                self.budget_set_end = True
        if self.iteration < first:
            return target
        self.anneal = {**self.anneal, "window": [self.iteration, end], "steps": steps}
        if self.records and self.records[-1]["iteration"] == self.iteration:  # (written with
            # the rate before the window, which the iterations after it no longer train at)
            self.records[-1] = {**self.records[-1], "learning_rate": self.learning_rate()}
            self.log_due = True  # (rewritten whole at the run's next write)
        began = f"; that share began at iteration {first}, so the anneal starts here" \
            if first < self.iteration else ""  # (given on --resume, or a budget's found late)
        coarse = f" in only {steps} step{'s' * (steps > 1)} (a step lasts at least " \
            f"{STEP_CALLS} kernel calls: a longer budget or --anneal makes more)" \
            if steps < PIECES // 10 else ""
        share = "all" if fraction == 1 else f"the last {fraction:g}"
        _say(args, f"annealing the learning rate linearly to 0 over iterations "
                   f"{self.iteration}-{end} ({share} of {of}{began}){coarse}")
        if bar is not None:
            bar.target = end
        return end

    def _iterations_left(self, start, budget, target, due_now=False):
        """How many iterations the rest of the budget holds, less the run's ending and a
        whole call (``_ending_seconds``): the most whose time (``_cost``) fits
        in 97% of it, so that the anneal ends within the budget if the pace holds; 0 if none
        does (a sample due by then, and by ``target``, the run's end, estimated first if none
        was timed)."""
        def bound():  # (seconds, and iterations at the kernels' pace alone, 0: none fits;
            # the cost of one iteration, a checkpoint or sample due at it included, made the
            # bound, and the window, a hundredth of the share)
            left = 0.97 * (budget - (time.perf_counter() - start) - self._ending_seconds())
            return left, max(0, int(left / max(self._pace(), 1e-9)) + 1)

        self._sample_seconds(self.iteration - due_now, min(target, self.iteration + bound()[1]))
        left, high = bound()  # (after a sample's estimate, if one in reach was first made now)
        low = 0
        while low < high:  # (the cost grows with the iterations: the last that fits)
            mid = (low + high + 1) // 2
            low, high = (mid, high) if self._cost(mid, due_now) <= left else (low, mid - 1)
        return low

    def _cost(self, n, due_now=False):
        """Seconds the next n iterations take: their kernel calls', at the pace timed since
        the run's pace began, and the validations (each with a drawing of loss.png and, with a
        held-out text, best.npz), checkpoints and samples due among them, each as long as the
        latest (a validation at the n-th is the run's final one, in ``_closing_seconds``;
        ``due_now``: those due at this iteration are still to come, and counted). (The
        time between two dates, which this replaced, counted what happened to fall between
        them: a 10 s budget's anneal fixed before the first validation ended past the budget's
        end; one fixed after it and matplotlib's import, 6 s before.)"""
        args, first, end = self.args, self.iteration - due_now, self.iteration + n

        def due(every, last):  # how many multiples of ``every`` in (first, last]
            return last // every - first // every if every else 0

        return (n * self._pace() + due(args.eval_every, end - 1) * self._validation_seconds()
                + due(args.checkpoint_every, end) * self.save_seconds
                + due(args.sample_every, end) * self.sample_seconds)

    def _sample_seconds(self, first, last):
        """Under --time-budget, before any sample was timed, a sample's seconds estimated
        (``_estimate_sample``) if one is due after iteration ``first`` and by ``last``: a run
        whose budget cannot reach its first sample compiles no sampling kernel (it did at the
        start, 2.6 s of a 60 s budget for nothing)."""
        every = self.args.sample_every
        if self.args.time_budget and every and not self.sample_seconds and \
                last // every > first // every:
            self.sample_seconds = self._estimate_sample()

    def _reach(self, start, budget, target):
        """The last iteration the rest of ``budget`` could hold at the latest call's pace, the
        run's ending aside (at most ``target``)."""
        left = max(0.0, budget - (time.perf_counter() - start))
        return min(target, self.iteration + int(left / max(self.iteration_seconds, 1e-9)) + 1)

    def _pace(self):
        """The kernel calls' seconds per iteration since the run's pace began (``paced_from``)."""
        _, since, seconds = self.paced_from
        return (self.seconds - seconds) / max(1, self.iteration - since)

    def _time_to(self, target):
        """Seconds to the run's end at ``target``, for the progress bar (after a block, before
        what is due at its end): the iterations left, with the validations, samples and
        checkpoints due among them and at this iteration (``_cost``), and the run's closing;
        0 once there (the bar is of training: 100% as its last block ends)."""
        if self.iteration >= target:
            return 0.0
        return self._cost(target - self.iteration, due_now=True) + self._closing_seconds()

    def _cadences(self):
        """The intervals at which something due cuts every kernel call (validations, samples,
        checkpoints, char-rnn's decay steps): a call is never longer than the shortest."""
        args, decay = self.args, self.schedule().decay
        return [e for e in (args.eval_every, args.sample_every, args.checkpoint_every,
                            decay[1] if decay else 0) if e]

    def _ending_seconds(self):
        """A whole call's time (``block_iterations``), at the latest call's pace, and the run's
        closing (``_closing_seconds``)."""
        return self.block_iterations * self.iteration_seconds + self._closing_seconds()

    def _closing_seconds(self):
        """The final validation (``_validation_seconds``) and the final checkpoint, each as
        long as the latest."""
        return self._validation_seconds() + self.save_seconds

    def _validation_seconds(self):
        """A validation's seconds, as long as the latest: its evaluation (without compiling
        its kernels: a fine-tune's first, at iteration 0, compiles them), its drawing of
        loss.png and, with a held-out text, the best.npz it may write."""
        took = self.eval_seconds if self.eval_work is None else self.eval_work  # (no compiling)
        return took + self.drawn[2] + (self.save_seconds if len(self.corpus.val) >= 2 else 0.0)

    def _warn_if_the_ending_overruns(self, start, budget):
        """A note when the run's ending (the final validation and checkpoint, as timed now)
        does not fit in what is left of the budget: the run stops at once, and ends late."""
        used = time.perf_counter() - start
        left, ending = budget - used, self._closing_seconds()
        if left <= 0:  # (a first call, compiling, took what was left: all of it, unless resumed)
            spent, mine = self.args.budget_spent, used - self.args.budget_spent
            what = f"the {_seconds(budget - spent)} s left of the {budget:g} s budget were" \
                if spent else f"the {budget:g} s budget was"
            _say(self.args, f"note: {what} spent before training got going ({_seconds(mine)} s, "
                            f"compiling the kernels included): the run ends after its final "
                            f"validation and checkpoint, about {_seconds(ending - left)} s late "
                            f"(a larger --time-budget trains)")
        elif ending > left:
            _say(self.args, f"note: the final validation and checkpoint take about "
                            f"{_seconds(ending)} s, more than the {_seconds(max(left, 0))} s "
                            f"left of the {budget:g} s budget: the run ends about "
                            f"{_seconds(ending - left)} s late (a smaller "
                            f"--val-fraction, or a larger --time-budget, fits)")

    def _out_of_time(self, start, budget, n):
        """Whether a block of ``n`` iterations would end the run past ``budget`` seconds from
        ``start``: the time so far, plus the block's at the latest call's pace (not that call's
        time: what was due may have cut it short), the sample and checkpoint it ends at (if it
        does), the final validation with the best.npz it may write, and the final checkpoint,
        each as long as the latest (so that the run, its final validation and checkpoint
        included, ends within the budget)."""
        args, end = self.args, self.iteration + n
        ending = n * self.iteration_seconds + self._closing_seconds()  # (at the latest pace)
        if args.sample_every and end % args.sample_every == 0:
            ending += self.sample_seconds
        if args.checkpoint_every and end % args.checkpoint_every == 0:
            ending += self.save_seconds
        return time.perf_counter() - start + ending >= budget

    def _estimate_validation(self, share=16):
        """Seconds the final validation would take, for --time-budget before any validation
        was timed (e.g. with --eval-every 0): the validation kernels compiled (or loaded), and
        the buffers of its passes made, on a pass of EVAL_STEPS steps of every stream, then
        timed on the first 1/``share`` of the held-out text, two passes at least (where a model
        of several layers runs them over threads, as the validation does), scaled to all of it.
        (From a sixteenth of 2,230 characters, one pass, on one thread, with new buffers, the
        estimate was 2.3-3x a large model's validation, and its run stopped at once:
        ``benchmarks/budget_estimate.py``.) The model is unchanged (``evaluate`` reads a copy of
        the state)."""
        val, streams = self.corpus.val, self.args.val_streams
        if len(val) < 2:
            return 1e-9  # no validation to hold time for (nonzero: estimated)
        state = self.model.first_stream_state()
        passes = EVAL_STEPS * streams
        part = val[:min(len(val), max(len(val) // share, 2 * passes + 1))]
        return self._scaled_time(
            lambda text: self._evaluate_text(text, state), val[:min(len(val), passes + 1)],
            part, (len(val) - 1) / (len(part) - 1), VALIDATION)

    def _evaluate_text(self, text, state, progress=None):
        """``model.evaluate`` of ``text`` with the run's --val-streams; the memory it needs,
        over what is available now, is a _ValidationFailed, which ends the run with its work
        saved (and the validation left for the resumed run to do first, if one was due)."""
        try:
            return self.model.evaluate(text, state=state, progress=progress,
                                       streams=self.args.val_streams)
        except (validate.NotEnoughMemory, MemoryError) as e:
            why = str(e) or "out of memory"
            raise _ValidationFailed(f"the validation at iteration {self.iteration} cannot run: "
                                    f"{why}") from None

    def _estimate_sample(self, share=16):
        """Seconds a sample would take, for --time-budget before the first: the sampling kernel
        compiled (or loaded) on one character, then timed on 1/``share`` of --sample-length,
        scaled. Its randomness is a generator of its own, not the run's; the model's state is
        not changed. A sample the memory available refuses is skipped when due
        (``_sample``): nothing (1e-9) to hold time for."""
        n = self.args.sample_length
        part = max(1, n // share)
        try:
            return self._scaled_time(
                lambda k: self.model.sample(k, 0, rng=np.random.default_rng(0)), 1, part,
                n / part, SAMPLING)
        except validate.NotEnoughMemory:
            return 1e-9

    def _scaled_time(self, call, warm, part, scale, kernels):
        """``call(part)``'s seconds times ``scale``, after ``call(warm)`` compiled (or loaded)
        its ``kernels``; at least 1e-9 (nonzero: estimated)."""
        with self._compiling(kernels):
            call(warm)
        start = time.perf_counter()
        call(part)
        return max(1e-9, (time.perf_counter() - start) * scale)

    def _compiling(self, kernels=TRAINING):
        """Around a model call: one status line if its kernels compile (not from the cache),
        naming them (a first run compiles three sets: training, validation, sampling)."""
        return compiling.announce(lambda line: _say(self.args, line), self.model.config.dtype,
                                  kernels)

    def _record(self, losses, seconds):
        """Append a block's losses; ``seconds`` is its time (None: untimed, e.g. compilation)."""
        n = len(losses)
        self.history.extend(losses)
        streams = self.model.config.batch_size
        smooth = float(losses[0]) / streams if self.smooth is None else self.smooth
        for loss in losses.tolist():  # min-char-rnn's smoothed loss of one stream's chunk
            smooth = smooth * 0.999 + (loss / streams) * 0.001
        self.smooth = smooth
        self.iteration += n
        if seconds is not None:
            self.seconds += seconds
            self.timed_chars += n * self.chunk_chars

    def _params_finite(self):
        return bool(np.isfinite(self.model.weights.flat).all())

    # -- what happens between blocks -----------------------------------------------------------

    def _between_blocks(self):
        """What is due at this iteration, between two blocks of training: the validation,
        the sample (then best.npz, ``_save_best``), the checkpoint. False if a stop request
        cut the validation short: the rest waits for it, in the resumed run (``pending``),
        which does that validation even if its --eval-every would not."""
        args = self.args
        owed, self.pending = self.pending == "iteration", None
        sample = args.sample_every and self.iteration % args.sample_every == 0
        if owed or args.eval_every and self.iteration % args.eval_every == 0:
            try:
                done = self._evaluate(best_after_sample=sample)
            except _ValidationFailed:
                self.pending = "iteration"  # (saved so: the resumed run does it first)
                raise
            if not done:
                self.pending = "iteration"
                return False
        if sample:
            self._sample()
            self._save_best()
        if args.checkpoint_every and self.iteration % args.checkpoint_every == 0:
            self._save(CHECKPOINT)
        return True

    def _stopping(self):
        """Whether a stop (Ctrl-C, SIGTERM) was asked for during the training loop."""
        return self.stop is not None and self.stop.requested

    def _evaluate(self, best_after_sample=False):
        """A validation (``_validate``); False if a stop request cut it short (or came before
        it began)."""
        try:
            if self._stopping():
                raise _CutShort
            compiled = self._validate(best_after_sample)
        except _CutShort:
            _say(self.args, f"the validation at iteration {self.iteration} is left for the "
                            f"resumed run to do first")
            return False
        work = self.eval_work = self.eval_seconds - compiled  # (a first one may compile)
        trained, self.seconds_at_eval = self.seconds - self.seconds_at_eval, self.seconds
        if work > max(LONG_VALIDATION, 2 * trained) and self.iteration < self.args.iterations \
                and trained > 0 and not self.eval_noted:
            self.eval_noted = True
            _say(self.args, f"note: a validation takes {work:.0f} s, against {trained:.1f} s of "
                            f"training between two: a larger --eval-every, a smaller "
                            f"--val-fraction or --val-streams N (N streams, on all cores) "
                            f"spend less of the run on it")
        return True

    def _validate(self, best_after_sample=False):
        """Validation over the held-out text: a metrics record, and best.npz if it improved
        (``best_after_sample``: once the iteration's sample is drawn, ``_save_best``, so that
        best.npz holds the samples' generator as training goes on with it). Sets
        ``eval_seconds``, the evaluation's time (not the drawing's or best.npz's, timed
        apart); returns the seconds it spent compiling kernels. A stop request (Ctrl-C) cuts
        it short: _CutShort, between two of its kernel calls."""
        val = self.corpus.val
        val_loss = None
        start = time.perf_counter()
        if len(val) >= 2:
            # From (a copy of) the training state, not zeros: early in training a vanilla RNN's
            # state can have several attractors, and zeros may lead to one training never visits.
            state = self.model.first_stream_state()
            took = self.eval_seconds if self.eval_work is None else self.eval_work
            if not took:  # (not timed yet)
                if len(val) >= LONG_VALIDATION_CHARS:
                    _say(self.args, f"validating on {len(val):,} held-out characters...")
            elif took >= LONG_VALIDATION:  # (the latest one's, or --time-budget's estimate)
                _say(self.args, f"validating on {len(val):,} held-out characters (about "
                                f"{took:.0f} s)...")
            done = [0]  # characters predicted
            bar = cli.DelayedBar("validating", len(val) - 1, "char", self.args.quiet,
                                 # (below the training bar on a terminal; in a log file on
                                 # its line: no cursor moves, ESC[A)
                                 position=None if sys.stderr.isatty() else 0)

            def progress(n):
                done[0] += n
                bar.update(n)
                if self._stopping() and done[0] < len(val) - 1:
                    raise _CutShort  # (not once it is done: kept, not done again)

            with self._compiling(VALIDATION) as compiled:
                try:
                    val_loss = self._evaluate_text(val, state, progress)
                finally:  # (before "compiled in", which would draw it again)
                    bar.close()
            val_loss = val_loss[0] / (len(val) - 1)
        self.eval_seconds = max(1e-9, time.perf_counter() - start)  # (nonzero: timed)
        train_loss = self._train_loss()
        record = {"iteration": self.iteration, "epoch": round(self._epochs(), 4),
                  "chars": self.iteration * self.chunk_chars,
                  "train_loss": train_loss, "train_bpc": metrics.bits(train_loss),
                  "val_loss": val_loss, "val_bpc": metrics.bits(val_loss),
                  "val_streams": self.args.val_streams,
                  "learning_rate": self.learning_rate(),
                  "train_seconds": round(self.seconds, 3), "wall_seconds": round(self._wall(), 3),
                  "chars_per_s": round(self.timed_chars / self.seconds, 1) if self.seconds else None}
        self.records.append(record)
        self._log(record)
        self._draw()
        line = f"iteration {self.iteration} (epoch {record['epoch']:.2f}):"
        if train_loss is not None:
            line += f" train loss {train_loss:.4f} nats/char"
        elif val_loss is None:
            line += " nothing trained or validated"
        if val_loss is not None:
            streams = self.args.val_streams
            line += (f"{',' if train_loss is not None else ''} "
                     f"validation{f' ({streams} streams)' if streams > 1 else ''} "
                     f"{val_loss:.4f} nats/char = {record['val_bpc']:.4f} bits/char")
            if self.best is None or val_loss < self.best:
                self.best_due, self.best = [self.best], val_loss  # (best.npz's record holds it)
                if not best_after_sample:
                    self._save_best()
        _say(self.args, line)
        self._warn_if_failing(val_loss if val_loss is not None else train_loss)
        return compiled.seconds if len(val) >= 2 else 0.0

    def _warn_if_failing(self, loss, best=False):
        """Once a run (resumed runs included: the checkpoint says whether it was said, and
        the loss before is the latest record's): a warning when two validation (or, without
        them, training) losses in a row are more than FAILING times a uniform guess's, ln V
        (an untrained model's is about 1 times), the second no lower, or when the ``best``
        validation loss of a run that has trained to its end is (after FAILING_AFTER
        iterations at least: fewer tell too little): the run is failing, short of diverging
        (config.DIVERGED_LOSS), e.g. at a learning rate too high to learn yet not to blow up,
        and its best.npz is worse than untrained. (One such loss, or falling ones, are not: a
        spike, or a fine-tuned model's first steps on a text unlike its own.)"""
        V = self.model.config.vocab_size
        bound, before = FAILING * math.log(V), self.last_loss
        if not best:
            self.last_loss = loss
        if loss is None or loss <= bound or self.failing_said or not best and (
                before is None or not bound < before <= loss) or \
                best and self.iteration < FAILING_AFTER:
            return
        self.failing_said = True
        warning = (f"{'its best validation loss' if best else 'a loss'}, {loss:.4f} nats/char, "
                   f"is more than {FAILING} times a uniform guess's (ln {V} = "
                   f"{math.log(V):.4f}): the model is learning nothing; a smaller "
                   f"--learning-rate usually helps")
        if self.args.quiet:  # (on stderr, as the other warnings: --quiet had hidden it)
            cli.warn(PROG, warning)
        else:
            _say(self.args, f"warning: {warning}")

    def _train_loss(self):
        """The mean loss per character of the iterations since the previous record (the
        latest iteration's if none came between, or past 2^16 iterations the mean of its entry
        in the history; None before the first): what the model did on the text it trained on
        in that time, next to the validation's. (Not min-char-rnn's smoothed loss, the progress
        bar's, which is an average over the last thousand or so iterations that starts from an
        untrained model's loss: a run of a few hundred iterations showed little but that
        start.)"""
        if self.iteration == 0:
            return None
        start = min(self.records[-1]["iteration"] if self.records else 0, self.iteration - 1)
        return self.history.sum_since(start) / ((self.iteration - start) * self.chunk_chars)

    def _save_best(self):
        """best.npz, if the latest validation improved on the best."""
        if self.best_due is None:
            return
        [previous], self.best_due = self.best_due, None
        try:
            self._save(BEST)
        except _WriteFailed:
            self.best = previous  # (the checkpoint saved next must not claim it)
            raise

    def _epochs(self):
        """Passes over the training text so far, as char-rnn counts them: iterations (since the
        run began training on this text) over the chunks a stream reads before it wraps to the
        start of its piece (``reference.wraps``)."""
        piece = len(self.corpus.train) // self.model.config.batch_size
        passes = reference.chunks_per_pass(piece, self.model.config.seq_length)
        return (self.iteration - self.data["from"]) / passes

    def _sample(self):
        """The sample of this iteration, printed; a stop request (Ctrl-C) cuts it short between
        two kernel calls, the text drawn so far printed (the run's generator draws the rest's
        randomness all the same: the resumed run goes on as one not interrupted). It is drawn
        a kernel call at a time (``CharRNN.sample_call_chars``), each from the state the last
        left: the same text as one call. One refused the memory it needs is skipped, said."""
        start = time.perf_counter()
        train = self.corpus.train
        seed_ix = int(train[min(self.model.position, len(train) - 1)])
        n, ids, state = self.args.sample_length, [], None
        try:
            validate.sample_fits(n)  # (the whole sample's, as one call's)
        except validate.NotEnoughMemory as e:  # (a sample is only shown: the run goes on)
            _say(self.args, f"----- sample at iteration {self.iteration} skipped: {e}")
            return
        with self._compiling(SAMPLING) as compiled:
            while len(ids) < n and not (ids and self._stopping()):
                piece, state = self.model.sample(min(self.model.sample_call_chars, n - len(ids)),
                                                 seed_ix, rng=self.rng, state=state)
                ids += piece
                seed_ix = piece[-1]
        text = _shown(self.corpus.vocab.decode(ids))
        if len(ids) < n:  # (cut short)
            self.rng.random(n - len(ids))  # (the rest's randomness, as if it had been drawn)
            _say(self.args, f"----- sample at iteration {self.iteration} cut short (stopping)\n"
                            f"{text}\n-----", lines=True)
            return
        _say(self.args, f"----- sample at iteration {self.iteration}\n{text}\n-----",
             lines=True)
        self.sample_seconds = time.perf_counter() - start - compiled.seconds  # (its work)

    @property
    def window(self):
        """The anneal's [start, end] once it has started, else None."""
        return (self.anneal or {}).get("window")

    def schedule(self):
        window = self.window
        return Schedule(self.model.config.learning_rate, self.lr_decay,
                        (*window, self.anneal.get("steps", PIECES)) if window else None)

    def learning_rate(self):
        """The learning rate of the next iterations (blocks never cross a change of it)."""
        return self.schedule()(self.iteration)

    def _rate_now(self):
        """" (now R: why)" for the header of a run resumed where its schedule has moved the
        rate from the config's (which it showed alone, as if the schedule had been lost)."""
        rate, why = self.learning_rate(), []
        if rate == self.model.config.learning_rate:
            return ""
        if self.lr_decay and self.iteration >= self.lr_decay[1]:  # (once it has begun)
            factor, every = self.lr_decay
            why.append(f"decayed by {factor:g} every {every} iterations")
        if self.window:  # (once it has begun)
            why.append(f"annealing to 0 by iteration {self.window[1]}")
        return f" (now {rate:.4g}: {', '.join(why)})"

    def _state(self):
        return {"iteration": self.iteration, "smooth_loss": self.smooth,
                "rng": self.rng.bit_generator.state, "metrics": self.records,
                "best_val_loss": self.best, "train_seconds": self.seconds,
                "wall_seconds": self._wall(),
                "timed_chars": self.timed_chars, "val_streams": self.args.val_streams,
                "backend": self.model.backend, "data": self.data,
                "cadence": {key: getattr(self.args, key) for key in CADENCE},
                # the run's end, which a resume without --iterations trains to, and its budget,
                # counted from budget_from (in wall_seconds), which such a resume keeps
                "target": self.args.iterations,
                **({"loss_stride": self.history.stride} if self.history.stride > 1 else {}),
                **({"time_budget": self.args.time_budget, "budget_from": self.args.budget_from}
                   if self.args.time_budget else {}),
                **({"stopped": self.ended_by} if self.ended_by else {}),
                **({"pending": self.pending} if self.pending else {}),
                **({"failing_said": True} if self.failing_said else {}),
                **({"init_from": self.init_from} if self.init_from else {}),
                **({"rate_base": self.rate_base} if self.rate_base else {}),
                **({"lr_decay": self.lr_decay} if self.lr_decay else {}),
                **({"anneal": self.anneal} if self.anneal else {})}

    def _write(self, name, write, *what):
        """``write(out / name, *what)``; an OSError (e.g. a full disk) is a _WriteFailed. If
        --out is gone (removed or moved during the run), it is made again first (``_remade``)
        and the write tried there."""
        for attempt in range(2):
            try:
                if self._replaced():  # (then its files are not this run's to replace)
                    raise OSError(errno.EEXIST, f"{self.out} is another directory than the "
                                                f"run's, which was removed or moved")
                return write(self.out / name, *what)
            except OSError as e:
                if attempt or not self._remade():
                    raise _WriteFailed(name, f"could not write {self.out / name}: "
                                             f"{e.strerror or e}") from None
                if name == METRICS:  # (rewritten whole by _remade)
                    return None

    def _replaced(self):
        """Whether another directory than the run's stands at --out (its own removed or moved
        during the run, and another made there: another run's, perhaps). One whose id changed
        is still the run's if its lock file holds this process's pid (``files.claim``): a
        filesystem may give a directory another id (a remount, some network filesystems)."""
        try:
            now = self._directory_id()
        except OSError:
            return False  # (gone: made again by _remade)
        if now == self.out_id:
            return False
        if files.holder(self.out) == os.getpid():
            self.out_id = now
            return False
        return True

    def _remade(self):
        """--out made again, locked and its log rewritten whole, when it is gone: the run's
        work, in memory, can then be saved. False when it is there (the write failed for
        another reason) or cannot be made or locked (another run has taken the path)."""
        if os.path.lexists(self.out):
            return False
        try:
            self.out.mkdir(parents=True)
            lock = files.lock(self.out)
        except (OSError, files.Locked):
            return False
        if self.args.lock is not None:
            self.args.lock.close()
        self.args.lock = lock
        files.claim(lock)
        self.out_id = self._directory_id()
        self.saved = self.best_saved = None  # (in the directory that went, with best.npz)
        self.drawn = (None, 0.0, 0.0)  # (so was loss.png)
        self.best_gone = self.best_gone or self.best_here
        self.best_here, self.out_lost = False, True
        try:
            metrics.rewrite(self.out / METRICS, self.records)
        except OSError:
            return False
        self.log_due = False
        _say(self.args, f"note: {self.out} was removed or moved while the run wrote there: "
                        f"made again, to save the run in")
        return True

    def _rescued(self, failure):
        """The line for a run a _RunFailed ends: the failure, then where the work is. Work
        that no checkpoint holds yet is first saved in the checkpoint (if what failed was a
        write, of a file of its own), if it can be."""
        message = str(failure)
        if failure.name != CHECKPOINT and self.iteration > 0 and not self._replaced() and \
                (self.iteration not in (self.saved, self.resumed_at) or
                 self.pending != self.saved_pending):
            try:
                self._save(CHECKPOINT)
            except _WriteFailed as again:
                message = f"{message}; {again}"
            except MemoryError as again:  # (a run that ran out of memory: the save may too)
                message = (f"{message}; saving the run ran out of memory too "
                           f"({again or 'an allocation failed'})")
            else:
                owed = OWED if isinstance(failure, _ValidationFailed) and self.pending else ""
                if failure.name != METRICS:  # (else the line says it)
                    self._stale_log()
                return (f"{message}; the run is saved in {self.out / CHECKPOINT} (iteration "
                        f"{self.iteration}){owed}")
        return f"{message}; {self._where_the_work_is()}"

    def _where_the_work_is(self):
        """The latest checkpoint on disk that holds this run's work, in words (and best.npz,
        if it holds a later iteration)."""
        replaced = self._replaced()
        best = self.best_saved is not None and not replaced and (self.out / BEST).is_file()
        later = f"; {self.out / BEST} holds iteration {self.best_saved}" if best and \
            self.best_saved > max(self.saved or 0, self.resumed_at or 0) else ""
        if self.saved is not None:  # (of this --out: reset when it is made again)
            if replaced:
                return (f"the checkpoint of iteration {self.saved} went with {self.out} "
                        f"(removed or moved)")
            if (self.out / CHECKPOINT).is_file():
                return (f"the last checkpoint is {self.out / CHECKPOINT} (iteration "
                        f"{self.saved}){later}")
            return (f"the checkpoint of iteration {self.saved}, {self.out / CHECKPOINT}, was "
                    f"removed or replaced{later}")
        if self.resumed_at is not None:
            resumed = Path(self.args.resume)
            inside = resumed.absolute().parent == self.out.absolute()
            if resumed.is_file() and not (inside and (replaced or self.out_lost)):
                return f"the last checkpoint is {resumed} (iteration {self.resumed_at}){later}"
            return (f"the checkpoint resumed ({resumed}, iteration {self.resumed_at}) is "
                    f"gone{later}")
        said = "no checkpoint of this run was written"
        if best:
            said += f" ({self.out / BEST} holds iteration {self.best_saved})"
        else:  # (what rundir.settle_aside, as the run returns, will put back)
            aside = [name for name in getattr(self.args, "overwritten", ())
                     if (self.out / (name + ASIDE)).is_file()]
            if aside and not replaced and not self.out_lost:
                said += f"; the run --overwrite was to replace is put back ({', '.join(aside)})"
        return said

    def _stale_log(self):
        """A warning, as the run ends, that metrics.jsonl could not be rewritten with its
        records (at a checkpoint, ``_save``; no write of it followed)."""
        if self.log_due and self.log_failed:
            cli.warn(PROG, f"{self.log_failed}: it does not hold the run's records, which its "
                           f"checkpoint does (a resume writes them)")

    def _log(self, record=None):
        """metrics.jsonl: ``record`` appended (the latest of ``records``), or, at the run's first
        write to it (its first validation or checkpoint), rewritten whole with the run's records
        (a resumed checkpoint's: a log may hold records past it, a killed run's, or another
        file's, resuming best.npz), so that a run that writes nothing (diverging at once) leaves
        the log as it found it."""
        if self.log_due:
            self._write(METRICS, metrics.rewrite, self.records)
            self.log_due = False
        elif record is not None:
            self._write(METRICS, metrics.append, record)

    def _draw(self, final=False):
        """Draw loss.png from the records, unless it holds them all, or (but for the ``final``
        drawing) the latest drawing took more than PLOT_SHARE of the time since."""
        now = time.perf_counter()
        if not self.records or self.log_due or self.drawn[0] == len(self.records) or \
                not final and self.drawn[2] > PLOT_SHARE * (now - self.drawn[1]):
            return  # (the picture follows the log: none from a run that wrote nothing)
        # (the first one's time is mostly matplotlib's import: not counted, unless it was
        # imported beforehand, ``metrics.prepare``)
        first = self.drawn[0] is None and not self.plot_prepared
        why = self._write(PLOT, metrics.plot, self.records)
        done = time.perf_counter()
        self.drawn = (len(self.records), done, 0.0 if first else done - now)
        if why and not self.plot_note_said:
            self.plot_note_said = True  # once a run: the picture is optional, the log is not
            _say(self.args, f"note: {PLOT} is not drawn: {why}; {METRICS} has the same numbers")

    def _save(self, name):
        start = time.perf_counter()
        ckpt = Checkpoint.of(self.model, self.corpus.vocab, self.history.entries(),
                             self._state(), views=True)  # (written now: no copies)
        try:
            self._write(name, checkpoint.save, ckpt)
        except CheckpointError as e:  # (the file before it is left as it was)
            raise _WriteFailed(name, str(e)) from None
        self.save_seconds = time.perf_counter() - start  # best.npz's too: the same size
        try:
            self._log()  # (the log of what the checkpoint holds, if not yet written)
        except _WriteFailed as e:  # (the checkpoint is saved: the log's next write, or the
            self.log_failed = str(e)  # run's end, says why the log is not)
        rundir.settle_aside(self.args, self.out)  # (--overwrite's old run: removed, now that this
                                            # run has a file of its own here)
        if name == CHECKPOINT:
            self.saved, self.saved_records = self.iteration, len(self.records)
            self.saved_pending = self.pending
        else:
            self.best_saved, self.best_here = self.iteration, True

    # -- endings --------------------------------------------------------------------------------

    def _diverged(self, losses):
        good = losses <= self.loss_bound  # (False for NaN)
        if good.all():  # the last update made the parameters inf or NaN
            what = f"iteration {self.iteration + len(losses)} (its update made the parameters inf/NaN)"
        else:
            bad = int(np.argmin(good))
            loss = losses[bad] / self.chunk_chars
            what = f"iteration {self.iteration + bad + 1} (loss {loss:.4g} nats/char" + (
                f", over {DIVERGED_LOSS} times a uniform guess's "
                f"{self.loss_bound / self.chunk_chars / DIVERGED_LOSS:.2f})"
                if np.isfinite(loss) else ")")
        try:
            self._draw(final=True)
        except _WriteFailed:  # (the divergence is what to say)
            pass
        self._stale_log()
        cli.error(f"{PROG}: error: training diverged at {what}; {self._where_the_work_is()}; "
                  f"try a smaller --learning-rate")
        return cli.EXIT_FAILED

    def _finish(self):
        where = self.out / CHECKPOINT
        self._stale_log()
        window = self.window
        if self.stop_reason == "interrupted":
            why = self.args.output_closed or "interrupted"
            bare = window[1] if window else DEFAULT_ITERATIONS  # (said unless the default: the
            # run's own end, which a resume now keeps, but explicit in the line)
            more = f" --iterations {self.args.iterations}" if self.args.iterations != bare and \
                not (window and self.args.iterations > bare) and not self.args.time_budget \
                else ""  # (under a budget, which --iterations would drop: both recorded)
            if self.model.backend != "numba":  # (the default; the same kernels: the same bits)
                more += f" --backend {self.model.backend}"
            cli.error(f"{PROG}: {why} at iteration {self.iteration}; saved {where}; continue "
                      f"with: python -m fastrnn.train --resume {cli.quoted(where)}{more}")
            return cli.EXIT_INTERRUPTED
        last = self.records[-1] if self.records else {}
        summary = f"done: iteration {self.iteration}"
        annealed = window is not None and self.iteration >= window[1]  # (to its end: said
        # alike however the run got there: resumed or not, its end set by a budget or not)
        if self.stop_reason and not annealed:
            summary = f"stopped by the {self.stop_reason}: iteration {self.iteration}"
        if annealed:
            summary += " (the end of its anneal)"
        elif window and not (self.stop_reason or "").endswith("to 0"):  # (a rate that
            # vanished says so)
            reached = self.schedule()(max(self.iteration - 1, window[0]))  # (the last trained)
            summary += f" (before the anneal's end at iteration {window[1]}: the rate was " \
                       f"{reached:.3g})"
        elif self.stop_reason == "time budget" and self.anneal:
            summary += " (before the anneal began)"
        if last.get("val_loss") is not None:
            streams = last.get("val_streams") or 1  # (as the validation's own line says)
            summary += (f", validation{f' ({streams} streams)' if streams > 1 else ''} "
                        f"{last['val_loss']:.4f} nats/char = {last['val_bpc']:.4f} bits/char")
            # (the run's best: on its text, if it was resumed on another, and not any record)
            best = next((r for r in self.records if r["val_loss"] == self.best), None)
            if best is not None and best["val_loss"] < last["val_loss"]:
                kept = self.out / BEST
                before = Path(self.args.resume).parent / BEST if self.args.resume else None

                def holds(path):  # (another run's best.npz, copied there?)
                    held = checkpoint.run_record(path) or {}
                    return held.get("iteration") == best["iteration"] and \
                        held.get("best_val_loss") == best["val_loss"]

                summary += (f" (the best, {best['val_bpc']:.4f} bits/char at iteration "
                            f"{best['iteration']}, " + (
                                f"is in {kept})" if holds(kept) else
                                f"is not in {kept}, which holds another model)"
                                if kept.exists() else
                                "went with the --out removed or moved during the run)"
                                if self.best_gone else
                                f"was before this run's --out: it is in {before})"
                                if before is not None and holds(before) else
                                "was before this run's --out)"))
        _say(self.args, f"{summary}; checkpoint {where}")
        return 0


class _CutShort(Exception):
    """A stop request (Ctrl-C) cut a validation or a sample short."""


class _RunFailed(cli.Failure):
    """What ends a run before its end, its work saved first (``Trainer._rescued``); ``name``:
    the file that could not be written, if that is what failed."""

    def __init__(self, message, name=None):
        super().__init__(message)
        self.name = name


class _ValidationFailed(_RunFailed):
    """A validation that cannot run (the memory it needs)."""


class _WriteFailed(_RunFailed):
    """A file of the run's (``name``: checkpoint.npz, best.npz, ...) could not be written."""

    def __init__(self, name, message):
        super().__init__(message, name)


class _StopRequests:
    """Ctrl-C (SIGINT), SIGTERM or SIGHUP asks the loop to stop after the current block (a
    validation under way stops between two kernel calls, for the resumed run to do) and save; a
    second SIGINT or SIGTERM stops at once (the latest checkpoint on disk is still whole),
    unless it comes within SAME_STOP seconds of the first, which it joins (two in one kernel
    call are one already: Python sees a signal between two bytecodes). SIGHUP (the terminal
    closed, an ssh session dropped) never stops it unsaved, and sends what went to the terminal,
    which is gone, to /dev/null (a log file or pipe keeps its lines). A signal the process was
    started ignoring stays ignored, as it did while the run started: SIGHUP under nohup, SIGINT
    in a job a script starts with ``&`` (a group's SIGINT stopped the runs of a sweep past their
    start and not the others; SIGTERM stops them all)."""

    HANGUP = getattr(signal, "SIGHUP", None)
    SIGNALS = (signal.SIGINT, signal.SIGTERM) + ((HANGUP,) if HANGUP else ())

    def __init__(self, args):
        self.args = args
        self.requested_at = None  # (time.monotonic() of the first stop request)
        self.previous = {}

    @property
    def requested(self):
        """Whether a stop was requested."""
        return self.requested_at is not None

    def __enter__(self):
        # (after a hangup a terminal no longer says it is one: which were, is known now)
        self.terminals = [s for s in (sys.stderr, sys.stdout) if s.isatty()]
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                if signal.getsignal(s) is not signal.SIG_IGN:
                    self.previous[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        if signum == self.HANGUP:
            for stream in self.terminals:  # (writing to a terminal that is gone fails)
                cli.drop_output(stream)
            self.terminals = []
            if self.requested:  # (a hangup often comes twice: from the shell, then the kernel)
                return
        if self.requested:
            if time.monotonic() - self.requested_at < SAME_STOP:
                return
            raise KeyboardInterrupt("quit at once, without saving (the latest checkpoint "
                                    "written, if any, is whole)")
        self.requested_at = time.monotonic()
        _say(self.args, f"stopping: saving a checkpoint after this block or validation "
                        f"({self._quitting(signum)})")

    def _quitting(self, signum):
        """How to quit without saving after the stop ``signum`` asked for: Ctrl-C again after
        Ctrl-C; after another signal (QA: a kill's was told to press Ctrl-C), the signals
        this process hears that quit (a hangup never does; SIGINT, if a shell's ``&`` had it
        ignored, is not heard)."""
        if signum == signal.SIGINT:
            return "press Ctrl-C again to quit without saving"
        term = "another SIGTERM" if signum == signal.SIGTERM else "SIGTERM"
        heard = [name for s, name in ((signal.SIGTERM, term), (signal.SIGINT, "Ctrl-C"))
                 if s in self.previous]
        return f"asked by {signal.Signals(signum).name}" + (
            f"; {' or '.join(heard)} quits without saving" if heard else "")

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        return False


if __name__ == "__main__":
    sys.exit(main())
