"""python -m fastrnn.score CHECKPOINT FILE...: how well a trained model predicts texts.

    python -m fastrnn.score out/checkpoint.npz data/tragedies.txt other.txt --json

For each file: the mean loss of predicting every character from the ones before it, in nats
and bits per character, and the perplexity (e to the nats). The model reads the file as one
stream from the checkpoint's first training stream's state, exactly as the trainer's
validation reads its held-out text (the same number for the same text), a block at a time, so
a file of any size takes bounded memory. Characters outside the model's vocabulary are an error
that names them, unless ``--skip-unknown`` drops them (the count is reported). Every file is
read through and checked before any is scored: one bad file is an error with no output. ``-``
is standard input, kept in a temporary file until the scores are out (a file named ``-`` is
``./-``).
"""

import codecs
import contextlib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from . import checkpoint, cli, compiling, corpus, files, validate
from .backends import BACKENDS
from .config import DTYPES
from .vocab import Vocab, describe

PROG = "fastrnn.score"
SPOOL = "fastrnn-score-"  # the temporary folder of standard input's copy: SPOOL PID-...
BLOCK = 1 << 20  # bytes read at a time
PROBE = 4096  # characters of a text's first lines scored with Windows line endings, to tell
# whether the model learned them (``_windows_endings``)...
PROBE_LINES = 3  # ...if they hold this many line breaks at least
TAIL = corpus.COUNT_BLOCK  # characters before a decoding error at a file's end (what they
# read as), as many as train looks at
STDIN = "<stdin>"  # standard input's name in the scores and messages


def build_parser():
    p = cli.Parser(prog="python -m fastrnn.score",
                   elsewhere=lambda: cli.theirs(p, "sample", "train"),
                   description="Score texts with a fastrnn checkpoint: loss per character, bits "
                               "per character and perplexity, one line per file.")
    p.add_argument("checkpoint", type=cli.path, metavar="CHECKPOINT",
                   help="a checkpoint written by fastrnn.train")
    p.add_argument("files", type=cli.path, metavar="FILE", nargs="+",
                   help="texts to score (- for standard input)")
    p.add_argument("--encoding",
                   help="the texts' encoding (default: the one the model's training text was "
                        "read in, as the checkpoint records it; utf-8 if it records none)")
    p.add_argument("--skip-unknown", action="store_true",
                   help="drop characters outside the model's vocabulary (and count them) instead "
                        "of refusing the file")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.add_argument("--backend", choices=BACKENDS, default="numba", help="kernels (default numba)")
    p.add_argument("--dtype", choices=DTYPES, help="compute in this type (default: the checkpoint's)")
    return p


def main(argv=None, out=None):
    return cli.run(lambda a: _main(a, out or sys.stdout), PROG, argv, output=out is None)


def _main(argv, out):
    args = build_parser().parse_args(argv)
    try:
        if args.encoding is not None:  # (refused before the checkpoint is read)
            corpus.check_encoding(args.encoding)
        ckpt = checkpoint.load(args.checkpoint)
        args.encoding, note = corpus.model_encoding(args.encoding, ckpt.encoding, "the texts")
        model = ckpt.to_model(args.backend, args.dtype, optimizer_state=False)
    except (checkpoint.CheckpointError, ValueError) as e:
        # (a text given first, and a checkpoint after it: the two swapped, QA's)
        archives = [p for p in args.files if p != "-" and checkpoint.is_npz(p)]
        first = f"; {archives[0]} is an .npz archive: the checkpoint comes first (python -m " \
            f"{PROG} CHECKPOINT FILE...)" if archives and os.path.isfile(args.checkpoint) and \
            not checkpoint.is_archive(args.checkpoint) else ""
        raise cli.UsageError(f"{e}{first}") from None
    if note:
        print(f"{PROG}: {note}", file=sys.stderr)
    if args.files.count("-") > 1:
        raise cli.UsageError("- (standard input) is given more than once: it can be read once")
    for path in args.files:  # every file is checked before any is scored
        if path == "-":
            continue
        kind = files.not_regular(path)
        if kind == "a directory":
            raise cli.UsageError(corpus.a_directory(Path(path), scoring=True))
        if kind:
            pipe = f" (a pipe's text is read as -: ... | python -m {PROG} CHECKPOINT -)" \
                if "FIFO" in kind else ""
            raise cli.UsageError(f"{path} is {kind}, not a regular file{pipe}")
        said = checkpoint.archive_said(path, path, "give the checkpoint once, first, then the "
                                                   "texts to score")
        if said:
            raise cli.UsageError(said)
    given = [(path, path) for path in args.files if path != "-"]
    counts, unix = _check(args, ckpt, given)  # (before standard input is read: a missing
    if "-" not in args.files:                 # file said at once)
        return _score(args, ckpt, model, given, counts, unix, out)
    _remove_stale_spools()
    with _stops_interrupt() as quiet:  # (the folder removed on SIGTERM and SIGHUP too)
        try:
            spool = tempfile.TemporaryDirectory(prefix=f"{SPOOL}{os.getpid()}-")
        except OSError as e:
            raise cli.Failure(f"cannot make a temporary folder to keep standard input in: "
                              f"{e.strerror or e} (TMPDIR sets where)") from None
        with spool as folder:
            try:
                kept = _keep_stdin(Path(folder) / "stdin", args.encoding)
                more, more_unix = _check(args, ckpt, [(kept, STDIN)])
                counts.update(more)
                texts = [(kept, STDIN) if path == "-" else (path, path) for path in args.files]
                order = [name for _, name in texts]  # (the command line's)
                unix = sorted(unix + more_unix, key=lambda u: order.index(u[0]))
                return _score(args, ckpt, model, texts, counts, unix, out)
            finally:
                quiet()  # (a stop from here on does not cut the folder's removal short)


def _remove_stale_spools():
    """The folders of standard input (``SPOOL`` PID-...) that scores killed by SIGKILL left in
    the temporary folder (a copy of all the text they were given, for ever): this user's, of
    a process that is gone; nothing else, and a folder that cannot be removed is left."""
    try:
        folders = list(Path(tempfile.gettempdir()).glob(f"{SPOOL}*-*"))
    except OSError:
        return
    for folder in folders:
        owner = files.pid(folder.name[len(SPOOL):].partition("-")[0])
        try:
            mine = folder.is_dir() and not folder.is_symlink() and \
                folder.stat().st_uid == os.getuid()
        except (OSError, AttributeError):  # (AttributeError: no getuid, Windows)
            mine = False
        if mine and owner is not None and owner != os.getpid() and not files.alive(owner):
            shutil.rmtree(folder, ignore_errors=True)


def _check(args, ckpt, texts):
    """Every text of ``texts`` ((path, name) pairs) read through and checked: a UsageError
    naming the first that cannot be scored; else ({name: characters it has to score}, the
    (name, lines to probe: ``_probe``'s) of those with Unix line endings, line breaks and no
    \\r). Characters --skip-unknown skips for a reason the error without it would name (a
    UTF-8 file read as a model's latin-1, Windows line endings) are warned about, with it."""
    counts, unix, notes = {}, [], []
    try:
        with cli.DelayedBar("checking", sum(_size(path) for path, _ in texts), "B") as bar:
            for path, name in texts:
                counts[name], breaks, crs, head, skipped, why = _read_through(
                    ckpt.vocab, path, args.encoding, args.skip_unknown, name, bar.update)
                if breaks and not crs:
                    unix.append((name, head))
                if why:
                    notes.append(f"{name}: {skipped:,} character{'s' if skipped != 1 else ''} "
                                 f"the model never saw will be skipped{why}")
    except ValueError as e:
        raise cli.UsageError(_said(e)) from None
    for note in notes:
        cli.warn(PROG, note)
    return counts, unix


@contextlib.contextmanager
def _stops_interrupt():
    """SIGTERM and SIGHUP as Ctrl-C (KeyboardInterrupt) while it is held, once: what is kept
    is removed, and the command ends with one line and exit code 130. It gives a function
    that makes them ignored from then on (the removal under way, which a second stop, ``kill``
    twice, would cut short)."""
    heard = []

    def interrupt(signum, frame):
        if not heard:
            heard.append(signum)
            raise KeyboardInterrupt
    stops = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None))
             if s is not None and signal.getsignal(s) is signal.SIG_DFL]  # (nohup's: ignored)
    if threading.current_thread() is not threading.main_thread():
        stops = []  # (only the main thread handles signals)
    before = [(s, signal.signal(s, interrupt)) for s in stops]
    try:
        yield lambda: heard.append(None)
    finally:
        for s, handler in before:
            signal.signal(s, handler)


def _keep_stdin(kept, encoding):
    """Standard input read through into the file ``kept``, which is read twice (checked whole,
    then scored); a text stream (a caller's ``sys.stdin``, without bytes) written in
    ``encoding``, in which it is then read."""
    read_some = cli.stdin_to_read(PROG, "-")
    encoder = codecs.getincrementalencoder(encoding)()  # (for text, from a stream without bytes)

    def cannot_keep(e):
        return cli.Failure(f"cannot keep standard input in {kept.parent} to score it: "
                           f"{e.strerror or e} (TMPDIR sets where)")

    try:
        f = open(kept, "wb")
    except OSError as e:
        raise cannot_keep(e) from None
    with f:
        while True:
            try:
                read = read_some(BLOCK)
                block = read if isinstance(read, bytes) else encoder.encode(read, final=not read)
            except OSError as e:
                raise cli.UsageError(f"cannot read standard input (-): {e.strerror or e}") \
                    from None
            except UnicodeError as e:  # (a text stream's: undecodable, or not in --encoding)
                raise cli.UsageError(f"{STDIN}: {e} (--encoding sets the one it is read in)") \
                    from None
            try:
                f.write(block)
            except OSError as e:
                raise cannot_keep(e) from None
            if not read:
                return kept


def _score(args, ckpt, model, texts, counts, unix, out):
    """Each text of ``texts`` ((path, name) pairs, checked: ``counts``, {name: characters it
    has to score}) scored, a line each on ``out``; those of ``unix`` (``_check``'s, with Unix
    line endings) warned about first if the model learned Windows ones
    (``_windows_endings``)."""
    say = lambda line: print(f"{PROG}: {line}", file=sys.stderr)  # noqa: E731
    total = sum(max(0, counts[name] - 1) for _, name in texts)  # (characters predicted)
    with compiling.announce(say, model.config.dtype, "scoring kernels"), \
            cli.DelayedBar("scoring", total, "char") as bar:
        found = _windows_endings(model, ckpt.vocab, unix) if unix else None
        if found:
            cli.warn(PROG, f"{_names([name for name, _ in unix])} "
                           f"{'has' if len(unix) == 1 else 'have'} Unix line endings (\\n), and "
                           f"the model learned Windows ones (\\r\\n): {found} (unix2dos "
                           f"converts)")
        for k, (path, name) in enumerate(texts, 1):
            try:
                result = score_file(model, ckpt.vocab, model.first_stream_state(), path,
                                    args.encoding, args.skip_unknown, bar.update, name=name)
            except ValueError as e:  # (a file changed since it was checked)
                raise cli.UsageError(_said(e)) from None
            bar.clear()  # (on a terminal a line would follow the bar's, on its line)
            if result["skipped"] > result["predicted"]:  # (the score is of what is left)
                cli.warn(PROG, f"{name}: {result['skipped']:,} of its characters are outside "
                               f"the model's vocabulary and were skipped, more than the "
                               f"{result['predicted']:,} scored")
            try:
                out.write(_json(result) if args.json else _line(result))
                out.flush()
                if k < len(texts):  # (not drawn again at 100% only to be cleared: QA)
                    bar.refresh()
            except BrokenPipeError:  # e.g. piped into `head`: stop quietly
                cli.drop_output()
                break
            except OSError as e:  # e.g. a full disk
                cli.drop_output()
                raise cli.Failure(f"cannot write the scores: {e.strerror or e}") from None
    return 0


def _size(path):
    try:
        return Path(path).stat().st_size
    except OSError:  # (gone since it was checked: its read names it)
        return 0


def _json(r):
    """One JSON line; a number past the float range (a diverged model's perplexity) is null,
    since JSON has no infinity."""
    return json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v
                       for k, v in r.items()}) + "\n"


def _line(r):
    n = r["skipped"]
    skipped = f", {n:,} unknown character{'s' if n != 1 else ''} skipped" if n else ""
    return (f"{cli.one_line(r['file'])}: {r['nats_per_char']:.4f} nats/char = "
            f"{r['bits_per_char']:.4f} bits/char, perplexity {r['perplexity']:.3f} over "
            f"{r['predicted']:,} character"
            f"{'s' if r['predicted'] != 1 else ''}"
            f"{skipped}\n")


def _said(error):
    """A file's error as the command says it (characters outside the vocabulary: the option
    that drops them)."""
    return error.said("--skip-unknown") if isinstance(error, corpus.UnknownText) else str(error)


def _blocks(vocab, path, encoding, skip_unknown, progress=None, name=None):
    """The file's text a block at a time, each as (kept text, characters dropped from it,
    what explains them): decoded as ``corpus.read_text`` decodes a whole file, its characters
    checked against the vocabulary (``progress(n)``: n more bytes read). A file that cannot be
    read, decoded or (without ``skip_unknown``) encoded is a ValueError naming it (``name``,
    default the path; one that cannot be encoded, a ``corpus.UnknownText``). What explains
    the characters dropped is ``corpus.unknown_hint``'s clauses, as the error would give them
    without ``skip_unknown``, for the first block that drops some and has them (else "")."""
    name = path if name is None else name
    kind = files.not_regular(path)
    if kind:  # (a FIFO's read waits for ever, /dev/zero's never ends)
        raise ValueError(f"{name} is {kind}, not a regular file")
    decoder = first = None  # (made for the file's first bytes; those bytes)
    explained = False  # (whether a block before this one had its dropped characters explained)
    read = 0  # bytes read before this block
    held = ""  # a block's last \r, given to the next block: a \r\n is never cut in two
    tail = ""  # the text's last TAIL characters so far (what a decoding error at its end
    # says the text before read as)
    try:
        with open(path, "rb") as f:
            while True:
                raw = f.read(BLOCK)
                if decoder is None:
                    decoder, first = corpus.incremental_decoder(encoding, raw), raw
                try:
                    text = held + decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as e:
                    raise ValueError(corpus.undecodable(
                        name, encoding, e, read + len(raw), first, tail or None)) from None
                except UnicodeError as e:  # (a codec's own: punycode's)
                    raise ValueError(corpus.codec_failure(name, encoding, e)) from None
                read += len(raw)
                tail = text[-TAIL:] if len(text) >= TAIL else (tail + text)[-TAIL:]  # (no
                # copy of a whole block on top of the last one's)
                if progress is not None:
                    progress(len(raw))
                held = "\r" if raw and text.endswith("\r") else ""
                text = text[:len(text) - len(held)]
                missing = vocab.unknown(text)
                why = corpus.unknown_hint(text, missing, encoding, read == len(raw)) \
                    if missing and not explained else ""
                if missing and not skip_unknown:
                    raise corpus.UnknownText(
                        f"{name} has characters the model never saw: {describe(missing)}", why)
                explained = explained or bool(why)
                kept = "".join(c for c in text if c in vocab.index) if missing else text
                if text:
                    yield kept, len(text) - len(kept), why
                if not raw:
                    return
    except FileNotFoundError:  # (worded as train's and sample's)
        raise ValueError(f"{name}: no such file") from None
    except OSError as e:
        raise ValueError(f"{name}: cannot read it ({e.strerror or e})") from None


def check_file(vocab, path, encoding="utf-8", skip_unknown=False, name=None, progress=None):
    """Reads the file through once, as ``score_file`` will, without the model: a ValueError
    naming the file (``name``, default the path) if it cannot be scored (so that no file is
    scored if one cannot be); else the number of its characters that are scored, the first
    included (``progress(n)``: n more bytes read)."""
    return _read_through(vocab, path, encoding, skip_unknown, name, progress)[0]


def _read_through(vocab, path, encoding="utf-8", skip_unknown=False, name=None, progress=None):
    """``check_file``'s reading: (characters scored, line breaks among them (\\n), \\r among
    them, its first lines to probe, ``_probe``'s, or None, characters skipped, what explains
    them: ``_blocks``')."""
    name = path if name is None else name
    kept = skipped = breaks = crs = 0
    head, explained = None, ""
    for text, dropped, why in _blocks(vocab, path, encoding, skip_unknown, progress, name):
        head = head or _probe(text, start=not kept)
        explained = explained or why
        kept, skipped = kept + len(text), skipped + dropped
        breaks, crs = breaks + text.count("\n"), crs + text.count("\r")
    if kept < 2:
        raise ValueError(f"{name} has fewer than 2 characters to score" + (
            f" once the {skipped:,} the vocabulary lacks {'are' if skipped > 1 else 'is'} "
            f"skipped" if skipped else ""))
    return kept, breaks, crs, head, skipped, explained


def _probe(text, start):
    """(lines, whether they start the text) of a block of text (``start``: its first), for
    ``_windows_endings``: whole lines within its first ``PROBE`` characters, from its start,
    or else from its first line break on (a long first line); None unless they hold
    ``PROBE_LINES`` line breaks."""
    if start:
        end = text.rfind("\n", 0, PROBE) + 1
        if text.count("\n", 0, end) >= PROBE_LINES:
            return text[:end], True
    first = text.find("\n") + 1
    end = text.rfind("\n", first, first + PROBE) + 1 if first else 0
    lines = text[first:end]
    return (lines, False) if lines.count("\n") >= PROBE_LINES else None


def _windows_endings(model, vocab, unix):
    """What shows that the model learned Windows line endings (\\r\\n), which texts with
    Unix ones lack: the first lines of the first of ``unix`` ((name, (lines, from the start))
    of each) with ``PROBE_LINES`` line breaks or more score better (in nats a character, from
    where scoring starts) with \\r\\n than as they are; else None (a vocabulary without \\r,
    or a stray \\r in the model's text, a progress line's: there \\r\\n scores worse). (The
    other way round, a \\r the model never saw is refused: ``corpus.unknown_hint``.)"""
    probes = [(name, *head) for name, head in unix if head is not None]
    if "\r" not in vocab.index or "\n" not in vocab.index or not probes:
        return None
    name, lines, start = probes[0]
    as_is, windows = (model.evaluate(vocab.encode(text, np.int64),
                                     state=model.first_stream_state())[0] / (len(text) - 1)
                      for text in (lines, lines.replace("\n", "\r\n")))
    if windows >= as_is:
        return None
    n = lines.count("\n")
    where = f"the first {n} lines of {name}" if start else f"{n} lines near the start of {name}"
    return f"{where} score {as_is:.4f} nats/char as they are, {windows:.4f} with \\r\\n"


def _names(names):
    """"a", "a and b", "a, b and c", "a, b, c and 2 more"."""
    return names[0] if len(names) == 1 else \
        f"{', '.join(names[:-1])} and {names[-1]}" if len(names) <= 3 else \
        f"{', '.join(names[:3])} and {len(names) - 3} more"


def score_file(model, vocab, state, path, encoding="utf-8", skip_unknown=False, progress=None,
               name=None):
    """{file, predicted, nats_per_char, bits_per_char, perplexity, skipped} for one file, read a
    block at a time from ``state`` (L, S, 1, H): the loss of predicting each character from the
    ones before it, summed block by block (each block carries the state and its last character
    into the next). ``name`` (default the path) is the file's in the result and in the
    ValueError a file that cannot be read or scored is; ``progress(n)``: n more characters
    predicted (``model.evaluate``'s)."""
    name = path if name is None else name
    corpus.check_encoding(encoding)
    skip_unknown = validate.flag("skip_unknown", skip_unknown)
    Vocab.checked(vocab, "the checkpoint's", model.config.vocab_size)  # (its ids past the
    # model's were "outside the vocabulary")
    loss, predicted, skipped, last = 0.0, 0, 0, None
    for text, dropped, _ in _blocks(vocab, path, encoding, skip_unknown, name=name):
        skipped += dropped
        ids = vocab.encode(text, np.int64)
        if last is not None:
            ids = np.concatenate([[last], ids])
        if len(ids) >= 2:
            block_loss, state = model.evaluate(ids, state=state, progress=progress)
            loss += block_loss
            predicted += len(ids) - 1
            ids = ids[-1:]
        last = int(ids[-1]) if len(ids) else last
    if predicted == 0:
        raise ValueError(f"{name} has fewer than 2 characters to score")
    nats = loss / predicted
    perplexity = math.exp(nats) if nats < math.log(sys.float_info.max) else math.inf
    return {"file": str(name), "predicted": predicted, "nats_per_char": nats,
            "bits_per_char": nats / math.log(2), "perplexity": perplexity, "skipped": skipped}


if __name__ == "__main__":
    sys.exit(main())
