"""What the command lines share: one-line errors with exit code 2, and argument types."""

import argparse
import math
import os
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


def run(main, prog, argv):
    """Call main(argv) -> exit code; a UsageError or Failure becomes ``prog: error: message``
    on stderr and exit code 2 or 1, Ctrl-C one line and 130. Text the terminal's encoding
    cannot show (a vocabulary outside it) is written escaped instead of failing the run; a
    stream closed when the program started (``>&-``, ``2>&-``) is /dev/null."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        return main(argv)
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Failure as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as e:
        print(f"{prog}: {str(e) or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED


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
    return _number(float, text, lambda v: math.isfinite(v) and v > 0, "a positive number")


def fraction(text):
    return _number(float, text, lambda v: 0 <= v < 1, "in [0, 1)")


def share(text):
    return _number(float, text, lambda v: 0 < v <= 1, "in (0, 1]")
