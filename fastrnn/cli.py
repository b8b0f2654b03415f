"""What the command lines share: one-line errors with exit code 2, and argument types."""

import argparse
import math
import os
import signal
import sys

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line, exit code 2."""


class Failure(Exception):
    """The work itself failed (for example a checkpoint could not be written); exit code 1."""


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (exit 2), not usage plus a line."""

    def error(self, message):
        raise UsageError(f"{message} (see --help)")


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


def error(line):
    """A command's last line, saying why it failed or stopped: on stderr, or on stdout if
    stderr cannot be written (a failure must not pass in silence). One line: a line break
    inside it (a codec's message quoting one) is written as \\n."""
    line = line.replace("\r", "\\r").replace("\n", "\\n")
    print(line, file=sys.stderr)
    sys.stderr.flush()
    if stderr_lost():
        try:
            print(line, flush=True)
        except OSError:
            pass


COMMANDS = ("fastrnn.train", "fastrnn.sample", "fastrnn.score")


def starting_command():
    """The command Python is starting (``python -m fastrnn.train``: "fastrnn.train"), or None:
    it is importing the package to find the module (argv[0] is "-m" until then) named after
    the interpreter's -m option (``python -X utf8 -Im fastrnn.train`` too)."""
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


def run(main, prog, argv):
    """Call main(argv) -> exit code; a UsageError or Failure becomes ``prog: error: message``
    (``error``) and exit code 2 or 1, Ctrl-C one line and 130. Text the terminal's encoding
    cannot show (a vocabulary outside it) is written escaped instead of failing the run; a
    stream closed when the program started (``>&-``, ``2>&-``) is /dev/null; stderr that
    fails is ``Stderr``'s."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, _before_start)
    caller = sys.stderr
    sys.stderr = Stderr(caller)
    try:
        return main(argv)
    except UsageError as e:
        error(f"{prog}: error: {e}")
        return EXIT_USAGE
    except Failure as e:
        error(f"{prog}: error: {e}")
        return EXIT_FAILED
    except KeyboardInterrupt as e:
        error(f"{prog}: {str(e) or 'interrupted'}")
        return EXIT_INTERRUPTED
    finally:
        sys.stderr = caller


def drop_output(stream=None):
    """Once stdout cannot be written (piped into ``head``, which has exited; a full disk; a
    terminal that hung up): send the rest, and the interpreter's final flush, to /dev/null
    instead of failing again. ``stream``: another one than stdout (stderr)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, (stream or sys.stdout).fileno())
    os.close(devnull)


def warn(prog, message):
    print(f"{prog}: warning: {message}", file=sys.stderr)


def _number(kind, text, ok, what):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}")
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{text} is not {what}")
    return value


def positive_int(text):
    return _number(int, text, lambda v: v > 0, "a positive integer")


def non_negative_int(text):
    return _number(int, text, lambda v: v >= 0, "an integer >= 0")


def positive_float(text):
    return _number(float, text, lambda v: math.isfinite(v) and v > 0,
                   "a positive finite number")


def fraction(text):
    return _number(float, text, lambda v: 0 <= v < 1, "in [0, 1)")


def share(text):
    return _number(float, text, lambda v: 0 < v <= 1, "in (0, 1]")
