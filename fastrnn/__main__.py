"""``python -m fastrnn`` points to the three commands."""

import sys

sys.exit("usage: python -m fastrnn.train [--help]  |  python -m fastrnn.sample CHECKPOINT "
         "[--help]  |  python -m fastrnn.score CHECKPOINT FILE... [--help]")
