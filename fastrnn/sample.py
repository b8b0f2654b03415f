"""python -m fastrnn.sample CHECKPOINT: generate text from a trained model, streamed to stdout.

    python -m fastrnn.sample out/checkpoint.npz --length 500 --prime "ROMEO:" --seed 1

The prime text (default: a newline; ``--prime-file``: a file's) is printed first; starting from
a zero hidden state (as char-rnn's sampler does; ``--state checkpoint``: the checkpoint's, where
the run's own samples, its validation and score start), the model reads it and continues from
its last character (``--num-samples N``: N times, each from the state after the prime, a line of
dashes between two). The same seed gives the same text on every backend, and a checkpoint
trained with any backend or dtype samples on any other.
"""

import argparse
import os
import re
import sys
import types

import numpy as np

from . import checkpoint, cli, compiling
from .backends import BACKENDS
from .config import DTYPES
from .vocab import describe, shown

PROG = "fastrnn.sample"
PIECE = 64  # characters generated per kernel call, then written out
SEPARATOR = "-----"  # the line between two samples (the trainer's samples end with it)
LONE_SHARE = 0.99  # --top-p under this over V keeps one character (rounding of 1/V allowed)


def build_parser():
    p = cli.Parser(prog="python -m fastrnn.sample",
                   elsewhere=lambda: cli.theirs(p, "train"),
                   description="Generate text from a fastrnn checkpoint, streaming it to stdout.")
    p.add_argument("checkpoint", type=cli.path, metavar="CHECKPOINT",
                   help="a checkpoint written by fastrnn.train")
    p.add_argument("--length", type=cli.non_negative_int, default=500, metavar="N",
                   help="characters to generate after the prime text (default 500)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--prime", metavar="TEXT",
                       help="text to start from: the model reads it, then continues it "
                            "(default: a newline, or the vocabulary's first character if it has "
                            "none)")
    start.add_argument("--prime-file", type=cli.path, metavar="PATH",
                       help="the text to start from read from a file (- for standard input), "
                            "as it is (its last line break included), in the encoding the "
                            "model's training text was read in unless --encoding says "
                            "otherwise (nanoGPT's --start=FILE:PATH)")
    p.add_argument("--encoding", metavar="ENCODING",
                   help="the encoding of --prime-file (default: the one the model's training "
                        "text was read in, as the checkpoint records it; utf-8 if it records "
                        "none)")
    p.add_argument("--temperature", type=_temperature, default=1.0, metavar="T",
                   help="divide the logits by T before sampling: < 1 is more conservative, "
                        "> 1 more varied (default 1)")
    p.add_argument("--top-k", type=cli.non_negative_int, default=0, metavar="K",
                   help="draw only from the K most likely characters (default 0: all)")
    p.add_argument("--top-p", type=cli.share, default=1.0, metavar="P",
                   help="nucleus sampling: draw only from the fewest most likely characters "
                        "whose probabilities add up to P, in (0, 1] (default 1: all)")
    p.add_argument("--greedy", action="store_true",
                   help="always take the most likely character (deterministic)")
    p.add_argument("--num-samples", type=cli.positive_int, default=1, metavar="N",
                   help="write N samples from the prime, read once: each is the prime and "
                        "--length characters drawn after it, one sample after another (the "
                        "first is what the same --seed writes alone), with a line "
                        f"'{SEPARATOR}' between two (default 1)")
    p.add_argument("--state", choices=("zeros", "checkpoint"), default="zeros",
                   help="the hidden state the prime is read from: zeros (char-rnn's, the "
                        "default: a text of its own) or the checkpoint's (its first training "
                        "stream's, where the run's own samples and validation start: for a tanh "
                        "model that writes nonsense from zeros)")
    p.add_argument("--seed", type=cli.non_negative_int, metavar="S",
                   help="random seed: the same seed gives the same text (default: fresh randomness)")
    p.add_argument("--backend", choices=BACKENDS, default="numba", help="kernels (default numba)")
    p.add_argument("--dtype", choices=DTYPES,
                   help="compute in this type (default: the checkpoint's)")
    return p


def _temperature(text):
    try:
        return cli.positive_float(text)
    except argparse.ArgumentTypeError as e:
        try:
            zero = float(text) == 0  # (what some samplers take for the most likely character)
        except ValueError:
            zero = False
        raise argparse.ArgumentTypeError(f"{e}; --greedy takes the most likely character"
                                         if zero else str(e)) from None


def main(argv=None, out=None):
    return cli.run(lambda a: _main(a, out or sys.stdout), PROG, argv, output=out is None)


def _main(argv, out):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ckpt = checkpoint.load(args.checkpoint)
    except checkpoint.CheckpointError as e:
        raise cli.UsageError(str(e)) from None
    vocab = ckpt.vocab
    prime = _prime(args, vocab, ckpt.encoding)
    try:
        model = ckpt.to_model(args.backend, args.dtype, optimizer_state=False)
    except ValueError as e:
        raise cli.UsageError(str(e)) from None
    ignored = [f"--{k.replace('_', '-')}" for k in ("temperature", "top_k", "top_p")
               if getattr(args, k) != parser.get_default(k)]
    if args.greedy and ignored:
        raise cli.UsageError(f"--greedy takes the most likely character: {' and '.join(ignored)} "
                             f"would change nothing (drop {'them' if len(ignored) > 1 else 'it'}"
                             f", or --greedy)")
    lone = args.top_p < LONE_SHARE / len(vocab)  # (the most likely of V characters has 1/V
    # of the mass at least: kept alone, as --greedy's)
    same = "--greedy" if args.greedy else "--top-k 1" if args.top_k == 1 else \
        "--length 0" if args.length == 0 else \
        f"--top-p {args.top_p:g} (under 1/{len(vocab)}: only the most likely character)" \
        if lone else None
    if same and args.num_samples > 1:
        raise cli.UsageError(f"{same} writes the same text every time: --num-samples "
                             f"{args.num_samples} would repeat it (drop one of them)")
    rng = np.random.default_rng(args.seed)
    ids = vocab.encode(prime)
    say = lambda line: print(f"{PROG}: {line}", file=sys.stderr)  # noqa: E731
    with compiling.announce(say, model.config.dtype, "sampling kernels"):
        return _generate(model, vocab, prime, ids, rng, args, out)


def _prime(args, vocab, recorded):
    """The text to start from: --prime's, --prime-file's (read in --encoding, else in
    ``recorded``, the encoding of the model's training text, else UTF-8), or the default; a
    UsageError naming what is wrong with it (empty, characters the model never saw)."""
    if args.encoding is not None and args.prime_file is None:
        raise cli.UsageError("--encoding is the encoding of --prime-file: give one, or drop it")
    named = _nanogpt_file(args.prime) if args.prime is not None else None
    if named:
        raise cli.UsageError(f"--prime {cli.quoted(args.prime)} reads as nanoGPT's way to start "
                             f"from a file: --prime-file {cli.quoted(named)} reads it")
    if args.prime_file is not None:
        from . import corpus, files  # (25 ms of imports a sample without a file need not pay)
        stdin = args.prime_file == "-"
        kind = None if stdin else files.not_regular(args.prime_file)
        if kind == "a directory":
            raise cli.UsageError(f"--prime-file {args.prime_file} is a directory: give a text "
                                 f"file")
        if kind and "FIFO" in kind:  # (/dev/stdin and <(...) of a pipe)
            raise cli.UsageError(f"--prime-file {args.prime_file} is {kind}, not a regular "
                                 f"file (a pipe's text is read as -: ... | python -m {PROG} "
                                 f"CHECKPOINT --prime-file -)")
        if not stdin and (said := checkpoint.archive_said(
                args.prime_file, f"--prime-file {args.prime_file}",
                "the checkpoint is sample's first argument")):
            raise cli.UsageError(said)
        named = _nanogpt_file(str(args.prime_file))
        if named and not os.path.exists(args.prime_file):
            raise cli.UsageError(f"--prime-file {args.prime_file}: no such file (nanoGPT's "
                                 f"FILE: is not written here: --prime-file {cli.quoted(named)})")
        try:
            encoding, note = corpus.model_encoding(args.encoding, recorded, "--prime-file")
        except corpus.CorpusError as e:  # (as train's and score's)
            raise cli.UsageError(str(e)) from None
        if note:
            print(f"{PROG}: {note}", file=sys.stderr)
        try:
            prime = corpus.read_stream(cli.stdin_to_read(PROG, "--prime-file -"), "-",
                                       encoding) if stdin else \
                corpus.read_text(args.prime_file, encoding)[0]
        except corpus.CorpusError as e:
            raise cli.UsageError(f"--prime-file {e}") from None
        missing = vocab.unknown(prime)
        if missing:
            raise cli.UsageError(f"--prime-file {args.prime_file} has characters the model never "
                                 f"saw: {describe(missing)} ({_vocabulary(vocab)})"
                                 f"{corpus.unknown_hint(prime, missing, encoding)}")
        return prime
    prime = args.prime if args.prime is not None else \
        ("\n" if "\n" in vocab.index else vocab.chars[0])
    if not prime:
        raise cli.UsageError("--prime is empty: give at least one character")
    missing = vocab.unknown(prime)
    if missing:
        undecoded = any("\udc80" <= c <= "\udcff" for c in missing)  # (bytes as Python keeps them)
        raise cli.UsageError(f"--prime has characters the model never saw: "
                             f"{describe(missing)} ({_vocabulary(vocab)})" + (
                                 f"; the '\\udc..' are bytes that are not "
                                 f"{sys.getfilesystemencoding()} text, the encoding of this "
                                 f"locale: give --prime in it, or set a UTF-8 locale (e.g. "
                                 f"LC_ALL=C.UTF-8)" if undecoded else "")
                             + _escapes_hint(prime, missing, vocab))
    return prime


def _nanogpt_file(text):
    """The file that ``text``, nanoGPT's ``FILE:PATH``, names, if it is one; else None."""
    path = text[len("FILE:"):] if text.startswith("FILE:") else ""
    return path if path and os.path.isfile(path) else None  # (False for any OSError)


def _vocabulary(vocab):
    """"its vocabulary: ..." (its first 100 characters, of thousands in CJK)."""
    if len(vocab) <= 100:
        return f"its vocabulary: {shown(str(vocab))}"
    return f"its vocabulary of {len(vocab):,} characters begins {shown(str(vocab)[:100])}"


def _escapes_hint(prime, missing, vocab):
    """What explains a backslash the model never saw in --prime, where it is followed by n, t or
    r: the shell passed \\n as two characters, and bash's $'...' passes a line break (the
    example given where the model knows the characters it would pass)."""
    if "\\" not in missing or not re.search(r"\\[ntr]", prime):
        return ""
    meant = {"\\n": "\n", "\\t": "\t", "\\r": "\r"}
    passed = prime
    for escape, c in meant.items():
        passed = passed.replace(escape, c)
    example = f" (in bash, --prime $'{prime}' gives them)" if "'" not in prime and \
        not vocab.unknown(passed) else ""
    return (f"; --prime takes its text as it is: \\n, \\t and \\r are a backslash and a letter, "
            f"not a line break, a tab or a carriage return{example}")


def _generate(model, vocab, prime, ids, rng, args, out):
    """Read the prime, then write it and ``args.length`` generated characters to ``out``,
    ``args.num_samples`` times, each from the state after the prime."""
    start = model.first_stream_state() if args.state == "checkpoint" else None  # (None: zeros)
    # the state after the prime but its last character (a bar if a long one takes a while)
    with cli.DelayedBar("reading --prime", len(ids) - 1, "char") as bar:
        _, primed = model.evaluate(ids, state=start, progress=bar.update)
    written = ""  # (the text's last piece)

    def write(text):
        nonlocal written
        out.write(text)
        written = text or written

    try:
        for k in range(args.num_samples):
            if k:
                write(SEPARATOR + "\n")
            write(prime)
            seed_ix, left, state = int(ids[-1]), args.length, primed
            while left:
                n = min(PIECE, left)
                piece, state = model.sample(n, seed_ix, rng=rng, temperature=args.temperature,
                                            greedy=args.greedy, state=state, top_k=args.top_k,
                                            top_p=args.top_p)  # (a new state: primed is kept)
                write(vocab.decode(piece))
                out.flush()
                seed_ix, left = piece[-1], left - n
            write("\n")
            out.flush()
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly
        cli.drop_output()
    except OSError as e:  # e.g. a full disk
        cli.drop_output()
        raise cli.Failure(f"cannot write the text: {e.strerror or e}") from None
    except KeyboardInterrupt:  # (on a terminal, or where stderr goes too (2>&1), the text's
        # line ended: the message's own)
        if (cli.terminal(out) or cli.shares_stderr(out)) and not written.endswith("\n"):
            try:
                out.write("\n")
                out.flush()
            except OSError:
                pass
        raise
    return 0


class _Command(types.ModuleType):
    """This module, called as min-char-rnn's ``sample`` (``from fastrnn import sample``, which
    the package's ``lossFun`` and ``adagrad`` invite): a TypeError naming the drop-in."""

    def __call__(self, *args, **kwargs):
        raise TypeError("fastrnn.sample is the command python -m fastrnn.sample; min-char-rnn's "
                        "sample(h, seed_ix, n, Wxh, Whh, Why, bh, by) is fastrnn.dropin.sample")


sys.modules[__name__].__class__ = _Command

if __name__ == "__main__":
    sys.exit(main())
