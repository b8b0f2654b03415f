"""What the command lines share: one-line errors (exit code 2 for bad input, 1 for a failure
such as a full disk, 130 for Ctrl-C), and argument types."""

import argparse
import codecs
import decimal
import difflib
import math
import os
import re
import shlex
import signal
import sys
import time

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


BAR_DELAY = 2.0  # seconds a piece of work runs before its progress bar shows (DelayedBar)


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line, exit code 2."""


class Failure(Exception):
    """The work itself failed (for example a checkpoint could not be written); exit code 1."""


# other tools' names for options (char-rnn, torch-rnn, nanoGPT), for "did you mean": with
# underscores for hyphens (--batch_size) and single dashes (-seq_length) the names are found
# without this
OTHER_NAMES = {"rnn_size": "--hidden-size", "lr": "--learning-rate", "max_iters": "--iterations",
               "max_epochs": "--epochs", "eval_interval": "--eval-every",
               "eval_val_every": "--eval-every", "checkpoint_dir": "--out", "out_dir": "--out",
               "input_file": "--data", "data_dir": "--data", "dataset": "--data",
               "model": "--cell", "n_layer": "--num-layers", "block_size": "--seq-length",
               "start_text": "--prime", "primetext": "--prime", "start": "--prime",
               "max_new_tokens": "--length", "gpu": "--backend", "gpuid": "--backend",
               "device": "--backend", "sample_length": "--length",
               "learning_rate_decay": "--lr-decay", "lr_decay_factor": "--lr-decay",
               "val_frac": "--val-fraction", "model_type": "--cell", "checkpoint": "--resume",
               "resume_from": "--resume", "restore": "--resume", "load": "--resume",
               "sample": "--greedy",  # (char-rnn's sample.lua: -sample 0 takes the most
               # likely; -sample 1, its default, draws: ``_default_meant``)
               "bptt": "--seq-length", "clip": "--grad-clip", "nhid": "--hidden-size",
               "nlayers": "--num-layers", "save": "--out",  # (PyTorch's word_language_model)
               "n_embd": "--hidden-size",  # (nanoGPT's)
               "layers": "--num-layers", "num_epochs": "--epochs",
               "length": "--sample-length",  # (sample's, given to train)
               "iters": "--iterations", "num_iters": "--iterations", "steps": "--iterations",
               "max_steps": "--iterations", "num_steps": "--iterations",
               "datafile": "--data", "data_file": "--data", "text": "--data", "corpus": "--data",
               "seed_text": "--prime", "prompt": "--prime", "temp": "--temperature"}
# ...and for a checkpoint, which sample and score take as their first argument (nanoGPT's
# --out_dir and --init_from=resume, torch-rnn's -checkpoint)
CHECKPOINT_NAMES = {"checkpoint", "out_dir", "checkpoint_dir", "init_from", "resume",
                    "resume_from", "restore", "load"}
# ...and for a text, which score takes after it (train's --data, and other names for it)
TEXT_NAMES = {"data", "text", "corpus", "datafile", "data_file", "input", "input_file", "file",
              "files"}


NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")  # (argparse's: a value, not an option)


WHOSE = {"train": "python -m fastrnn.train's, which trains a model (--resume CHECKPOINT trains "
                  "one on)",
         "sample": "python -m fastrnn.sample's, which generates text from a checkpoint"}


def theirs(parser, *commands):
    """{option: whose} of the long options of ``commands`` ("train", "sample") that ``parser``
    (sample's, score's) lacks, for its ``elsewhere``; not those that name a checkpoint or a
    text (--resume, --data: score's arguments, sample's --prime-file)."""
    import importlib  # (only for an error's message: the commands' imports)
    found = {}
    for command in commands:
        other = importlib.import_module(f"fastrnn.{command}").build_parser()
        found.update({o: WHOSE[command] for o in other._option_string_actions
                      if o.startswith("--") and o not in parser._option_string_actions
                      and o[2:].replace("-", "_") not in CHECKPOINT_NAMES | TEXT_NAMES
                      and o not in found})
    return found


def _whose(elsewhere, word):
    """Whose option ``word`` is, by ``elsewhere`` ({option: whose}), spelled as there, as
    another tool spells it (``--temp``, given to train) or abbreviated as argparse takes it
    there; None if none's."""
    name = word.lstrip("-").partition("=")[0].lower()
    if name.replace("-", "_") in CHECKPOINT_NAMES | TEXT_NAMES:  # (sample's and score's
        return None  # arguments, given an option's name: --out_dir, --data)
    key = "--" + name.replace("_", "-")
    begun = [o for o in elsewhere if o.startswith(key)]  # (an abbreviation: --hidden, QA)
    return elsewhere.get(key) or elsewhere.get(OTHER_NAMES.get(name.replace("-", "_"))) or (
        elsewhere[begun[0]] if len(begun) == 1 else None)


def _value(words, k):
    """What the option ``words[k]`` is given: its value after "=", else the word after it (None
    if none)."""
    _, equals, value = words[k].partition("=")
    return value if equals else words[k + 1] if k + 1 < len(words) else None


def _takes_many(action):
    """Whether a positional argument takes any number of words (score's FILE...)."""
    return action.nargs in ("+", "*")


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (exit 2), not usage plus a line,
    and an option spelled as other tools spell it (``--batch_size``, ``-seq_length``,
    ``--rnn_size``) names this command's; ``elsewhere``, {option: whose it is}, names another
    command's options (train given sample's --temperature: "is python -m fastrnn.sample's")."""

    def __init__(self, *args, elsewhere=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.elsewhere = elsewhere or {}  # (or a function that makes it, called if needed)

    def parse_args(self, args=None, namespace=None):
        self._words = list(sys.argv[1:] if args is None else args)  # (for ``error``'s hint)
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:  # (as argparse's own parse_args, with the hint)
            many = any(_takes_many(a) for a in self._positionals._group_actions)  # (names)
            self.error(f"unrecognized arguments: {' '.join(extras)}"
                       f"{self._meant(extras) or (self._dashed(extras) if many else '')}")
        return namespace

    def error(self, message):
        words = getattr(self, "_words", [])
        ambiguous = re.match(r"ambiguous option: (\S+) could match", message)
        valueless = re.match(r"argument (\S+?)(/\S+)?: expected one argument", message)
        valued = re.match(r"argument (--\S+?)(/\S+)?: ", message)
        if valued:  # (``--checkpoint X``: argparse's abbreviation of --checkpoint-every)
            message += self._abbreviated(valued.group(1), words)
        if ambiguous:
            message += self._meant([ambiguous.group(1)])
        elif valueless:  # (``--prime -x``: a value that starts with - reads as an option)
            option = valueless.group(1)
            after = words[words.index(option) + 1:][:1] if option in words else []
            if after == ["--"]:  # (argparse's end of the options; _known takes it for one)
                message += " (-- reads as the end of the options, not as its value)"
            elif after and after[0].startswith("-") and not self._known(after[0]):
                message += f" ({after[0]} reads as an option: write {option}={after[0]})"
        elif message.startswith("the following arguments are required"):
            unknown = [w for w in words if w.startswith("-") and not self._known(w)]
            message += self._meant(unknown) or self._dashed(unknown)  # (``--checkpoint=X``)
        raise UsageError(f"{message} (see --help)")

    def _abbreviated(self, option, words):
        """" (--x abbreviates OPTION here: did you mean --y?)" where the words abbreviate
        ``option`` with a name another tool gives to --y of this command, and give it a value
        that is no number (``--checkpoint out/checkpoint.npz``, not ``--checkpoint 0.5``)."""
        for k, word in enumerate(words):
            name = word.partition("=")[0]
            other = OTHER_NAMES.get(name.lstrip("-").lower().replace("-", "_"))
            if name.startswith("--") and name != option and option.startswith(name) and \
                    other in self._option_string_actions and other != option and \
                    not re.match(r"[-+.]?\d", _value(words, k) or ""):
                return f" ({name} abbreviates {option} here: did you mean {other}?)"
        return ""

    def _known(self, word):
        """Whether ``word`` names one of the options (or abbreviates a long one, as argparse
        takes it), with or without ``=value``."""
        name = word.partition("=")[0]
        return name in self._option_string_actions or name.startswith("--") and any(
            option.startswith(name) for option in self._option_string_actions)

    def _dashed(self, words):
        """"; -x.txt reads as an option: ..." for the first of ``words`` that could be a file
        name starting with -, where the command would take one more name (the caller knows:
        ``score CKPT -x.txt``, ``sample -x.npz``)."""
        for word in words:
            if len(word) > 1 and word[0] == "-" and word[1] != "-" and not self._known(word) \
                    and not NEGATIVE_NUMBER.match(word):
                return (f"; {word} reads as an option: a name that starts with - is given as "
                        f"./{word}")
        return ""

    def _meant(self, words):
        """"; did you mean --x?" for the ``words`` that name one of the options, as other tools
        spell it or with a typo (``--hiden-size``: difflib's closest, at 0.85), each of them
        ("--x (for -a) and --y (for -b)": char-rnn's ``-length 50 -primetext x`` had only the
        first named), and what says a positional argument was given an option's name."""
        found, twice = [], []  # (word, option): meant, and meant but given already
        said = {}  # {whose it is: the words given that are another command's options}
        given = self._given()
        elsewhere = self.elsewhere() if callable(self.elsewhere) else self.elsewhere
        for k, word in enumerate(words):
            option = self._option_meant(word, _value(words, k))
            if option and option not in [o for _, o in found + twice]:
                (twice if option in given else found).append((word.partition("=")[0], option))
            elif not option and word.startswith("-") and not self._known(word) and \
                    (whose := _whose(elsewhere, word)):  # (not --sample: an abbreviation here)
                said.setdefault(whose, []).append(word.partition("=")[0])
        meant = f"; did you mean {found[0][1]}?" if len(found) == 1 else \
            "; did you mean " + " and ".join(f"{o} (for {w})" for w, o in found) + "?" \
            if found else ""
        meant += "".join(f"; {w} is {o}, given already: drop it" for w, o in twice)
        meant += self._default_meant(words)
        for what, named in said.items():
            meant += f"; {' and '.join(named)} {'is' if len(named) == 1 else 'are'} {what}"
        for word in words:
            name = word.lstrip("-").partition("=")[0]
            if not word.startswith("-") or not name:
                continue
            for action in self._positionals._group_actions:  # (``--checkpoint X``)
                metavar = action.metavar or action.dest
                named = name.lower().replace("-", "_")  # (``--data X`` to score: its FILE)
                if isinstance(metavar, str) and (metavar.lower() == name.lower() or not meant and (
                        metavar == "CHECKPOINT" and named in CHECKPOINT_NAMES or
                        metavar == "FILE" and word.startswith("--") and named in TEXT_NAMES)):
                    return meant + f"; {metavar} is given without an option name " \
                                   f"({self.prog} {' '.join(self._positional_metavars())})"
        return meant

    def _given(self):
        """The options the command line gives, by their names (an abbreviation, ``--hid``,
        as the option argparse takes it for)."""
        given = set()
        for word in getattr(self, "_words", []):
            name = word.partition("=")[0]
            if name in self._option_string_actions:
                given.add(name)
            elif name.startswith("--"):
                options = [o for o in self._option_string_actions if o.startswith(name)]
                given.update(options if len(options) == 1 else [])
        return given

    def _default_meant(self, words):
        """"; -sample 1 ... is what this command does": char-rnn's ``-sample 1`` (sample.lua's
        default, drawing each character) given to the command that does it (has --greedy),
        and nanoGPT's ``--init_from=scratch`` given to the one that can do otherwise."""
        for k, word in enumerate(words):
            name, after = word.lstrip("-").partition("=")[0], _value(words, k)
            if word.startswith("-") and name.lower().replace("-", "_") == "init_from" and \
                    after == "scratch" and "--init-from" in self._option_string_actions:
                return (f"; {word.partition('=')[0]} scratch (nanoGPT's: a new model) is what "
                        f"this command does without --init-from: drop it")
            if word.startswith("-") and OTHER_NAMES.get(name.lower()) == "--greedy" and \
                    after == "1" and "--greedy" in self._option_string_actions:
                return (f"; {word.partition('=')[0]} 1 (char-rnn's: draw each character from "
                        f"the probabilities) is what this command does without --greedy: drop it")
        return ""

    def _option_meant(self, word, value):
        """The option ``word`` stands for, as other tools spell it (``--batch_size``,
        ``-seq_length``, ``--max-iters``) or with a typo; None if none. ``value``: what it is
        given (``_value``: char-rnn's ``-sample 0``, not ``-sample 1``, is --greedy)."""
        name = word.lstrip("-").partition("=")[0]
        if not word.startswith("-") or not name:
            return None
        spelled = "--" + name.lower().replace("_", "-")
        other = OTHER_NAMES.get(name.lower().replace("-", "_"))
        if other == "--greedy" and value != "0":
            other = None  # (-sample 1 draws, as this command does by default)
        if other == "--prime" and (value or "").startswith("FILE:"):
            other = "--prime-file"  # (nanoGPT's --start=FILE:path)
        if spelled == "--init-from" and value == "scratch":
            return None  # (nanoGPT's --init_from=scratch: ``_default_meant``)
        if spelled == "--init-from" and value == "resume":
            spelled = other = "--resume"  # (nanoGPT's --init_from=resume)
        for option in (spelled, other):
            if option in self._option_string_actions and option != word:
                return option
        long = [o for o in self._option_string_actions if o.startswith("--")]
        close = difflib.get_close_matches(spelled, long, 1, 0.85)
        if not close and len(spelled) >= 6:  # an abbreviation with a typo (--hiden, --iters)
            heads = {}  # {an option's first len(spelled) characters: the options so begun}
            for o in long:
                if len(o) > len(spelled):
                    heads.setdefault(o[:len(spelled)], []).append(o)
            close = [heads[h][0] for h in difflib.get_close_matches(spelled, heads, 1, 0.85)
                     if len(heads[h]) == 1]  # (not --smaple: --sample-every or -length)
        return close[0] if close else None

    def _positional_metavars(self):
        return [(a.metavar or a.dest) + ("..." if _takes_many(a) else "")
                for a in self._positionals._group_actions]


class Stderr:
    """The commands' sys.stderr (progress bars, notes, errors): once it cannot be written (a
    full disk, a terminal that hung up), the rest of it goes to /dev/null instead of failing
    the command, and ``lost`` says why (``error`` sends the final line to stdout then)."""

    def __init__(self, stream):
        self.stream, self.lost = stream, None

    def write(self, text):
        if self.lost is None:
            try:
                return self.stream.write(text)
            except OSError as e:
                self._lose(e)
        return len(text)

    def flush(self):
        if self.lost is None:
            try:
                self.stream.flush()
            except OSError as e:
                self._lose(e)

    def _lose(self, e):
        self.lost = f"stderr could not be written ({e.strerror or e})"
        try:
            drop_output(self.stream)  # (the interpreter's last flush of it must not fail)
        except (OSError, ValueError):
            pass

    def __getattr__(self, name):  # fileno, isatty, encoding, ...
        return getattr(self.stream, name)


def stderr_lost():
    """Why stderr can no longer be written, or None."""
    return getattr(sys.stderr, "lost", None)


class DelayedBar:
    """A progress bar on stderr, made at an ``update`` BAR_DELAY seconds or more after the
    first (the first call of the work, which may compile its kernels, is not counted; none for
    shorter work, nor with ``quiet`` or a stderr that cannot be written: tqdm is not even
    imported) and gone when closed; ``options``: tqdm's. Made at an update, it never draws
    while a kernel compiles (between two of its work's calls)."""

    def __init__(self, desc, total, unit, quiet=False, **options):
        self.start, self.done, self.bar, self.quiet = None, 0, None, quiet
        self.before = 0  # the work done before the clock started (the first call's)
        self.options = dict(desc=desc, total=total, unit=unit, **options)

    def update(self, n):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.start is None:
            self.start, self.before = time.monotonic(), self.done
        elif not self.quiet and not stderr_lost() and \
                time.monotonic() - self.start >= BAR_DELAY:
            from tqdm import tqdm
            bar = self.bar = tqdm(initial=self.before, unit_scale=True, leave=False,
                                  dynamic_ncols=True, file=sys.stderr, **self.options)
            # (its clock from the first update, not from now: the time and rate of the work
            # done since; it showed 00:00 and no rate, at more than half of the work. Its
            # rate's moving average from now: measured from the first update, its first
            # sample took all that time for one call's work, and the rate and time left it
            # showed then were off by 10-40x, 119 char/s and 19:55 left at 3.3k char/s)
            bar.n = bar.last_print_n = self.done
            bar.last_print_t = bar._time()
            bar.start_t = bar.last_print_t - (time.monotonic() - self.start)
            bar.refresh()

    def clear(self):
        """Off the screen (for a line to be written where it is), if it is on."""
        if self.bar is not None:
            self.bar.clear()

    def refresh(self):
        if self.bar is not None:
            self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# What a terminal does not show as it is: control characters but tab and line breaks (an escape
# sequence recolours the terminal or moves its cursor), the C1 ones too; and, in a line of
# fastrnn's own, line breaks (a path may hold them), Unicode's line and paragraph separators,
# its bidirectional controls (U+202E shows what follows it reversed) and lone surrogates (a
# file name's undecodable bytes, which a UTF-8 stream refuses to write)
CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
UNPRINTABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e"
                         "\u2066-\u2069\ud800-\udfff]")


def escaped(text, which=UNPRINTABLE):
    """``text`` with the characters ``which`` matches written as Python writes them (\\n,
    \\x1b, \\u202e)."""
    return which.sub(lambda m: repr(m.group())[1:-1], text)


def quoted(path):
    """``path`` as a shell command's argument: quoted where a shell would split or read it,
    and with what ``UNPRINTABLE`` matches (a line break) and tabs as bash's $'...' escapes of
    their bytes, one line (C1's \\x85 as \\xc2\\x85, their UTF-8, which bash's \\u0085
    is only in a UTF-8 locale; a name's undecodable byte as itself)."""
    text = str(path)
    if not UNPRINTABLE.search(text) and "\t" not in text:
        return shlex.quote(text)
    return "$'" + "".join("\\" + c if c in "\\'" else _bytes_escaped(c)
                          if c == "\t" or UNPRINTABLE.match(c) else c for c in text) + "'"


def _bytes_escaped(c):
    """Character ``c`` as bash's escapes of the bytes a file name holds for it (\\xc2\\x85),
    or, if it stands for none (a surrogate os.fsdecode does not make), as \\uXXXX."""
    try:
        return "".join(f"\\x{b:02x}" for b in os.fsencode(c))
    except UnicodeError:
        return f"\\u{ord(c):04x}"


def one_line(text):
    """``text`` as one line a terminal shows as it is (``escaped``): its line breaks written
    as \\r and \\n (a path may hold them), and its other control characters but tabs as
    \\x1b and the like (an escape sequence in a file name recoloured the terminal)."""
    return escaped(text)


def error(line):
    """A command's last line, saying why it failed or stopped: on stderr, or on stdout if
    stderr cannot be written (a failure must not pass in silence). One line: a line break
    inside it (a codec's message quoting one) is written as \\n."""
    line = one_line(line)
    print(line, file=sys.stderr)
    sys.stderr.flush()
    if stderr_lost():
        try:
            print(line, flush=True)
        except OSError:
            pass


COMMANDS = ("fastrnn.train", "fastrnn.sample", "fastrnn.score")


def starting_command():
    """The command Python is starting (``python -m fastrnn.train``, and ``python -m fastrnn
    train``: "fastrnn.train"), or None: it is importing the package to find the module
    (argv[0] is "-m" until then) named after the interpreter's -m option (``python -X utf8
    -Im fastrnn.train`` too)."""
    if sys.argv[:1] != ["-m"]:
        return None
    argv = list(getattr(sys, "orig_argv", []))[1:]
    while argv:
        option = argv.pop(0)
        if option == "--check-hash-based-pycs":  # (the one long option with an argument)
            argv[:1] = []
            continue
        if option.startswith("--"):
            continue
        if not option.startswith("-") or option == "-":
            return None  # a script, or the standard input
        for k, flag in enumerate(option[1:], 1):  # a cluster of flags: -Im, -bbm, -Xutf8
            if flag in "mXWc":  # (the options with an argument: the rest, or the next one)
                rest = option[k + 1:] or (argv.pop(0) if argv else "")
                if flag == "m":
                    if rest == "fastrnn" and argv:  # (``__main__``'s: python -m fastrnn train)
                        rest = f"fastrnn.{argv[0]}"
                    return rest if rest in COMMANDS else None
                if flag == "c":
                    return None
                break
    return None


def start(prog):
    """Before a command imports NumPy and Numba: Ctrl-C quiet (``quiet_start``), and the
    environment variable Numba reads at import checked (a traceback from inside Numba, or a
    warning with one in it; an empty one is taken as unset, as Numba does)."""
    quiet_start()
    text = os.environ.get("NUMBA_NUM_THREADS")
    if text is not None and not text.strip():
        del os.environ["NUMBA_NUM_THREADS"]
    elif text is not None:
        try:
            ok = int(text) > 0
        except ValueError:
            ok = False
        if not ok:
            print(f"{prog}: error: NUMBA_NUM_THREADS={text!r} is not a positive integer (the "
                  f"threads to use; unset, all cores)", file=sys.stderr)
            sys.exit(EXIT_USAGE)


def _interrupted_while_starting(signum, frame):
    try:
        caching = sys.modules.get("fastrnn.kernels.caching")  # (os._exit skips atexit)
        if caching is not None:
            caching.ProcessCacheLocator.remove()
        os.write(2, b"fastrnn: interrupted while starting\n")
    finally:
        os._exit(EXIT_INTERRUPTED)


_before_start = None  # the SIGINT handler quiet_start replaced


def quiet_start():
    """Ctrl-C while a command imports its modules (the first half second of ``python -m
    fastrnn.train``): one line and exit code 130, not a traceback from inside NumPy or Numba
    (nothing is written yet). ``run`` puts the handler back. A Ctrl-C the process was told to
    ignore (``cmd &`` in a script, ``trap '' INT``) stays ignored."""
    global _before_start
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        _before_start = signal.signal(signal.SIGINT, _interrupted_while_starting)


_escaped = set()  # the characters stdout's encoding could not write, escaped instead


def _escape(error):
    _escaped.update(error.object[error.start:error.end])
    return codecs.backslashreplace_errors(error)


codecs.register_error("fastrnn-escape", _escape)


def _note_escaped(prog):
    """What ``run`` wrote escaped to stdout, said: characters its encoding lacks (which
    PYTHONIOENCODING=utf-8 writes), and lone surrogates, which no encoding writes (Python's
    stand-ins for bytes that were not valid in their encoding: in a file name, or a text read
    with errors="surrogateescape")."""
    surrogates = {c for c in _escaped if "\ud800" <= c <= "\udfff"}
    for chars, why, fix in (
            (_escaped - surrogates, f"stdout's encoding ({sys.stdout.encoding}) cannot write",
             "PYTHONIOENCODING=utf-8 writes them as they are"),
            (surrogates, "no encoding writes", "they are lone surrogates, Python's stand-ins "
                                               "for bytes not valid in their encoding (in a "
                                               "file name, say)")):
        if chars:
            first = min(chars)  # (named by its code point: stderr may not show it either)
            example = f"U+{ord(first):04X} as {first.encode('ascii', 'backslashreplace').decode()}"
            print(f"{prog}: note: {why} {len(chars):,} distinct character"
                  f"{'s' * (len(chars) > 1)} of what was written to stdout, which came out as "
                  f"backslash escapes ({example}): {fix}", file=sys.stderr)


def run(main, prog, argv, output=False):
    """Call main(argv) -> exit code; a UsageError or Failure becomes ``prog: error: message``
    (``error``) and exit code 2 or 1, Ctrl-C one line and 130. Text the terminal's encoding
    cannot show (a vocabulary outside it) is written escaped instead of failing the run, and
    said once at the end when it was the text on stdout (a file written through it holds the
    escapes); a stream closed when the program started (``>&-``, ``2>&-``) is /dev/null, but
    for a command whose ``output`` is its stdout (its text, its scores), which refuses to run
    for nothing; stderr closed, or that fails, is ``Stderr``'s: lost."""
    closed = [name for name in ("stdout", "stderr") if getattr(sys, name) is None]
    for name in closed:
        setattr(sys, name, open(os.devnull, "w"))
    _escaped.clear()
    before = []  # (each stream's own error handler, put back when the command returns)
    for stream, errors in ((sys.stdout, "fastrnn-escape"), (sys.stderr, "backslashreplace")):
        if hasattr(stream, "reconfigure"):
            before.append((stream, stream.errors))
            stream.reconfigure(errors=errors)
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, _before_start)
    caller = sys.stderr
    sys.stderr = Stderr(caller)
    if "stderr" in closed:  # (its final error line, and train's note, come on stdout)
        sys.stderr.lost = "stderr is closed (2>&-)"
    try:
        if output and "stdout" in closed:
            raise UsageError("stdout is closed (>&-): what this command writes would be lost; "
                             "send it to a file (> FILE) or a pipe")
        return main(argv)
    except UsageError as e:
        error(f"{prog}: error: {e}")
        return EXIT_USAGE
    except Failure as e:
        error(f"{prog}: error: {e}")
        return EXIT_FAILED
    except MemoryError as e:  # (past the commands' own checks of the memory free)
        error(f"{prog}: error: out of memory ({str(e) or 'an allocation failed'})")
        return EXIT_FAILED
    except KeyboardInterrupt as e:
        error(f"{prog}: {str(e) or 'interrupted'}")
        return EXIT_INTERRUPTED
    finally:
        _note_escaped(prog)
        sys.stderr = caller
        for stream, errors in before:
            try:
                stream.reconfigure(errors=errors)
            except (OSError, ValueError):  # (closed, or /dev/null after a lost reader)
                pass


def drop_output(stream=None):
    """Once stdout cannot be written (piped into ``head``, which has exited; a full disk; a
    terminal that hung up): send the rest, and the interpreter's final flush, to /dev/null
    instead of failing again. ``stream``: another one than stdout (stderr)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, (stream or sys.stdout).fileno())
    os.close(devnull)


def stdin_to_read(prog, name):
    """``read(n)``, which a command calls until it gives nothing to read sys.stdin to its end:
    up to n bytes at a time (text, from a caller's stream without bytes), a terminal's line at
    a time (read1: a buffered read(n) went on past the first Ctrl-D, which then needed a
    second). A UsageError if it is closed (``name``: how its command line names it); on a
    terminal, a line on stderr says how to end it (else it waits in silence)."""
    stream = sys.stdin
    if stream is None:
        raise UsageError(f"{name} (standard input) is closed")
    if terminal(stream):
        print(f"{prog}: reading standard input (Ctrl-D on a line of its own ends it)",
              file=sys.stderr)
    source = getattr(stream, "buffer", stream)
    return getattr(source, "read1", source.read)


def terminal(stream):
    """Whether ``stream`` is a terminal: False too for a caller's stream without ``isatty``,
    or a closed one."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def shares_stderr(stream):
    """Whether ``stream`` writes where stderr does (``2>&1``: the same pipe or file), so that
    a line on stderr lands after the stream's text; False for streams without a descriptor."""
    try:
        mine, theirs = os.fstat(stream.fileno()), os.fstat(sys.stderr.fileno())
    except (AttributeError, ValueError, OSError):  # (io.UnsupportedOperation is both)
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def warn(prog, message):
    print(f"{prog}: warning: {one_line(message)}", file=sys.stderr)


def _number(kind, text, ok, what):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}")
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{text} is not {what}" + (
            f" (it rounds to {value:g} as a float64)" if _rounded(text, value, ok) else ""))
    return value


def _rounded(text, value, ok):
    """Whether the number written ``text``, which ``ok`` takes, became ``value``, which it
    does not, only by its rounding to a float64 (1e-400 to 0, 0.99999999999999999 to 1; not
    1.00000000000000001, past 1 as written too)."""
    if not isinstance(value, float) or not math.isfinite(value):
        return False
    try:
        off = decimal.Decimal(text.strip()) - decimal.Decimal(value)
    except (decimal.InvalidOperation, ValueError):
        return False
    return off != 0 and ok(math.nextafter(value, math.inf if off > 0 else -math.inf))


def path(text):
    """A path option's value: an empty one (an unset shell variable, ``--resume "$CKPT"``) is
    refused, not taken as the option left out."""
    if text == "":
        raise argparse.ArgumentTypeError("an empty path")
    return text


def positive_int(text):
    return _number(int, text, lambda v: v > 0, "a positive integer")


def non_negative_int(text):
    return _number(int, text, lambda v: v >= 0, "an integer >= 0")


def positive_float(text):
    return _number(float, text, lambda v: math.isfinite(v) and v > 0,
                   "a positive finite number")


def non_negative_float(text):
    return _number(float, text, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")


def fraction(text):
    return _number(float, text, lambda v: 0 <= v < 1, "in [0, 1)")


def share(text):
    return _number(float, text, lambda v: 0 < v <= 1, "in (0, 1]")
