"""``python -m fastrnn COMMAND ...`` runs ``python -m fastrnn.COMMAND ...`` (train, sample,
score); alone it names them, with --help says what each does, with --version which fastrnn it
is."""

import importlib
import sys

COMMANDS = ("train", "sample", "score")
USAGE = ("usage: python -m fastrnn.train [--help]  |  python -m fastrnn.sample CHECKPOINT "
         "[--help]  |  python -m fastrnn.score CHECKPOINT FILE... [--help]  (or python -m "
         "fastrnn train ...)")
HELP = ("what each does (python -m fastrnn.COMMAND --help: its options):\n"
        "  train   train a character-level model on a text (a checkpoint on: --resume, "
        "--init-from)\n"
        "  sample  generate text from a checkpoint\n"
        "  score   a checkpoint's loss per character (bits, perplexity) on texts")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        return importlib.import_module(f"fastrnn.{argv[0]}").main(argv[1:])
    if argv in (["--help"], ["-h"]):
        print(f"{USAGE}\n\n{HELP}")
        return 0
    if argv == ["--version"]:
        from . import __version__
        print(f"fastrnn {__version__}")
        return 0
    what = "option" if argv and argv[0].startswith("-") else "command"
    print(USAGE if not argv else f"{USAGE}\nfastrnn: error: unknown {what} {argv[0]!r}: "
          f"choose a command, one of {', '.join(COMMANDS)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
