"""``python -m fastrnn COMMAND ...`` runs ``python -m fastrnn.COMMAND ...`` (train, sample,
score); alone, or with --help, it names them."""

import importlib
import sys

COMMANDS = ("train", "sample", "score")
USAGE = ("usage: python -m fastrnn.train [--help]  |  python -m fastrnn.sample CHECKPOINT "
         "[--help]  |  python -m fastrnn.score CHECKPOINT FILE... [--help]  (or python -m "
         "fastrnn train ...)")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        return importlib.import_module(f"fastrnn.{argv[0]}").main(argv[1:])
    if argv in (["--help"], ["-h"]):
        print(USAGE)
        return 0
    what = "option" if argv and argv[0].startswith("-") else "command"
    print(USAGE if not argv else f"{USAGE}\nfastrnn: error: unknown {what} {argv[0]!r}: "
          f"choose a command, one of {', '.join(COMMANDS)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
