"""``python -m fastrnn`` points to the two commands."""

import sys

sys.exit("usage: python -m fastrnn.train [--help]  |  python -m fastrnn.sample CHECKPOINT [--help]")
